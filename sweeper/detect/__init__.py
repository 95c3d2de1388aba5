"""Rules: each looks at one certificate, one node or the whole fleet and returns Findings.

A rule registers itself with `@rule(id, severity, scope)`; `detect()` runs every registered
rule (or a chosen few) over the swept nodes. Rule ids and their least severities are a
contract (DESIGN.md); the registry refuses an id twice so a typo cannot shadow a rule.
Cert rules get `(record, context)`, node rules `(node, context)`, fleet rules
`(fleet, context)` where `fleet` is a `detect.fleet.Fleet` shared by every fleet rule of
the run, so what one rule learns about the fleet (CRLs verified, issuers found) another
reuses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from sweeper.detect.fleet import Fleet
from sweeper.errors import BadInput
from sweeper.incident import Incident
from sweeper.model import CertRecord, Finding, NodeResult, Severity
from sweeper.names import NamePolicy

Scope = Literal["cert", "node", "fleet"]


@dataclass(frozen=True, slots=True)
class Context:
    """What the rules know beyond the certificates: the time, and the incident's inputs."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    expiring_days: int = 30
    incident: Incident = field(default_factory=Incident)
    ocsp: bool = False
    ocsp_timeout: float = 5.0
    names: Mapping[str, NamePolicy] = field(default_factory=dict)
    """Per node, the names its certificates may carry (from the inventory); empty: not judged."""


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    severity: Severity
    scope: Scope
    check: Callable[..., Iterable[Finding]]
    summary: str
    needs: frozenset[str] = frozenset()
    """Incident input kinds (report `run.inputs[].kind`) its verdicts depend on: a run without them
    cannot say that an earlier finding of this rule is resolved."""


REGISTRY: dict[str, Rule] = {}


def rule(
    rule_id: str, severity: Severity, scope: Scope, needs: Iterable[str] = ()
) -> Callable[[Callable], Callable]:
    """Register a check; its docstring's first line is the rule's summary."""

    def register(check: Callable) -> Callable:
        if rule_id in REGISTRY:
            raise ValueError(f"rule {rule_id!r} registered twice")
        summary = (check.__doc__ or rule_id).strip().splitlines()[0]
        REGISTRY[rule_id] = Rule(rule_id, severity, scope, check, summary, frozenset(needs))
        return check

    return register


def finding(rule_id: str, record: CertRecord, message: str, **evidence: object) -> Finding:
    """A finding about one certificate, at its rule's registered severity."""
    return located_finding(
        rule_id,
        message,
        node=record.node,
        store=record.store,
        entry=record.entry,
        sha256=record.facts.sha256,
        **evidence,
    )


def located_finding(
    rule_id: str,
    message: str,
    *,
    node: str | None = None,
    store: str | None = None,
    entry: str | None = None,
    sha256: str | None = None,
    **evidence: object,
) -> Finding:
    """A finding about something other than one certificate record (a CRL, an input file)."""
    return Finding(
        rule=rule_id,
        severity=REGISTRY[rule_id].severity,
        node=node,
        store=store,
        entry=entry,
        sha256=sha256,
        message=message,
        evidence=dict(evidence),
    )


def select(rule_ids: Iterable[str] | None) -> list[Rule]:
    """The rules to run; an unknown id is bad input, named in the error."""
    _load_rules()
    if rule_ids is None:
        return list(REGISTRY.values())
    chosen = []
    for rule_id in rule_ids:
        if rule_id not in REGISTRY:
            raise BadInput(f"unknown rule {rule_id!r} (known: {', '.join(sorted(REGISTRY))})")
        chosen.append(REGISTRY[rule_id])
    return chosen


def detect(
    nodes: Iterable[NodeResult], context: Context, rule_ids: Iterable[str] | None = None
) -> list[Finding]:
    """Run the rules over every swept node; most severe findings first."""
    rules = select(rule_ids)
    swept = [n for n in nodes if n.swept]
    fleet = Fleet(swept, context)
    findings: list[Finding] = []
    for chosen in rules:
        if chosen.scope == "cert":
            for node in swept:
                for record in node.certificates:
                    findings.extend(chosen.check(record, context))
        elif chosen.scope == "node":
            for node in swept:
                findings.extend(chosen.check(node, context))
        else:
            findings.extend(chosen.check(fleet, context))
    return sorted(findings, key=finding_order)


def finding_order(item: Finding) -> tuple[int, str, str, str, str]:
    """How a report lists its findings: most severe first, then by rule, node, store and entry."""
    return (-item.severity, item.rule, item.node or "", item.store or "", item.entry or "")


def input_needs() -> dict[str, frozenset[str]]:
    """Per rule id, the incident input kinds its verdicts depend on (for `diff`)."""
    _load_rules()
    return {chosen.id: chosen.needs for chosen in REGISTRY.values()}


def _load_rules() -> None:
    """Import the rule modules so their decorators run (once)."""
    from sweeper.detect import (  # noqa: F401
        broken,
        compromise,
        hostname,
        ioc,
        keys,
        ocsp,
        present,
        revocation,
        strength,
        trust,
        validity,
    )
