"""The command line: parse, call, render, exit. The only module that exits or talks to the terminal."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from sweeper import __version__, history, keycache
from sweeper.detect import Context
from sweeper.errors import EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK, BadInput, SweeperError
from sweeper.incident import load_incident
from sweeper.inventory import load_inventory
from sweeper.model import NodeResult, Report, Severity
from sweeper.pki.sign import load_signer, verify_file
from sweeper.report import schema
from sweeper.report.drift import Drift, diff
from sweeper.report.formats import parse_formats, stem_of, write_formats
from sweeper.report.options import RenderOptions
from sweeper.report.publish import Publication, publish
from sweeper.report.schema import SEVERITIES
from sweeper.rotate import remote
from sweeper.rotate.plan import PHASES, Plan, WaveOptions
from sweeper.rotate.service import Prepared, RotateRequest, RotationResult, prepare, start
from sweeper.rotate.service import resume as resume_rotation
from sweeper.rotate.service import rollback as rollback_rotation
from sweeper.rotate.steps import ScriptContext
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


FormatOption = Annotated[
    list[str],
    typer.Option("--format", help="Formats besides the canonical JSON: html,md,csv,junit,sarif or all."),
]
HistoryOption = Annotated[
    Path | None, typer.Option("--history", help="History database (default: <out>/history.sqlite).")
]


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
    crl: Annotated[
        list[Path], typer.Option("--crl", help="CRL file or folder of CRLs, PEM or DER (repeatable).")
    ] = [],  # noqa: B006
    ioc: Annotated[
        list[Path], typer.Option("--ioc", help="IOC file: fingerprints, spki:, serial:, PEM (repeatable).")
    ] = [],  # noqa: B006
    compromised_ca: Annotated[
        list[Path], typer.Option("--compromised-ca", help="Certificate of a compromised CA (repeatable).")
    ] = [],  # noqa: B006
    ca: Annotated[
        list[Path], typer.Option("--ca", help="Issuer certificates to check CRLs and OCSP with.")
    ] = [],  # noqa: B006
    expected_roots: Annotated[
        Path | None, typer.Option(help="PEM bundle of the roots the fleet should trust (for rogue-root).")
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(help="Earlier scan report (JSON) whose anchors are expected; 'last': the previous run."),
    ] = None,
    ocsp: Annotated[bool, typer.Option("--ocsp", help="Also ask each certificate's OCSP responder.")] = False,
    ocsp_timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for an OCSP answer.")] = 5.0,
    badkeys_blocklist: Annotated[
        Path | None, typer.Option(help="badkeys' blocklist.dat (or its folder) for known-compromised-key.")
    ] = None,
    formats: FormatOption = [],  # noqa: B006
    sign: Annotated[
        Path | None, typer.Option(help="Ed25519 private key (PKCS#8 PEM): write a detached <stem>.json.sig.")
    ] = None,
    history_db: HistoryOption = None,
    key_cache: Annotated[
        bool,
        typer.Option(help="Remember each key file's public key (by its hash) to skip openssl next time."),
    ] = True,
) -> None:
    """Sweep the inventory's nodes (read-only) and report what is revoked or suspect."""
    threshold = fail_on_severity(fail_on)

    def run() -> int:
        inv = load_inventory(inventory)
        nodes = inv.limited(limit)
        publication = publication_for(out, formats, threshold, sign, history_db)
        incident = load_incident(
            crls=crl,
            iocs=ioc,
            compromised_cas=compromised_ca,
            cas=ca,
            expected_roots=expected_roots,
            baseline=history.last_report_path(publication.history) if baseline == Path("last") else baseline,
            badkeys_blocklist=badkeys_blocklist,
        )
        options = ScanOptions(
            concurrency=concurrency,
            retry=RetryPolicy(attempts=retries),
            context=Context(
                expiring_days=expiring_days, incident=incident, ocsp=ocsp, ocsp_timeout=ocsp_timeout
            ),
            rules=tuple(rule) or None,
            ask=terminal_prompt(),
            key_cache=keycache.default_path() if key_cache else None,
        )
        with progress_reporter(len(nodes)) as on_node:
            report = scan(inv, nodes, options, argv=sys.argv, on_node=on_node)
        return finish(report, out, threshold, publication)

    raise typer.Exit(guarded(run))


def terminal_prompt() -> Callable[[str], str] | None:
    """Ask for missing secrets on a terminal (never echoed); None when nobody can answer."""
    if not sys.stdin.isatty():
        return None
    return lambda prompt: getpass.getpass(f"sweeper: {prompt}")


