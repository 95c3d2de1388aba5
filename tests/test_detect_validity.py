"""Time-validity rules and the rule plumbing (registry, selection, ordering)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sweeper.detect import Context, detect, select
from sweeper.errors import BadInput
from sweeper.model import CertRecord, NodeResult, Severity
from sweeper.pki.facts import CertFacts

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

HEALTHY = CertRecord(
    node="web1",
    store="/etc/tls/server.crt",
    entry="/etc/tls/server.crt",
    role="leaf",
    facts=CertFacts(
        subject="CN=web1",
        issuer="CN=Corp Root",
        serial="1f",
        not_before=NOW - timedelta(days=30),
        not_after=NOW + timedelta(days=365),
        sha256="aa" * 32,
        spki_sha256="bb" * 32,
        key_type="RSA",
        key_bits=2048,
        signature_algorithm="sha256WithRSAEncryption",
        is_ca=False,
        self_signed=False,
        sans=("web1",),
    ),
)


def dated(record: CertRecord, **facts: Any) -> CertRecord:
    """`record` with some of its certificate's facts changed (validity dates, fingerprint)."""
    return replace(record, facts=replace(record.facts, **facts))


def sweep_of(*records: CertRecord, status: str = "ok") -> list[NodeResult]:
    return [NodeResult(name="web1", host="h", status=status, certificates=records)]


def rules_hit(*records: CertRecord, days: int = 30) -> list[str]:
    return [f.rule for f in detect(sweep_of(*records), Context(now=NOW, expiring_days=days))]


def test_a_healthy_certificate_has_no_finding() -> None:
    assert rules_hit(HEALTHY) == []


def test_expired_is_high_with_the_date_in_evidence() -> None:
    old = dated(HEALTHY, not_after=NOW - timedelta(days=3))
    (found,) = detect(sweep_of(old), Context(now=NOW))
    assert found.rule == "expired" and found.severity == Severity.HIGH
    assert found.evidence["days_ago"] == 3 and found.sha256 == HEALTHY.facts.sha256


def test_not_yet_valid_and_expiring_are_medium() -> None:
    future = dated(HEALTHY, not_before=NOW + timedelta(hours=2))
    soon = dated(HEALTHY, sha256="cc" * 32, not_after=NOW + timedelta(days=10))
    found = detect(sweep_of(future, soon), Context(now=NOW))
    assert {(f.rule, f.severity) for f in found} == {
        ("not-yet-valid", Severity.MEDIUM),
        ("expiring", Severity.MEDIUM),
    }


def test_expiring_window_follows_the_option() -> None:
    soon = dated(HEALTHY, not_after=NOW + timedelta(days=10))
    assert rules_hit(soon, days=5) == []
    assert rules_hit(soon, days=11) == ["expiring"]


def test_nodes_that_were_not_swept_are_not_judged() -> None:
    old = dated(HEALTHY, not_after=NOW - timedelta(days=3))
    assert detect(sweep_of(old, status="unreachable"), Context(now=NOW)) == []


def test_findings_come_most_severe_first() -> None:
    soon = replace(dated(HEALTHY, not_after=NOW + timedelta(days=1)), entry="a")
    old = replace(dated(HEALTHY, not_after=NOW - timedelta(days=1)), entry="b")
    assert rules_hit(soon, old) == ["expired", "expiring"]


def test_an_unknown_rule_is_bad_input_naming_it() -> None:
    with pytest.raises(BadInput, match="unknown rule 'expird'"):
        select(["expird"])
    assert [r.id for r in select(["expired"])] == ["expired"]
