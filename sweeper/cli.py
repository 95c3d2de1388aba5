"""The command line: parse, call, render, exit. The only module that exits or talks to the terminal."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sweeper import __version__
from sweeper.detect import Context
from sweeper.errors import EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK, SweeperError
from sweeper.inventory import load_inventory
from sweeper.model import NodeResult, Report, Severity
from sweeper.report.json_report import write_json
from sweeper.scan import ScanOptions, scan
from sweeper.ssh import RetryPolicy

app = typer.Typer(
    help="Find revoked or suspect certificates across a fleet over SSH, and replace them all.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
lab_app = typer.Typer(
    help="A simulated fleet on this machine, for demos, tests and benchmarks.", no_args_is_help=True
)
app.add_typer(lab_app, name="lab")

err = Console(stderr=True)
STATUS_STYLE = {
    "ok": "green",
    "unreachable": "yellow",
    "auth-failed": "red",
    "host-key-mismatch": "bold red",
    "error": "red",
}
SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


def fail_on_severity(value: str) -> Severity:
    try:
        return Severity.parse(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command("scan")
def scan_command(
    inventory: Annotated[Path, typer.Argument(help="Inventory file (TOML, or YAML of the same shape).")],
    limit: Annotated[list[str], typer.Option("--limit", help="Only nodes with this name or tag.")] = [],  # noqa: B006
    concurrency: Annotated[int, typer.Option(min=1, help="Nodes swept at once.")] = 100,
    retries: Annotated[int, typer.Option(min=1, help="Connection attempts per node (transient faults).")] = 4,
    out: Annotated[Path, typer.Option(help="Folder for the reports.")] = Path("reports"),
    fail_on: Annotated[
        str, typer.Option(help="Exit 1 when a finding is at or above this severity.")
    ] = "high",
    expiring_days: Annotated[int, typer.Option(min=0, help="Warn of certificates expiring this soon.")] = 30,
    rule: Annotated[list[str], typer.Option("--rule", help="Run only this rule (repeatable).")] = [],  # noqa: B006
) -> None:
    """Sweep the inventory's nodes (read-only) and report what is revoked or suspect."""
    threshold = fail_on_severity(fail_on)

    def run() -> int:
        inv = load_inventory(inventory)
        nodes = inv.limited(limit)
        options = ScanOptions(
            concurrency=concurrency,
            retry=RetryPolicy(attempts=retries),
            context=Context(expiring_days=expiring_days),
            rules=tuple(rule) or None,
            ask=terminal_prompt(),
        )
        with progress_reporter(len(nodes)) as on_node:
            report = scan(inv, nodes, options, argv=sys.argv, on_node=on_node)
        return finish(report, out, threshold)

    raise typer.Exit(guarded(run))


def terminal_prompt() -> Callable[[str], str] | None:
    """Ask for missing secrets on a terminal (never echoed); None when nobody can answer."""
    if not sys.stdin.isatty():
        return None
    return lambda prompt: getpass.getpass(f"sweeper: {prompt}")


def finish(report: Report, out: Path, threshold: Severity) -> int:
    """Write the report, show the summary, and choose the exit code."""
    path = write_json(report, out)
    show_summary(report)
    typer.echo(str(path))
    return exit_code(report, threshold)


def exit_code(report: Report, threshold: Severity) -> int:
    worst = report.worst_severity()
    if worst is not None and worst >= threshold:
        return EXIT_FINDINGS
    if report.incomplete:
        return EXIT_INCOMPLETE
    return EXIT_OK


def guarded(action: Callable[[], int]) -> int:
    """Run an action; a SweeperError becomes one line on stderr and its exit code."""
    try:
        return action()
    except SweeperError as exc:
        typer.echo(f"sweeper: {exc.message}", err=True)
        return exc.exit_code


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
                TextColumn("{task.description}"),
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
            self.progress.update(self.task, advance=1, description=f"{result.name}: {result.status}")
            return
        detail = f"{len(result.certificates)} certificates" if result.swept else (result.error or "")
        print(
            f"[{self.done}/{self.total}] {result.name}: {result.status} {detail}", file=sys.stderr, flush=True
        )


