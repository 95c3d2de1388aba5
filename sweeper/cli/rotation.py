"""`sweeper rotate`, `resume` and `rollback`: replace everything, the root included, with a way back."""

from __future__ import annotations

import os
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sweeper.cli.app import (
    FormatOption,
    LimitOption,
    MaxNodeBytesOption,
    OutOption,
    RetriesOption,
    SignOption,
    byte_size,
    command,
    fail_on_severity,
    run,
)
from sweeper.errors import EXIT_DECLINED, EXIT_INCOMPLETE, EXIT_OK, EXIT_ROTATION_STOPPED, BadInput

if TYPE_CHECKING:
    from sweeper.model import Report, Severity
    from sweeper.report.publish import Publication
    from sweeper.rotate.plan import Plan
    from sweeper.rotate.service import Prepared, RotationResult

JOURNAL_PASSPHRASE_ENV = "SWEEPER_JOURNAL_PASSPHRASE"
FailOnOption = Annotated[
    str,
    typer.Option(
        metavar="SEVERITY",
        help="Exit 1 when the verify sweep finds this or worse: critical, high, medium, low or info.",
    ),
]
JournalArgument = Annotated[Path, typer.Argument(metavar="JOURNAL", help="The rotation's journal folder.")]


@command(
    "rotate",
    examples="""
    sweeper rotate fleet.toml --from reports/20261202T0300Z-1a2b3c4d.json --dry-run
    sweeper rotate fleet.toml --from scan.json --new-root --canary 1 --wave 10% --max-failures 2
    sweeper rotate fleet.toml --from scan.json --from-pub report.pub --ca-cert ca.pem --ca-key ca.key
    """,
)
def rotate_command(
    inventory: Annotated[Path, typer.Argument(metavar="INVENTORY", help="Inventory file.")],
    source: Annotated[
        Path,
        typer.Option("--from", metavar="REPORT", help="The scan report whose findings the rotation fixes."),
    ],
    from_pub: Annotated[
        Path | None,
        typer.Option(
            "--from-pub",
            metavar="KEY",
            help="Ed25519 public key: refuse a --from report its <FILE>.sig does not prove.",
        ),
    ] = None,
    new_root: Annotated[
        bool,
        typer.Option(
            "--new-root",
            help="Make a new root CA: what happens unless --ca-cert/--ca-key name one (not both).",
        ),
    ] = False,
    key_type: Annotated[
        str, typer.Option(metavar="TYPE", help="New root key: rsa3072, rsa4096 or ec-p384.")
    ] = "rsa3072",
    ca_cert: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Sign with this existing CA certificate (PEM).")
    ] = None,
    ca_key: Annotated[
        Path | None, typer.Option(metavar="FILE", help="The CA's private key (PEM, may be encrypted).")
    ] = None,
    ca_passphrase_env: Annotated[
        str, typer.Option(metavar="VAR", help="Variable holding the CA key's passphrase.")
    ] = ("SWEEPER_CA_PASSPHRASE"),
    canary: Annotated[int, typer.Option(metavar="N", min=0, help="Nodes re-issued first, alone.")] = 1,
    wave: Annotated[
        str, typer.Option(metavar="N|PCT%", help="Nodes per wave after the canary: N or PCT%.")
    ] = "25%",
    max_failures: Annotated[
        str, typer.Option(metavar="N|PCT%", help="Failed nodes tolerated before stopping: N or PCT%.")
    ] = "0",
    journal: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Journal folder (default: journals/<time>).")
    ] = None,
    limit: LimitOption = [],  # noqa: B006
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and change nothing.")] = False,
    show_scripts: Annotated[
        bool, typer.Option("--show-scripts", help="With --dry-run: print every change script on stdout.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Purge even if some nodes were not re-issued.")
    ] = False,
    allow_partial: Annotated[bool, typer.Option(help="Start although some nodes are unreachable.")] = False,
    concurrency: Annotated[
        int, typer.Option(metavar="N", min=1, help="Nodes changed at once within a wave.")
    ] = 50,
    retries: RetriesOption = 4,
    max_node_bytes: MaxNodeBytesOption = "64MiB",
    leaf_days: Annotated[
        int, typer.Option(metavar="DAYS", min=1, help="Validity of the re-issued leaves.")
    ] = 730,
    new_data_encipherment_key: Annotated[
        bool,
        typer.Option(
            "--new-data-encipherment-key",
            help="vCenter: give data-encipherment a new key (stored guest-customization passwords "
            "become unreadable) instead of a new certificate for its key.",
        ),
    ] = False,
    out: OutOption = Path("reports"),
    formats: FormatOption = [],  # noqa: B006
    fail_on: FailOnOption = "high",
    sign: SignOption = None,
) -> None:
    """Replace every certificate, the root included: trust first, canary then waves, purge last."""
    threshold = fail_on_severity(fail_on)
    answer_cap = byte_size(max_node_bytes)

    def body() -> int:
        from sweeper.cli.console import err, progress_reporter, terminal_prompt
        from sweeper.cli.publishing import publication_for
        from sweeper.inventory import load_inventory
        from sweeper.report import schema
        from sweeper.report.manifest import load_verified
        from sweeper.rotate.journal import Journal
        from sweeper.rotate.plan import WaveOptions
        from sweeper.rotate.service import RotateRequest, prepare, start
        from sweeper.ssh import RetryPolicy

        if new_root and (ca_cert or ca_key):
            raise BadInput("choose --new-root or --ca-cert/--ca-key, not both")
        if show_scripts and not dry_run:
            raise BadInput("--show-scripts goes with --dry-run")
        source_report = load_verified(source, from_pub) if from_pub else schema.load(source)
        publication = publication_for(out, formats, threshold, sign, None)
        ask = terminal_prompt()
        request = RotateRequest(
            inventory=inventory,
            source=source_report,
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
            max_node_bytes=answer_cap,
            new_data_encipherment_key=new_data_encipherment_key,
        )
        if not dry_run:
            Journal.check_new(request.journal_dir)  # before the sweep, not after it
        to_sweep = len(load_inventory(inventory).limited(limit))
        err.rule("preflight: sweeping the fleet (read-only)")
        with progress_reporter(to_sweep) as on_node:
            prepared = prepare(request, ask, on_node)
        show_plan(prepared.plan)
        if show_scripts:
            print_scripts(prepared)
        if dry_run:
            err.print("dry run: nothing was changed")
            return EXIT_OK
        if not yes:
            if not sys.stdin.isatty():
                raise BadInput("rotation changes every node: pass --yes to go ahead without a terminal")
            if not typer.confirm("Go ahead with this rotation?", err=True):
                err.print("nothing was changed")
                return EXIT_DECLINED
        passphrase = journal_passphrase(new=True)
        err.rule(f"rotating (journal {request.journal_dir})")
        with RotationProgress() as progress:
            result = start(prepared, request, passphrase, sys.argv, ask, progress)
        return finish_rotation(result, out, publication)

    run(body)


