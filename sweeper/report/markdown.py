"""Markdown for tickets and chat: the summary, the nodes not swept, the findings, and any rotation.

Text from certificates is attacker-controlled, so every cell is escaped: no Markdown link,
image or HTML tag in a subject can become live in the ticket that quotes it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from sweeper.report import view
from sweeper.report.options import RenderOptions
from sweeper.report.schema import Report, iso

_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~&])")


def render(report: Report, options: RenderOptions) -> str:
    run, summary = report.run, report.summary
    lines = [
        f"# sweeper {esc(run.kind)} report — run {esc(run.id)}",
        "",
        f"- **Started:** {iso(run.started)} — **finished:** {iso(run.finished)}"
        + (" — **interrupted**" if run.interrupted else ""),
        f"- **Inventory:** {esc(run.inventory.path)} (sha256 {esc(run.inventory.sha256)})",
        f"- **Tool:** sweeper {esc(run.tool_version)}",
        f"- **Nodes swept:** {summary.nodes_swept} of {summary.nodes} — "
        f"**certificates:** {summary.certificates} — **findings:** "
        + ", ".join(f"{count} {name}" for name, count in summary.findings.model_dump().items()),
        f"- **Fails at:** {options.fail_on.label} and above",
        "",
    ]
    missed = [node for node in report.nodes if node.status != "ok"]
    if missed:
        lines += ["## Nodes not swept", ""]
        lines += _table(
            ("node", "host", "status", "attempts", "error"),
            ([n.name, n.host, n.status, n.attempts, n.error] for n in missed),
        )
    lines += ["## Findings", ""]
    if report.findings:
        lines += _table(
            ("severity", "rule", "node", "store", "entry", "message", "sha256"),
            (
                [f.severity.label, f.rule, f.node or "fleet", f.store, f.entry, f.message,
                 (f.sha256 or "")[:16]]
                for f in report.findings
            ),
        )  # fmt: skip
    else:
        lines += ["No findings.", ""]
    lines += _rotation(report)
    by_node = view.findings_by_node(report)
    lines += ["## Nodes", ""]
    lines += _table(
        ("node", "host", "status", "certificates", "findings"),
        ([n.name, n.host, n.status, len(n.certificates), len(by_node.get(n.name, []))] for n in report.nodes),
    )
    return "\n".join(lines)


def _rotation(report: Report) -> list[str]:
    lines: list[str] = []
    rotation = report.rotation
    if rotation:
        outcome = "complete" if rotation.complete else f"stopped at {rotation.stopped_at}"
        root = rotation.new_root
        lines += [
            "## Rotation",
            "",
            f"- **Outcome:** {esc(outcome)}" + (" — purge forced" if rotation.forced else ""),
            f"- **New root:** {esc(root.subject)} (sha256 {esc(root.sha256)})",
            f"- **Journal:** {esc(rotation.journal)}",
            *(f"- **Failed:** {esc(node)}: {esc(error)}" for node, error in rotation.failed.items()),
            "",
        ]
    plan = report.plan
    if plan:
        lines += ["## Rotation plan", ""]
        lines += [f"- Wave {i}: {esc(', '.join(wave))}" for i, wave in enumerate(plan.waves, 1)]
        lines += [f"- At most {plan.max_failures} failed node(s) tolerated", ""]
        lines += _table(
            ("#", "phase", "node", "action", "target"),
            ([i, a.phase, a.node, a.kind, a.target] for i, a in enumerate(plan.actions, 1)),
        )
    if report.steps:
        lines += ["## Rotation steps", ""]
        lines += _table(
            ("node", "phase", "step", "outcome", "attempts", "error"),
            ([s.node, s.phase, s.step, s.state, s.attempts, s.error] for s in report.steps),
        )
    changes = view.before_after(report)
    if changes:
        lines += ["## Before and after", ""]
        lines += _table(
            ("node", "status", "change", "store", "entry", "subject", "sha256"),
            (
                [n.node, f"{n.status_before or 'absent'} → {n.status_after or 'absent'}", c.state,
                 c.cert.store, c.cert.entry, c.cert.subject, c.cert.sha256[:16]]
                for n in changes for c in n.changes if c.state != "kept"
            ),
        )  # fmt: skip
    return lines


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def esc(value: object) -> str:
    """Text safe inside a Markdown table cell: specials backslashed, line breaks flattened."""
    if value is None:
        return ""
    text = " ".join(str(value).split())
    return _SPECIAL.sub(r"\\\1", text)