def publication_for(
    out: Path, formats: list[str], threshold: Severity, sign: Path | None, history_db: Path | None
) -> Publication:
    """Check every output option before the sweep starts: a bad format, key or history path is exit 2."""
    db = history_db or history.default_path(out)
    publication = Publication(
        formats=parse_formats(["json", *formats]),
        options=RenderOptions(fail_on=threshold),
        signer=load_signer(sign) if sign else None,
        history=db,
    )
    history.check(db)
    return publication


def finish(report: Report, out: Path, threshold: Severity, publication: Publication) -> int:
    """Write the report in every format asked for, show the summary, and choose the exit code."""
    paths = publish(report, out, publication)
    show_summary(report)
    for path in paths:
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


EXIT_SIGNATURE_INVALID = 1


@app.command("report")
def report_command(
    report_file: Annotated[Path, typer.Argument(help="A sweeper.report/1 JSON file.")],
    formats: FormatOption = ["html"],  # noqa: B006
    out: Annotated[Path | None, typer.Option(help="Folder for the files (default: the report's).")] = None,
    fail_on: Annotated[str, typer.Option(help="JUnit failures at or above this severity.")] = "high",
) -> None:
    """Render a past run's JSON report in other formats; the JSON stays the single source."""
    threshold = fail_on_severity(fail_on)

    def run() -> int:
        chosen = parse_formats(formats)
        report = schema.load(report_file)
        target = out or report_file.parent
        for path in write_formats(report, target, stem_of(report_file), chosen, RenderOptions(threshold)):
            typer.echo(str(path))
        return EXIT_OK

    raise typer.Exit(guarded(run))


@app.command("verify-report")
def verify_report_command(
    report_file: Annotated[Path, typer.Argument(help="The signed file (a report's JSON).")],
    pub: Annotated[Path, typer.Option("--pub", help="Ed25519 public key (SubjectPublicKeyInfo PEM).")],
    sig: Annotated[Path | None, typer.Option(help="The signature (default: <FILE>.sig).")] = None,
) -> None:
    """Check a report's detached signature: exit 0 valid, 1 invalid, 2 bad input (a malformed report too)."""

    def run() -> int:
        verdict = verify_file(report_file, pub, sig)
        if verdict.valid:
            schema.parse(verdict.data, report_file)
            typer.echo(f"{report_file}: signature valid (key sha256 {verdict.key_sha256})")
            return EXIT_OK
        typer.echo(
            f"sweeper: {report_file}: signature {verdict.signature} does not match "
            f"(key sha256 {verdict.key_sha256}): the file was altered or signed by another key",
            err=True,
        )
        return EXIT_SIGNATURE_INVALID

    raise typer.Exit(guarded(run))


@app.command("history")
def history_command(
    out: Annotated[Path, typer.Option(help="The reports folder.")] = Path("reports"),
    history_db: HistoryOption = None,
    limit: Annotated[int, typer.Option(min=1, help="Show this many runs, newest first.")] = 20,
) -> None:
    """List recorded runs, newest first."""

    def run() -> int:
        table = Table(box=None, pad_edge=False)
        for column in ("run", "kind", "started", "swept", "certs", "findings c/h/m/l/i"):
            table.add_column(column, no_wrap=True)
        table.add_column("report", overflow="fold")
        for row in history.runs(history_db or history.default_path(out), limit):
            swept = f"{row.nodes_swept}/{row.nodes}" + (" interrupted" if row.interrupted else "")
            counts = "/".join(str(row.findings[name]) for name in SEVERITIES)
            report = str(row.report_path)
            table.add_row(row.id, row.kind, row.started, swept, str(row.certificates), counts, report)
        stdout_console().print(table)
        return EXIT_OK

    raise typer.Exit(guarded(run))


@app.command("diff")
def diff_command(
    old: Annotated[str, typer.Argument(help="The earlier run: run id (or unique prefix) or report file.")],
    new: Annotated[str, typer.Argument(help="The later run: run id (or unique prefix) or report file.")],
    out: Annotated[Path, typer.Option(help="The reports folder.")] = Path("reports"),
    history_db: HistoryOption = None,
) -> None:
    """Show drift between two runs: findings new, resolved, still open; trust anchors added or removed.

    Exit 0 when nothing new appeared, 1 when there are new findings or changed trust anchors.
    """

    def run() -> int:
        db = history_db or history.default_path(out)
        drift = diff(history.find_snapshot(db, old), history.find_snapshot(db, new))
        show_drift(drift)
        return EXIT_FINDINGS if drift.drifted else EXIT_OK

    raise typer.Exit(guarded(run))