@command("resume", examples="sweeper resume journals/20261202T031500Z")
def resume_command(
    journal: JournalArgument,
    out: OutOption = Path("reports"),
    formats: FormatOption = [],  # noqa: B006
    fail_on: FailOnOption = "high",
    sign: SignOption = None,
) -> None:
    """Go on with an interrupted rotation; finished steps are not redone."""
    threshold = fail_on_severity(fail_on)

    def body() -> int:
        from sweeper.cli.console import terminal_prompt
        from sweeper.cli.publishing import publication_for
        from sweeper.rotate.journal import Journal
        from sweeper.rotate.service import resume

        Journal.must_exist(journal)
        publication = publication_for(out, formats, threshold, sign, None)
        with RotationProgress() as progress:
            result = resume(journal, journal_passphrase(new=False), terminal_prompt(), progress)
        return finish_rotation(result, out, publication)

    run(body)


@command(
    "rollback",
    examples="""
    sweeper rollback journals/20261202T031500Z
    sweeper rollback journals/20261202T031500Z --node esx-01 --node esx-02
    """,
)
def rollback_command(
    journal: JournalArgument,
    node: Annotated[
        list[str], typer.Option("--node", metavar="NAME", help="Only this node (repeatable).")
    ] = [],  # noqa: B006
    out: OutOption = Path("reports"),
    formats: FormatOption = [],  # noqa: B006
    sign: SignOption = None,
) -> None:
    """Put back every file and VECS entry the rotation changed, byte for byte, newest first; then
    sweep those nodes and write a `rollback` report (and its history row)."""

    def body() -> int:
        from sweeper.cli.console import err, plain, show_summary, terminal_prompt
        from sweeper.cli.publishing import publication_for
        from sweeper.model import Severity
        from sweeper.report.publish import publish
        from sweeper.rotate.journal import Journal
        from sweeper.rotate.service import rollback

        Journal.must_exist(journal)
        publication = publication_for(out, formats, Severity.CRITICAL, sign, None)
        with RotationProgress() as progress:
            result = rollback(journal, journal_passphrase(new=False), node, terminal_prompt(), progress)
        paths = publish(result.report, out, publication)
        show_summary(result.report)
        failed = {name: r["error"] for name, r in result.restored.items() if "error" in r}
        for name, error in failed.items():
            err.print(plain("  ") + plain(name, "red") + plain(f": {error}"))
        restored = sum(r.get("restored", 0) for r in result.restored.values())
        done = len(result.restored) - len(failed)
        err.print(f"rolled back {done}/{len(result.restored)} node(s), {restored} backup(s) restored")
        for path in paths:
            typer.echo(str(path))
        return EXIT_INCOMPLETE if failed else EXIT_OK

    run(body)