def show_summary(report: Report) -> None:
    nodes = Table(title="Nodes", title_justify="left")
    for column in ("status", "nodes"):
        nodes.add_column(column)
    statuses: dict[str, int] = {}
    for node in report.nodes:
        statuses[node.status] = statuses.get(node.status, 0) + 1
    for status, count in sorted(statuses.items()):
        nodes.add_row(f"[{STATUS_STYLE.get(status, '')}]{status}[/]", str(count))
    err.print(nodes)
    failed = [n for n in report.nodes if not n.swept][:10]
    for node in failed:
        err.print(
            f"  [{STATUS_STYLE.get(node.status, '')}]{node.name}[/] ({node.host}): {node.error}",
            highlight=False,
        )
    findings = Table(title="Findings", title_justify="left")
    for column in ("severity", "rule", "node", "entry", "message"):
        findings.add_column(column, overflow="fold")
    for item in report.findings[:25]:
        label = item.severity.label
        findings.add_row(
            f"[{SEVERITY_STYLE[label]}]{label}[/]", item.rule, item.node or "", item.entry or "", item.message
        )
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


@lab_app.command("up")
def lab_up(
    nodes: Annotated[int, typer.Option(min=1, help="How many simulated nodes.")] = 20,
    dir: Annotated[Path, typer.Option("--dir", help="Where the lab keeps its nodes.")] = Path("lab"),
    seed: Annotated[int, typer.Option(help="Seed for the fleet's layout and planted incident.")] = 0,
) -> None:
    """Start a simulated fleet on 127.0.0.1 in the background and write its inventory."""

    def run() -> int:
        from sweeper.lab import start_lab

        handle = start_lab(dir, nodes, seed=seed)
        typer.echo(str(handle.inventory))
        err.print(
            f"{nodes} lab nodes up; sweep them with: sweeper scan {handle.inventory}\n"
            f"stop them with: sweeper lab down --dir {dir}",
            highlight=False,
        )
        return EXIT_OK

    raise typer.Exit(guarded(run))


@lab_app.command("down")
def lab_down(
    dir: Annotated[Path, typer.Option("--dir", help="The lab's folder.")] = Path("lab"),
) -> None:
    """Stop a lab started with `lab up`."""

    def run() -> int:
        from sweeper.lab import stop_lab

        stop_lab(dir)
        err.print(f"lab in {dir} stopped")
        return EXIT_OK

    raise typer.Exit(guarded(run))


@app.command("demo")
def demo_command(
    nodes: Annotated[int, typer.Option(min=5, help="How many simulated nodes.")] = 20,
    dir: Annotated[Path, typer.Option("--dir", help="Where the lab keeps its nodes.")] = Path("lab"),
    out: Annotated[Path, typer.Option(help="Folder for the reports.")] = Path("reports"),
) -> None:
    """The whole story on a lab fleet: start it, sweep it, report what the incident left behind."""

    def run() -> int:
        from sweeper.lab import start_lab

        err.rule("1. Start a lab fleet")
        with start_lab(dir, nodes) as lab:
            err.print(f"{nodes} nodes on 127.0.0.1 (inventory {lab.inventory})", highlight=False)
            err.rule("2. Sweep it")
            inv = load_inventory(lab.inventory)
            with progress_reporter(len(inv.nodes)) as on_node:
                report = scan(inv, inv.nodes, ScanOptions(), argv=sys.argv, on_node=on_node)
            finish(report, out, Severity.HIGH)
        err.rule("Done")
        err.print("The lab is stopped. Start one to explore with: sweeper lab up", highlight=False)
        return EXIT_OK

    raise typer.Exit(guarded(run))


@app.command("version")
def version_command() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:  # pragma: no cover - console entry
    app()