def stdout_console() -> Console:
    """Data goes to stdout; piped into a file or mail it is laid out wide rather than folded at 80."""
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def show_drift(drift: Drift) -> None:
    """Drift on stdout; text from reports is shown as plain text, never as rich markup."""
    console = stdout_console()
    old, new = drift.old, drift.new
    console.print(Text(f"drift from run {old.run_id} ({old.started}) to {new.run_id} ({new.started})"))
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
            table.add_row(Text(label, style=SEVERITY_STYLE[label]), *(Text(cell) for cell in cells))
        console.print(table)
    for mark, changes in (("+ added", drift.anchors_added), ("- removed", drift.anchors_removed)):
        for change in changes:
            line = f"{mark} trust anchor on {change.node}: {change.subject} (sha256 {change.sha256})"
            console.print(Text(line))
    if drift.not_compared:
        skipped = ", ".join(drift.not_compared)
        console.print(Text(f"trust anchors not compared (not swept in both runs): {skipped}"))
    if not drift.drifted:
        console.print("no new findings, no trust anchor changes")


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
    """The whole story on a lab fleet: sweep the incident, rotate everything, sweep again."""

    def run() -> int:
        from sweeper.demo import LabIncident, expected_after_rotation, lab_journal_passphrase
        from sweeper.lab import start_lab

        err.rule("1. Start a lab fleet with a planted incident")
        with start_lab(dir, nodes) as lab:
            os.environ.update(lab.env)  # the lab's SSO password, for its vCenter nodes
            err.print(f"{nodes} nodes on 127.0.0.1 (inventory {lab.inventory})", highlight=False)
            inv = load_inventory(lab.inventory)
            incident = LabIncident.of(lab)
            publication = publication_for(out, ["all"], Severity.HIGH, None, None)

            err.rule("2. Sweep it with the incident's CRL, IOCs and compromised CA")
            with progress_reporter(len(inv.nodes)) as on_node:
                before = scan(inv, inv.nodes, ScanOptions(context=incident.context()), sys.argv, on_node)
            source = next(p for p in publish(before, out, publication) if p.suffix == ".json")
            show_summary(before)

            err.rule("3. Replace everything, the root included")
            journal = dir / "journals" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            request = RotateRequest(inventory=lab.inventory, source=schema.load(source), journal_dir=journal)
            prepared = prepare(request, None)
            err.print(
                f"plan: {len(prepared.plan.actions)} steps on {len(prepared.plan.waves)} wave(s), "
                f"{len(prepared.plan.remove)} certificate(s) to purge",
                highlight=False,
            )
            result = start(prepared, request, lab_journal_passphrase(lab), sys.argv, None, rotation_progress)
            publish(result.report, out, publication)

            err.rule("4. Sweep again")
            expected = expected_after_rotation(lab, journal, incident)
            with progress_reporter(len(inv.nodes)) as on_node:
                after = scan(
                    inv, inv.nodes, ScanOptions(context=incident.context(expected)), sys.argv, on_node
                )
            paths = publish(after, out, publication)
            show_summary(after)
            show_before_after(before, after)
        err.rule("Done")
        err.print(
            f"reports in {out}/ ({paths[0].stem}.*); journal in {journal} "
            f"(sweeper rollback {journal} puts the old certificates back on a running lab)",
            highlight=False,
        )
        return EXIT_OK if result.outcome.complete else EXIT_INCOMPLETE

    raise typer.Exit(guarded(run))


def show_before_after(before: Report, after: Report) -> None:
    table = Table(title="Findings by severity", title_justify="left")
    for column in ("", *(s.label for s in sorted(Severity, reverse=True))):
        table.add_column(column)
    for name, report in (("before", before), ("after", after)):
        counts = [sum(1 for f in report.findings if f.severity == s) for s in sorted(Severity, reverse=True)]
        table.add_row(name, *(str(c) for c in counts))
    err.print(table)


JOURNAL_PASSPHRASE_ENV = "SWEEPER_JOURNAL_PASSPHRASE"


def journal_passphrase(new: bool) -> str:
    """The journal's passphrase: from $SWEEPER_JOURNAL_PASSPHRASE, or asked (twice for a new journal)."""
    value = os.environ.get(JOURNAL_PASSPHRASE_ENV)
    if value:
        return value
    if not sys.stdin.isatty():
        raise BadInput(f"set {JOURNAL_PASSPHRASE_ENV}: the journal keeps private keys, sealed with it")
    first = getpass.getpass("sweeper: journal passphrase: ")
    if new and getpass.getpass("sweeper: journal passphrase again: ") != first:
        raise BadInput("the two passphrases differ")
    if not first:
        raise BadInput("an empty journal passphrase would not protect the keys in it")
    return first


