"""Markdown for tickets and chat: the summary, the nodes not swept, the findings, and any rotation.

Text from a report may be the attacker's (a subject, a file name, a node's error), so every
text value is shown as an inline code span, control characters escaped: inside a code span
nothing is Markdown, so no link, image, HTML tag, emphasis, bare URL or e-mail autolink,
`$math$`, @mention or issue reference can come alive in the ticket that quotes it.
Backslash escapes cannot do that: GitHub still links `a\\@b.example` and mentions `\\@team`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from sweeper.plaintext import escape_controls
from sweeper.report import view
from sweeper.report.options import RenderOptions
from sweeper.report.schema import Report, iso

_BACKTICKS = re.compile(r"`+")


def render(report: Report, options: RenderOptions) -> str:
    run, summary = report.run, report.summary
    lines = [
        f"# sweeper {run.kind} report — run {code(run.id)}",
        "",
        f"- **Started:** {iso(run.started)} — **finished:** {iso(run.finished)}"
        + (" — **interrupted**" if run.interrupted else ""),
        f"- **Inventory:** {code(run.inventory.path)} (sha256 {code(run.inventory.sha256)})",
        f"- **Tool:** sweeper {code(run.tool_version)}",
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
            f"- **Outcome:** {code(outcome)}" + (" — purge forced" if rotation.forced else ""),
            f"- **New root:** {code(root.subject)} (sha256 {code(root.sha256)})",
            f"- **Journal:** {code(rotation.journal)}",
            *(f"- **Failed:** {code(node)}: {code(error)}" for node, error in rotation.failed.items()),
            "",
        ]
    plan = report.plan
    if plan:
        lines += ["## Rotation plan", ""]
        lines += [f"- Wave {i}: {code(', '.join(wave))}" for i, wave in enumerate(plan.waves, 1)]
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
    lines += ["| " + " | ".join(code(cell, in_table=True) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def code(value: object, in_table: bool = False) -> str:
    """A value as literal text: numbers as they are, any other text as an inline code span.

    The span's fence is one backtick longer than any run inside, padded where needed with a
    space that CommonMark strips again; in a table, `|` is escaped (GFM splits cells before it
    parses code spans, and gives the span a plain `|` back)."""
    if value is None or value == "":
        return ""
    if isinstance(value, int):
        return str(value)
    text = escape_controls(value)
    if in_table:
        text = text.replace("|", "\\|")
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    edges = text[0] + text[-1]
    padded = "`" in edges or (edges == "  " and text.strip(" ") != "")
    padding = " " if padded else ""
    return f"{fence}{padding}{text}{padding}{fence}"
