"""Past runs: render a report again, check its signature, list the history, show drift between runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sweeper.cli.app import FormatOption, HistoryOption, command, fail_on_severity, run
from sweeper.errors import EXIT_FINDINGS, EXIT_OK, EXIT_SIGNATURE_INVALID, BadInput, CorruptInput, os_reason

if TYPE_CHECKING:
    from sweeper.report.drift import Drift
    from sweeper.report.schema import Report

ReportsFolder = Annotated[Path, typer.Option("--out", metavar="DIR", help="The reports folder.")]


@command(
    "report",
    examples="""
    sweeper report reports/20261202T0300Z-1a2b3c4d.json --format html,md
    sweeper report reports/20261202T0300Z-1a2b3c4d.json --format all --pub report.pub
    """,
)
def report_command(
    report_file: Annotated[Path, typer.Argument(metavar="REPORT", help="A sweeper.report/1 JSON file.")],
    formats: FormatOption = ["html"],  # noqa: B006
    out: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Folder for the files (default: the report's).")
    ] = None,
    fail_on: Annotated[
        str,
        typer.Option(
            metavar="SEVERITY",
            help="JUnit failures at or above this severity: critical, high, medium, low or info.",
        ),
    ] = "high",
    pub: Annotated[
        Path | None,
        typer.Option(
            "--pub", metavar="KEY", help="Ed25519 public key: render only if the report's signature holds."
        ),
    ] = None,
) -> None:
    """Render a past run's JSON report in other formats; the JSON stays the single source.

    A signed report (REPORT.sig beside it) is checked first: with --pub, its signature; without,
    that it is the file its run's signed manifest lists. An altered report is refused (exit 1).
    """
    threshold = fail_on_severity(fail_on)

    def body() -> int:
        from sweeper.report.formats import parse_formats, stem_of, write_formats
        from sweeper.report.options import RenderOptions

        chosen = parse_formats(formats)
        report = _checked_report(report_file, pub)
        if report is None:
            return EXIT_SIGNATURE_INVALID
        target = out or report_file.parent
        for path in write_formats(report, target, stem_of(report_file), chosen, RenderOptions(threshold)):
            typer.echo(str(path))
        return EXIT_OK

    run(body)


def _checked_report(path: Path, pub: Path | None) -> Report | None:
    """The report to render, or None (said on stderr) when its signature or manifest says it was altered."""
    from sweeper.cli.console import err, plain
    from sweeper.pki.sign import signature_path, verify_file
    from sweeper.report import schema
    from sweeper.report.manifest import unkeyed_problem

    signature = signature_path(path)
    if pub is not None:
        if not signature.is_file():
            raise BadInput(f"{path}: unsigned (no {signature.name}), and --pub asks for a signed report")
        verdict = verify_file(path, pub)
        if not verdict.valid:
            typer.echo(
                f"sweeper: {path}: signature {signature.name} does not match: altered or another key",
                err=True,
            )
            return None
        return schema.parse(verdict.data, path)
    if not signature.is_file():
        return schema.load(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorruptInput(path, f"cannot read report: {os_reason(exc)}") from None
    problem = unkeyed_problem(path, data)
    if problem is not None:
        typer.echo(f"sweeper: {path}: signed, but {problem}; not rendered", err=True)
        return None
    err.print(
        plain(f"warning: {signature.name} was not checked (no --pub KEY): ", "bold yellow")
        + plain("what is rendered proves nothing about who wrote it until `sweeper verify-report` says so")
    )
    return schema.parse(data, path)


@command(
    "verify-report", examples="sweeper verify-report reports/20261202T0300Z-1a2b3c4d.json --pub report.pub"
)
def verify_report_command(
    report_file: Annotated[Path, typer.Argument(metavar="REPORT", help="The signed file (a report's JSON).")],
    pub: Annotated[
        Path, typer.Option("--pub", metavar="KEY", help="Ed25519 public key (SubjectPublicKeyInfo PEM).")
    ],
    sig: Annotated[
        Path | None, typer.Option(metavar="FILE", help="The signature (default: <FILE>.sig).")
    ] = None,
) -> None:
    """Check a run's signatures: its JSON's, its manifest's, every file of the run against the manifest.

    Exit 0 all valid, 1 a file altered, missing or signed by nothing, 2 bad input (a malformed report too).
    """

    def body() -> int:
        from sweeper.pki.sign import verify_file
        from sweeper.report import schema
        from sweeper.report.manifest import check_run

        verdict = verify_file(report_file, pub, sig)
        if not verdict.valid:
            typer.echo(
                f"sweeper: {report_file}: signature {verdict.signature} does not match "
                f"(key sha256 {verdict.key_sha256}): the file was altered or signed by another key",
                err=True,
            )
            return EXIT_SIGNATURE_INVALID
        schema.parse(verdict.data, report_file)
        typer.echo(f"{report_file}: signature valid (key sha256 {verdict.key_sha256})")
        run_check = check_run(report_file, verdict.data, pub)
        if run_check.manifest is not None and run_check.manifest.valid:
            matching = ", ".join(run_check.matching)
            typer.echo(f"{run_check.manifest.signed}: signature valid; these files match it: {matching}")
        for problem in run_check.problems:
            typer.echo(f"sweeper: {problem}", err=True)
        return EXIT_SIGNATURE_INVALID if run_check.problems else EXIT_OK

    run(body)


@command("history", examples="sweeper history\nsweeper history --limit 5 --out /var/lib/sweeper/reports")
def history_command(
    out: ReportsFolder = Path("reports"),
    history_db: HistoryOption = None,
    limit: Annotated[int, typer.Option(metavar="N", min=1, help="Show this many runs, newest first.")] = 20,
) -> None:
    """List recorded runs, newest first."""

    def body() -> int:
        from rich.table import Table

        from sweeper import history
        from sweeper.cli.console import plain, stdout_console
        from sweeper.report.schema import SEVERITIES

        table = Table(box=None, pad_edge=False)
        for column in ("run", "kind", "started", "swept", "certs", "findings c/h/m/l/i"):
            table.add_column(column, no_wrap=True)
        table.add_column("report", overflow="fold")
        for row in history.runs(history_db or history.default_path(out), limit):
            swept = f"{row.nodes_swept}/{row.nodes}" + (" interrupted" if row.interrupted else "")
            counts = "/".join(str(row.findings[name]) for name in SEVERITIES)
            cells = (
                row.id,
                row.kind,
                row.started,
                swept,
                str(row.certificates),
                counts,
                str(row.report_path),
            )
            table.add_row(*(plain(cell) for cell in cells))
        stdout_console().print(table)
        return EXIT_OK

    run(body)


@command("diff", examples="sweeper diff 1a2b 5e6f\nsweeper diff reports/before.json reports/after.json")
def diff_command(
    old: Annotated[
        str, typer.Argument(metavar="OLD", help="The earlier run: run id (or unique prefix) or report file.")
    ],
    new: Annotated[
        str, typer.Argument(metavar="NEW", help="The later run: run id (or unique prefix) or report file.")
    ],
    out: ReportsFolder = Path("reports"),
    history_db: HistoryOption = None,
) -> None:
    """Show drift between two runs: findings new, resolved, still open; trust anchors added or removed.

    Exit 0 when nothing new appeared, 1 when there are new findings or changed trust anchors.
    """

    def body() -> int:
        from sweeper import history
        from sweeper.detect import input_needs
        from sweeper.report.drift import diff

        db = history_db or history.default_path(out)
        drift = diff(history.find_snapshot(db, old), history.find_snapshot(db, new), input_needs())
        show_drift(drift)
        return EXIT_FINDINGS if drift.drifted else EXIT_OK

    run(body)


def show_drift(drift: Drift) -> None:
    """Drift on stdout; text from reports is shown as plain text, never as rich markup."""
    from rich.table import Table

    from sweeper.cli.console import SEVERITY_STYLE, plain, stdout_console

    console = stdout_console()
    old, new = drift.old, drift.new
    console.print(plain(f"drift from run {old.run_id} ({old.started}) to {new.run_id} ({new.started})"))
    for title, items in (
        ("New findings", drift.new_findings),
        ("Resolved findings", drift.resolved),
        ("Still open", drift.still_open),
        ("Not re-checked (node not swept in the later run)", drift.not_rechecked),
    ):
        if not items:
            continue
        table = Table(title=f"{title} ({len(items)})", title_justify="left")
        for column in ("severity", "rule", "node", "entry", "message"):
            table.add_column(column, overflow="fold")
        for item in items:
            cells = (item.rule, item.node or "fleet", item.entry or "", item.message)
            label = item.severity.label
            table.add_row(plain(label, SEVERITY_STYLE[label]), *(plain(cell) for cell in cells))
        console.print(table)
    for mark, changes in (("+ added", drift.anchors_added), ("- removed", drift.anchors_removed)):
        for change in changes:
            console.print(
                plain(f"{mark} trust anchor on {change.node}: {change.subject} (sha256 {change.sha256})")
            )
    if drift.not_compared:
        skipped = ", ".join(drift.not_compared)
        console.print(plain(f"trust anchors not compared (not swept in both runs): {skipped}"))
    if not drift.drifted:
        console.print("no new findings, no trust anchor changes")