def show_plan(plan: Plan) -> None:
    """Per phase, per node: what is added, replaced, removed, and which commands run."""
    for phase in PHASES:
        steps = plan.for_phase(phase)
        err.rule(f"{phase} ({len(steps)} steps)")
        for node in dict.fromkeys(s.node for s in steps):
            err.print(Text(node, style="bold"))
            for step in plan.for_phase(phase, [node]):
                err.print(Text(f"  {step.describe()}"))
    waves = " → ".join(f"({', '.join(w)})" for w in plan.waves)
    err.print(f"waves: {waves or 'none'}; failure budget: {plan.max_failures} node(s)", markup=False)
    err.print(f"certificates the purge removes: {len(plan.remove)}", highlight=False)


def show_scripts(prepared: Prepared) -> None:
    """Every change script of the plan on stdout, for `--dry-run --show-scripts` (as alembic's --sql)."""
    context = ScriptContext.preview(prepared.ca)
    nodes = {node.name: node for node in prepared.nodes}
    print("# Every script runs on its node through `sh` on stdin, after these helpers, framed by a")
    print("# random token and an end marker; reads and read-backs are not shown. <...> is known at run time.")
    print(remote.script("").rstrip())
    for phase in PHASES:
        for step in prepared.plan.for_phase(phase):
            for what, body in step.scripts(context, nodes[step.node]):
                print(f"\n# --- {phase} / {step.node} / {step.name}: {what}")
                print(body.rstrip())


def rotation_progress(phase: str, node: str, status: str) -> None:
    err.print(f"{phase:>9}  {node}: {status}", highlight=False)


def finish_rotation(result: RotationResult, out: Path, publication: Publication) -> int:
    paths = publish(result.report, out, publication)
    show_summary(result.report)
    outcome = result.outcome
    if outcome.forced and outcome.failed:
        err.print("[bold red]--force: the purge ran although some nodes were not re-issued[/]")
    if not outcome.complete:
        for node, error in outcome.failed.items():
            err.print(f"  [red]{node}[/]: {error}", highlight=False)
        err.print(
            f"[bold yellow]rotation stopped at {outcome.stopped_at}[/]; fix the nodes above, then: "
            f"sweeper resume {result.journal_dir}",
            highlight=False,
        )
    for path in paths:
        typer.echo(str(path))
    if not outcome.complete:
        return EXIT_INCOMPLETE
    return exit_code(result.report, publication.options.fail_on)


