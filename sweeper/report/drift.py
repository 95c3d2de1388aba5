"""Drift between two runs: findings new, resolved and still open, and trust anchors added or removed.

What an incident responder looks for between two sweeps. A node that was not swept in one of
the runs proves nothing either way, so its old findings are "not re-checked" (never
"resolved") and its trust anchors are not compared. The same holds for a finding whose rule
did not run in the newer run (`--rule`), or whose rule judges by an incident input (a CRL,
an IOC list, ...) that the older run had and the newer one did not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sweeper.report.schema import Finding, Node, Report, iso

FindingKey = tuple[str, str | None, str | None, str | None, str | None]


def finding_key(item: Finding) -> FindingKey:
    """The same finding in two runs: same rule, same place, same certificate."""
    return (item.rule, item.node, item.store, item.entry, item.sha256)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What drift compares of one run, from its report file or from the history database."""

    run_id: str
    started: str
    statuses: dict[str, str]
    anchors: dict[str, dict[str, str]]
    findings: dict[FindingKey, Finding]
    rules: frozenset[str] | None = None
    """The rules that ran (None: unknown, taken as all)."""
    input_kinds: frozenset[str] = frozenset()
    """The kinds of incident input the run read (`run.inputs[].kind`)."""

    @classmethod
    def from_report(cls, report: Report) -> Snapshot:
        return cls(
            run_id=report.run.id,
            started=iso(report.run.started),
            statuses={node.name: node.status for node in report.nodes},
            anchors={node.name: _anchors(node) for node in report.nodes},
            findings={finding_key(item): item for item in report.findings},
            rules=None if report.run.rules is None else frozenset(report.run.rules),
            input_kinds=frozenset(item.kind for item in report.run.inputs),
        )

    def swept(self, node: str | None) -> bool:
        """Whether `node` was swept; for a fleet-wide finding (no node), whether every node was."""
        if node is None:
            return all(status == "ok" for status in self.statuses.values())
        return self.statuses.get(node) == "ok"

    def rechecked(self, item: Finding, old: Snapshot, needs: Mapping[str, frozenset[str]]) -> bool:
        """Whether this run judged `item` of the `old` run again: its node swept, its rule run, and
        the inputs that rule judges by present here whenever they were there."""
        if not self.swept(item.node) or (self.rules is not None and item.rule not in self.rules):
            return False
        wanted = needs.get(item.rule, frozenset())
        return not (wanted & old.input_kinds) or bool(wanted & self.input_kinds)


@dataclass(frozen=True, slots=True)
class AnchorChange:
    node: str
    sha256: str
    subject: str


@dataclass(frozen=True, slots=True)
class Drift:
    old: Snapshot
    new: Snapshot
    new_findings: list[Finding] = field(default_factory=list)
    resolved: list[Finding] = field(default_factory=list)
    still_open: list[Finding] = field(default_factory=list)
    not_rechecked: list[Finding] = field(default_factory=list)
    anchors_added: list[AnchorChange] = field(default_factory=list)
    anchors_removed: list[AnchorChange] = field(default_factory=list)
    not_compared: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        """New findings or a changed set of trust anchors: what should wake someone up."""
        return bool(self.new_findings or self.anchors_added or self.anchors_removed)


def diff(old: Snapshot, new: Snapshot, needs: Mapping[str, frozenset[str]] | None = None) -> Drift:
    """`needs`: per rule, the input kinds its verdicts depend on (`detect.input_needs()`)."""
    drift = Drift(old, new)
    for key, item in new.findings.items():
        (drift.still_open if key in old.findings else drift.new_findings).append(item)
    for key, item in old.findings.items():
        if key in new.findings:
            continue
        (drift.resolved if new.rechecked(item, old, needs or {}) else drift.not_rechecked).append(item)
    for node in dict.fromkeys([*old.statuses, *new.statuses]):
        if not (old.swept(node) and new.swept(node)):
            drift.not_compared.append(node)
            continue
        before, after = old.anchors.get(node, {}), new.anchors.get(node, {})
        drift.anchors_added.extend(
            AnchorChange(node, sha, after[sha]) for sha in sorted(set(after) - set(before))
        )
        drift.anchors_removed.extend(
            AnchorChange(node, sha, before[sha]) for sha in sorted(set(before) - set(after))
        )
    return drift


def _anchors(node: Node) -> dict[str, str]:
    return {cert.sha256: cert.subject for cert in node.certificates if cert.role == "trust"}