def journal_passphrase(new: bool) -> str:
    """The journal's passphrase: from $SWEEPER_JOURNAL_PASSPHRASE, or asked (twice for a new journal)."""
    import getpass

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
    from sweeper.cli.console import err, plain
    from sweeper.rotate.plan import PHASES

    for phase in PHASES:
        steps = plan.for_phase(phase)
        err.rule(f"{phase} ({len(steps)} steps)")
        for node in dict.fromkeys(s.node for s in steps):
            err.print(plain(node, "bold"))
            for step in plan.for_phase(phase, [node]):
                err.print(plain(f"  {step.describe()}"))
    waves = " → ".join(f"({', '.join(w)})" for w in plan.waves)
    err.print(plain(f"waves: {waves or 'none'}; failure budget: {plan.max_failures} node(s)"))
    err.rule(f"the purge removes {len(plan.remove)} certificate(s) from every store that holds them")
    for sha, removal in plan.remove.items():
        why, where = ", ".join(removal.reasons), ", ".join(removal.nodes)
        err.print(plain(f"  {removal.subject}  sha256 {sha}  ({why}; on {where})"), soft_wrap=True)
    for skipped in plan.skipped:
        err.print(plain(f"not replaced: {skipped.node} {skipped.store} {skipped.entry}: {skipped.reason}"))
    for step in plan.steps:
        if step.consequence:
            err.print(plain(f"WARNING {step.node} {step.target}: {step.consequence}", "bold"))


def print_scripts(prepared: Prepared) -> None:
    """Every change script of the plan on stdout, for `--dry-run --show-scripts` (as alembic's --sql)."""
    from sweeper.rotate import remote
    from sweeper.rotate.plan import PHASES
    from sweeper.rotate.steps import ScriptContext

    context = ScriptContext.preview(prepared.ca)
    nodes = {node.name: node for node in prepared.nodes}
    print("# Every script runs on its node through `sh` on stdin, after these helpers, framed by a")
    print("# random token and an end marker; reads and read-backs are not shown. <...> is known at run time.")
    print(remote.script("").rstrip())
    for phase in PHASES:
        for step in prepared.plan.for_phase(phase):
            for what, script in step.scripts(context, nodes[step.node]):
                print(f"\n# --- {phase} / {step.node} / {step.name}: {what}")
                print(script.rstrip())