@app.command("rotate")
def rotate_command(
    inventory: Annotated[Path, typer.Argument(help="Inventory file.")],
    source: Annotated[
        Path, typer.Option("--from", help="The scan report whose findings the rotation fixes.")
    ],
    new_root: Annotated[
        bool, typer.Option("--new-root", help="Generate a new root CA (the default).")
    ] = False,
    key_type: Annotated[str, typer.Option(help="New root key: rsa3072, rsa4096 or ec-p384.")] = "rsa3072",
    ca_cert: Annotated[
        Path | None, typer.Option(help="Sign with this existing CA certificate (PEM).")
    ] = None,
    ca_key: Annotated[Path | None, typer.Option(help="The CA's private key (PEM, may be encrypted).")] = None,
    ca_passphrase_env: Annotated[str, typer.Option(help="Variable holding the CA key's passphrase.")] = (
        "SWEEPER_CA_PASSPHRASE"
    ),
    canary: Annotated[int, typer.Option(min=0, help="Nodes re-issued first, alone.")] = 1,
    wave: Annotated[str, typer.Option(help="Nodes per wave after the canary: N or PCT%.")] = "25%",
    max_failures: Annotated[
        str, typer.Option(help="Failed nodes tolerated before stopping: N or PCT%.")
    ] = "0",
    journal: Annotated[Path | None, typer.Option(help="Journal folder (default: journals/<time>).")] = None,
    limit: Annotated[list[str], typer.Option("--limit", help="Only nodes with this name or tag.")] = [],  # noqa: B006
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and change nothing.")] = False,
    show_scripts_: Annotated[
        bool, typer.Option("--show-scripts", help="With --dry-run: print every change script on stdout.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Purge even if some nodes were not re-issued.")
    ] = False,
    allow_partial: Annotated[bool, typer.Option(help="Start although some nodes are unreachable.")] = False,
    concurrency: Annotated[int, typer.Option(min=1, help="Nodes changed at once within a wave.")] = 50,
    retries: Annotated[int, typer.Option(min=1, help="Connection attempts per node (transient faults).")] = 4,
    leaf_days: Annotated[int, typer.Option(min=1, help="Validity of the re-issued leaves.")] = 730,
    out: Annotated[Path, typer.Option(help="Folder for the reports.")] = Path("reports"),
    formats: FormatOption = [],  # noqa: B006
    fail_on: Annotated[str, typer.Option(help="Exit 1 when the verify sweep finds this or worse.")] = "high",
    sign: Annotated[
        Path | None, typer.Option(help="Ed25519 private key (PKCS#8 PEM): write a detached <stem>.json.sig.")
    ] = None,
) -> None:
    """Replace every certificate, the root included: trust first, canary then waves, purge last."""
    threshold = fail_on_severity(fail_on)

    def run() -> int:
        if new_root and (ca_cert or ca_key):
            raise BadInput("choose --new-root or --ca-cert/--ca-key, not both")
        if show_scripts_ and not dry_run:
            raise BadInput("--show-scripts goes with --dry-run")
        publication = publication_for(out, formats, threshold, sign, None)
        ask = terminal_prompt()
        request = RotateRequest(
            inventory=inventory,
            source=schema.load(source),
            journal_dir=journal or Path("journals") / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
            root_key_type=key_type,
            ca_cert=ca_cert,
            ca_key=ca_key,
            ca_passphrase=os.environ.get(ca_passphrase_env),
            waves=WaveOptions(canary, wave, max_failures),
            limit=tuple(limit),
            force=force,
            allow_partial=allow_partial,
            concurrency=concurrency,
            retry=RetryPolicy(attempts=retries),
            leaf_days=leaf_days,
        )
        to_sweep = len(load_inventory(inventory).limited(limit))
        err.rule("preflight: sweeping the fleet (read-only)")
        with progress_reporter(to_sweep) as on_node:
            prepared = prepare(request, ask, on_node)
        show_plan(prepared.plan)
        if show_scripts_:
            show_scripts(prepared)
        if dry_run:
            err.print("dry run: nothing was changed")
            return EXIT_OK
        if not yes:
            if not sys.stdin.isatty():
                raise BadInput("rotation changes every node: pass --yes to go ahead without a terminal")
            if not typer.confirm("Go ahead with this rotation?", err=True):
                return EXIT_OK
        passphrase = journal_passphrase(new=True)
        err.rule(f"rotating (journal {request.journal_dir})")
        result = start(prepared, request, passphrase, sys.argv, ask, rotation_progress)
        return finish_rotation(result, out, publication)

    raise typer.Exit(guarded(run))


@app.command("resume")
def resume_command(
    journal: Annotated[Path, typer.Argument(help="The rotation's journal folder.")],
    out: Annotated[Path, typer.Option(help="Folder for the reports.")] = Path("reports"),
    formats: FormatOption = [],  # noqa: B006
    fail_on: Annotated[str, typer.Option(help="Exit 1 when the verify sweep finds this or worse.")] = "high",
    sign: Annotated[
        Path | None, typer.Option(help="Ed25519 private key (PKCS#8 PEM): write a detached <stem>.json.sig.")
    ] = None,
) -> None:
    """Go on with an interrupted rotation; finished steps are not redone."""
    threshold = fail_on_severity(fail_on)

    def run() -> int:
        publication = publication_for(out, formats, threshold, sign, None)
        result = resume_rotation(journal, journal_passphrase(new=False), terminal_prompt(), rotation_progress)
        return finish_rotation(result, out, publication)

    raise typer.Exit(guarded(run))


@app.command("rollback")
def rollback_command(
    journal: Annotated[Path, typer.Argument(help="The rotation's journal folder.")],
    node: Annotated[list[str], typer.Option("--node", help="Only this node (repeatable).")] = [],  # noqa: B006
) -> None:
    """Put back every file and VECS entry the rotation changed, byte for byte, newest first."""

    def run() -> int:
        results = rollback_rotation(
            journal, journal_passphrase(new=False), node, terminal_prompt(), rotation_progress
        )
        failed = {name: r["error"] for name, r in results.items() if "error" in r}
        for name, error in failed.items():
            err.print(f"  [red]{name}[/]: {error}", highlight=False)
        restored = sum(r.get("restored", 0) for r in results.values())
        err.print(
            f"rolled back {len(results) - len(failed)}/{len(results)} node(s), {restored} backup(s) restored"
        )
        return EXIT_INCOMPLETE if failed else EXIT_OK

    raise typer.Exit(guarded(run))


@app.command("version")
def version_command() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:  # pragma: no cover - console entry
    app()
