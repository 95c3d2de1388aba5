"""Presentation helpers shared by the HTML and Markdown renderers: grouping, ordering and chart geometry.

Nothing here judges a certificate: colours come from the report's own findings, and the
timeline's "now" is the run's start, so a report re-rendered years later looks the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sweeper.model import Severity
from sweeper.report.schema import SEVERITIES, Certificate, Finding, Node, Report, iso

RANK = {name: len(SEVERITIES) - position for position, name in enumerate(SEVERITIES)}


def place(store: str | None, entry: str | None) -> str:
    """Where on a node a certificate sits: its file (`/etc/tls/a.crt#2`), or `vecs:STORE/alias`."""
    if entry and entry.startswith("/"):
        return entry
    return "/".join(part for part in (store, entry) if part)


def findings_by_node(report: Report) -> dict[str | None, list[Finding]]:
    """Findings under their node's name; fleet-wide ones (no node) under None."""
    grouped: dict[str | None, list[Finding]] = {}
    for item in report.findings:
        grouped.setdefault(item.node, []).append(item)
    return grouped


def worst_by_certificate(report: Report) -> dict[tuple[str | None, str], str]:
    """The name of the most severe finding for each (node, sha256): what colours a certificate."""
    worst: dict[tuple[str | None, str], Severity] = {}
    for item in report.findings:
        if not item.sha256:
            continue
        key = (item.node, item.sha256)
        if key not in worst or item.severity > worst[key]:
            worst[key] = item.severity
    return {key: severity.label for key, severity in worst.items()}


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    count: int
    y: int
    width: int


def severity_bars(report: Report, width: int = 260, step: int = 26) -> list[Bar]:
    """Horizontal bars for the findings-by-severity chart, scaled to the largest count."""
    counts = report.summary.findings.model_dump()
    top = max(counts.values(), default=0) or 1
    return [
        Bar(name, count, position * step, round(width * count / top))
        for position, (name, count) in enumerate(counts.items())
    ]


@dataclass(frozen=True, slots=True)
class Dot:
    x: int
    severity: str
    subject: str
    not_after: str
    store: str


@dataclass(frozen=True, slots=True)
class Lane:
    node: str
    y: int
    dots: list[Dot]


@dataclass(frozen=True, slots=True)
class Tick:
    x: int
    label: str


@dataclass(frozen=True, slots=True)
class Timeline:
    """Certificate expiry dates on one time axis, a lane per node, and a line at the run's time."""

    lanes: list[Lane]
    ticks: list[Tick]
    now_x: int
    width: int
    height: int
    left: int


TIMELINE_YEARS = 30
"""How far before and after the run the expiry axis reaches. X.509 allows any date from year 1
to 9999 (9999-12-31 is RFC 5280's "no expiry", device certificates carry it): an axis to such a
date would squeeze every other certificate into one pixel, so dates past the axis sit at its end,
their own date in the dot's title."""


def expiry_timeline(report: Report, width: int = 880, lane: int = 28, left: int = 120) -> Timeline | None:
    certs = [cert for node in report.nodes for cert in node.certificates]
    if not certs:
        return None
    now = report.run.started
    moments = [cert.not_after for cert in certs] + [now]
    first = datetime(max(min(moments).year, now.year - TIMELINE_YEARS), 1, 1, tzinfo=now.tzinfo)
    last = datetime(min(max(moments).year, now.year + TIMELINE_YEARS) + 1, 1, 1, tzinfo=now.tzinfo)
    span = (last - first).total_seconds()
    plot = width - left - 20

    def x(moment: datetime) -> int:
        return left + round(plot * (min(max(moment, first), last) - first).total_seconds() / span)

    worst = worst_by_certificate(report)
    lanes: list[Lane] = []
    for node in report.nodes:
        if not node.certificates:
            continue
        dots = [
            Dot(
                x(cert.not_after),
                worst.get((node.name, cert.sha256), "none"),
                cert.subject,
                iso(cert.not_after),
                cert.store,
            )
            for cert in node.certificates
        ]
        lanes.append(Lane(node.name, 30 + len(lanes) * lane, dots))
    years = range(first.year, last.year)
    stride = max(1, len(years) // 10)
    ticks = [Tick(x(datetime(year, 1, 1, tzinfo=now.tzinfo)), str(year)) for year in years[::stride]]
    return Timeline(lanes, ticks, x(now), width, 30 + len(lanes) * lane + 10, left)


@dataclass(frozen=True, slots=True)
class Change:
    """One certificate of a node as the rotation left it: `removed`, `added` or `kept`."""

    state: str
    cert: Certificate


@dataclass(frozen=True, slots=True)
class NodeChanges:
    node: str
    status_before: str | None
    status_after: str | None
    changes: list[Change]


def before_after(report: Report) -> list[NodeChanges]:
    """Per node, the certificates the rotation removed, added and kept (by fingerprint and place)."""
    before = {node.name: node for node in report.before or []}
    after = {node.name: node for node in report.after or []}
    result = []
    for name in dict.fromkeys([*before, *after]):
        old = _placed(before.get(name))
        new = _placed(after.get(name))
        changes = [Change("removed", cert) for key, cert in old.items() if key not in new]
        changes += [Change("added", cert) for key, cert in new.items() if key not in old]
        changes += [Change("kept", cert) for key, cert in new.items() if key in old]
        result.append(
            NodeChanges(
                name,
                before[name].status if name in before else None,
                after[name].status if name in after else None,
                changes,
            )
        )
    return result


def _placed(node: Node | None) -> dict[tuple[str, str, str], Certificate]:
    if node is None:
        return {}
    return {(cert.store, cert.entry, cert.sha256): cert for cert in node.certificates}
