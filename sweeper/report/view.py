"""Presentation helpers shared by the HTML and Markdown renderers: grouping, ordering and chart geometry.

Nothing here judges a certificate: colours come from the report's own findings, and the
timeline's "now" is the run's start, so a report re-rendered years later looks the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sweeper.report.schema import SEVERITIES, ReportDoc

RANK = {name: len(SEVERITIES) - position for position, name in enumerate(SEVERITIES)}


def when(text: str) -> datetime:
    """A report time (ISO 8601 UTC with `Z`) as an aware datetime."""
    return datetime.fromisoformat(text)


def findings_by_node(report: ReportDoc) -> dict[str | None, list[dict[str, Any]]]:
    """Findings under their node's name; fleet-wide ones (no node) under None."""
    grouped: dict[str | None, list[dict[str, Any]]] = {}
    for item in report["findings"]:
        grouped.setdefault(item.get("node"), []).append(item)
    return grouped


def worst_by_certificate(report: ReportDoc) -> dict[tuple[str | None, str], str]:
    """The most severe finding for each (node, sha256): what colours a certificate."""
    worst: dict[tuple[str | None, str], str] = {}
    for item in report["findings"]:
        if not item.get("sha256"):
            continue
        key = (item.get("node"), item["sha256"])
        if key not in worst or RANK[item["severity"]] > RANK[worst[key]]:
            worst[key] = item["severity"]
    return worst


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    count: int
    y: int
    width: int


def severity_bars(report: ReportDoc, width: int = 260, step: int = 26) -> list[Bar]:
    """Horizontal bars for the findings-by-severity chart, scaled to the largest count."""
    counts = report["summary"]["findings"]
    top = max(counts.values(), default=0) or 1
    return [
        Bar(name, counts.get(name, 0), position * step, round(width * counts.get(name, 0) / top))
        for position, name in enumerate(SEVERITIES)
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


def expiry_timeline(report: ReportDoc, width: int = 880, lane: int = 28, left: int = 120) -> Timeline | None:
    certs = [(node["name"], cert) for node in report["nodes"] for cert in node["certificates"]]
    if not certs:
        return None
    now = when(report["run"]["started"])
    moments = [when(cert["not_after"]) for _, cert in certs] + [now]
    first = datetime(min(moments).year, 1, 1, tzinfo=now.tzinfo)
    last = datetime(max(moments).year + 1, 1, 1, tzinfo=now.tzinfo)
    span = (last - first).total_seconds()
    plot = width - left - 20

    def x(moment: datetime) -> int:
        return left + round(plot * (moment - first).total_seconds() / span)

    worst = worst_by_certificate(report)
    lanes: list[Lane] = []
    for node in report["nodes"]:
        if not node["certificates"]:
            continue
        dots = [
            Dot(
                x(when(cert["not_after"])),
                worst.get((node["name"], cert["sha256"]), "none"),
                cert["subject"],
                cert["not_after"],
                cert["store"],
            )
            for cert in node["certificates"]
        ]
        lanes.append(Lane(node["name"], 30 + len(lanes) * lane, dots))
    years = range(first.year, last.year)
    stride = max(1, len(years) // 10)
    ticks = [Tick(x(datetime(year, 1, 1, tzinfo=now.tzinfo)), str(year)) for year in years[::stride]]
    return Timeline(lanes, ticks, x(now), width, 30 + len(lanes) * lane + 10, left)


@dataclass(frozen=True, slots=True)
class Change:
    """One certificate of a node as the rotation left it: `removed`, `added` or `kept`."""

    state: str
    cert: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NodeChanges:
    node: str
    status_before: str | None
    status_after: str | None
    changes: list[Change]


def before_after(report: ReportDoc) -> list[NodeChanges]:
    """Per node, the certificates the rotation removed, added and kept (by fingerprint and place)."""
    before = {node["name"]: node for node in report.get("before") or []}
    after = {node["name"]: node for node in report.get("after") or []}
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
                before[name]["status"] if name in before else None,
                after[name]["status"] if name in after else None,
                changes,
            )
        )
    return result


def _placed(node: dict[str, Any] | None) -> dict[tuple[str, str, str], dict[str, Any]]:
    if node is None:
        return {}
    return {(cert["store"], cert["entry"], cert["sha256"]): cert for cert in node["certificates"]}
