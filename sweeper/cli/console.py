"""The terminal: one stderr console, plain-text rendering of anything a node or a report said,
progress while nodes are swept, and the summary of a run.

Text that came from a node (names, subjects, error messages) may be the attacker's: it is
shown through `plain()` as a rich Text (never parsed as markup) with control characters
escaped (`sweeper.plaintext`), so it can neither restyle nor move the terminal.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from sweeper.model import NodeResult, Report, Severity
from sweeper.plaintext import escape_controls
from sweeper.report.view import place

err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)
STATUS_STYLE = {
    "ok": "green",
    "unreachable": "yellow",
    "auth-failed": "red",
    "host-key-unknown": "yellow",
    "host-key-mismatch": "bold red",
    "error": "red",
}
SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


MAX_SHOWN = 400
"""Characters of one node-given text the summary shows: a certificate's subject may be tens of
kilobytes (a hostile node's is), which would fill the operator's screen for one finding."""


def plain(text: object, style: str = "") -> Text:
    """Node or report text for the terminal: never markup, control characters escaped."""
    return Text(escape_controls(text, keep="\t\n"), style=style)


def clipped(text: object, style: str = "") -> Text:
    """`plain`, cut at MAX_SHOWN characters with a note of how much the report holds beyond."""
    shown = plain(text, style)
    if len(shown) > MAX_SHOWN:
        beyond = len(shown) - MAX_SHOWN
        shown = shown[:MAX_SHOWN] + plain(f"… ({beyond} more characters in the report)", "dim")
    return shown


def stdout_console() -> Console:
    """Data goes to stdout; piped into a file or mail it is laid out wide rather than folded at 80."""
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def terminal_prompt() -> Callable[[str], str] | None:
    """Ask for missing secrets on a terminal (never echoed); None when nobody can answer."""
    if not sys.stdin.isatty():
        return None
    return lambda prompt: getpass.getpass(f"sweeper: {prompt}")


class progress_reporter:
    """A live bar on a terminal, one plain line per node otherwise; both on stderr."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.progress: Progress | None = None
        if err.is_terminal:
            self.progress = Progress(
                TextColumn("sweeping"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}", markup=False),
                console=err,
                transient=True,
            )
            self.task = self.progress.add_task("", total=total)

    def __enter__(self) -> Callable[[NodeResult], None]:
        if self.progress:
            self.progress.start()
        return self.node_done

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self.progress.stop()

    def node_done(self, result: NodeResult) -> None:
        self.done += 1
        if self.progress:
            description = plain(f"{result.name}: {result.status}").plain
            self.progress.update(self.task, advance=1, description=description)
            return
        detail = f"{len(result.certificates)} certificates" if result.swept else (result.error or "")
        write_line(clipped(f"[{self.done}/{self.total}] {result.name}: {result.status} {detail}"))


def write_line(text: Text) -> None:
    """One unstyled line to stderr when it is no terminal, as `err.print(text, soft_wrap=True)` would
    write it (tabs expanded), without rich's layout and render per line: a sweep writes one per node."""
    text.expand_tabs(err.tab_size)
    err.file.write(text.plain + "\n")
    err.file.flush()


def show_summary(report: Report) -> None:
    """Nodes by status, the nodes not swept, the worst findings, and one line of totals."""
    nodes = Table(title="Nodes", title_justify="left")
    for column in ("status", "nodes"):
        nodes.add_column(column)
    statuses: dict[str, int] = {}
    for node in report.nodes:
        statuses[node.status] = statuses.get(node.status, 0) + 1
    for status, count in sorted(statuses.items()):
        nodes.add_row(plain(status, STATUS_STYLE.get(status, "")), str(count))
    err.print(nodes)
    for node in [n for n in report.nodes if not n.swept][:10]:
        line = Text("  ") + plain(node.name, STATUS_STYLE.get(node.status, ""))
        err.print(line + clipped(f" ({node.host}): {node.error}"))
    findings = Table(title="Findings", title_justify="left")
    for column in ("severity", "rule", "node", "entry", "message"):
        findings.add_column(column, overflow="fold")
    for item in report.findings[:25]:
        label = item.severity.label
        cells = (item.rule, item.node or "", place(item.store, item.entry), item.message)
        findings.add_row(plain(label, SEVERITY_STYLE[label]), *(clipped(cell) for cell in cells))
    if report.findings:
        err.print(findings)
        if len(report.findings) > 25:
            err.print(f"  … and {len(report.findings) - 25} more in the report")
    else:
        err.print("No findings.")
    certificates = sum(len(n.certificates) for n in report.nodes)
    swept = sum(1 for n in report.nodes if n.swept)
    interrupted = " [bold yellow](interrupted)[/]" if report.run.interrupted else ""
    err.print(
        f"{swept}/{len(report.nodes)} nodes swept, {certificates} certificates, "
        f"{len(report.findings)} findings{interrupted}"
    )


def show_before_after(before: Report, after: Report) -> None:
    """Findings by severity, before and after a rotation."""
    order = sorted(Severity, reverse=True)
    table = Table(title="Findings by severity", title_justify="left")
    for column in ("", *(s.label for s in order)):
        table.add_column(column)
    for name, report in (("before", before), ("after", after)):
        table.add_row(name, *(str(sum(1 for f in report.findings if f.severity == s)) for s in order))
    err.print(table)