class RotationProgress:
    """Rotation progress on stderr: a live line on a terminal (phase, nodes done, failures);
    otherwise one line per phase and one per failure, never a line per node per phase."""

    def __init__(self) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from sweeper.cli.console import err

        self.phase: str | None = None
        self.done = self.failed = 0
        self.live = None
        if err.is_terminal:
            columns = (SpinnerColumn(), TextColumn("{task.description}", markup=False), TimeElapsedColumn())
            self.live = Progress(*columns, console=err, transient=True)
            self.task = self.live.add_task("", total=None)

    def __enter__(self) -> RotationProgress:
        if self.live:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._close_phase()
        if self.live:
            self.live.stop()

    def __call__(self, phase: str, node: str, status: str) -> None:
        from sweeper.cli.console import err, plain

        if phase != self.phase:
            self._close_phase()
            self.phase, self.done, self.failed = phase, 0, 0
        if status.startswith("waiting"):  # not done yet: said once, so a long wait is not a hang
            err.print(plain(f"{phase:>9}  {node}: {status}", "yellow"), soft_wrap=True)
            return
        self.done += 1
        if status.startswith("failed"):
            self.failed += 1
            err.print(plain(f"{phase:>9}  {node}: {status}", "red"), soft_wrap=True)
        if self.live:
            self.live.update(
                self.task, description=f"{phase}: {self.done} node(s) done, {self.failed} failed"
            )

    def _close_phase(self) -> None:
        from sweeper.cli.console import err, plain

        if self.phase is not None:
            err.print(plain(f"{self.phase:>9}  {self.done} node(s) done, {self.failed} failed"))
            self.phase = None


def finish_rotation(result: RotationResult, out: Path, publication: Publication) -> int:
    """Write the rotation report, say where it stopped and how to go on, and choose the exit code."""
    from sweeper.cli.console import err, plain, show_summary
    from sweeper.cli.publishing import exit_code
    from sweeper.report.publish import publish

    paths = publish(result.report, out, publication)
    show_summary(result.report)
    outcome = result.outcome
    if outcome.forced and outcome.failed:
        err.print("[bold red]--force: the purge ran although some nodes were not re-issued[/]")
    if not outcome.complete:
        journal = result.journal_dir
        for node, error in outcome.failed.items():
            err.print(plain("  ") + plain(node, "red") + plain(f": {error}"))
        err.print(
            plain(f"rotation stopped at {outcome.stopped_at}", "bold yellow")
            + plain(f" (journal {journal}): fix the nodes above, then `sweeper resume {journal}`")
            + plain(f", or undo it all with `sweeper rollback {journal}`")
        )
    else:
        _say_what_remains(result.report, publication.options.fail_on)
    for path in paths:
        typer.echo(str(path))
    if not outcome.complete:
        return EXIT_ROTATION_STOPPED
    return exit_code(result.report, publication.options.fail_on)


def _say_what_remains(report: Report, threshold: Severity) -> None:
    """A finished rotation whose verify sweep still finds something at or above --fail-on is not a
    clean fleet: say so, naming the rules, rather than let "complete" stand alone."""
    from sweeper.cli.console import err, plain

    remaining = Counter(f.rule for f in report.findings if f.severity >= threshold)
    if remaining:
        rules = ", ".join(f"{rule} ({count})" for rule, count in remaining.most_common())
        err.print(
            plain(f"the rotation finished, but its verify sweep finds {threshold.label} or worse: ", "red")
            + plain(rules)
        )
