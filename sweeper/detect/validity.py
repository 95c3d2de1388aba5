"""Time validity: expired, not yet valid, expiring soon."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from sweeper.detect import Context, finding, rule
from sweeper.model import CertRecord, Finding, Severity


@rule("expired", Severity.HIGH, "cert")
def expired(record: CertRecord, context: Context) -> Iterator[Finding]:
    """not_after is in the past."""
    if record.facts.not_after < context.now:
        days = (context.now - record.facts.not_after).days
        yield finding(
            "expired",
            record,
            f"expired {days} day(s) ago ({record.facts.not_after:%Y-%m-%d}): {record.facts.subject}",
            not_after=record.facts.not_after.isoformat(),
            days_ago=days,
        )


@rule("not-yet-valid", Severity.MEDIUM, "cert")
def not_yet_valid(record: CertRecord, context: Context) -> Iterator[Finding]:
    """not_before is in the future."""
    if record.facts.not_before > context.now:
        yield finding(
            "not-yet-valid",
            record,
            f"not valid before {record.facts.not_before:%Y-%m-%d %H:%M} UTC: {record.facts.subject}",
            not_before=record.facts.not_before.isoformat(),
        )


@rule("expiring", Severity.MEDIUM, "cert")
def expiring(record: CertRecord, context: Context) -> Iterator[Finding]:
    """not_after falls within --expiring-days."""
    horizon = context.now + timedelta(days=context.expiring_days)
    if context.now <= record.facts.not_after < horizon:
        days = (record.facts.not_after - context.now).days
        yield finding(
            "expiring",
            record,
            f"expires in {days} day(s) ({record.facts.not_after:%Y-%m-%d}): {record.facts.subject}",
            not_after=record.facts.not_after.isoformat(),
            days_left=days,
            expiring_days=context.expiring_days,
        )
