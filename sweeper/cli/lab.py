"""`sweeper lab up|down` and `sweeper demo`: a simulated fleet on this machine, and the whole story on it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sweeper.cli.app import OutOption, command, lab_app, run
from sweeper.errors import EXIT_INCOMPLETE, EXIT_OK, BadInput

if TYPE_CHECKING:
    from sweeper.model import NodeResult, Report

OTHER_FORMATS = ("html", "md", "certificates.csv", "findings.csv", "junit.xml", "sarif")
LabDir = Annotated[Path, typer.Option("--dir", metavar="DIR", help="Where the lab keeps its nodes.")]


@command(
    "up",
    examples="""
    sweeper lab up --nodes 20
    sweeper lab up --nodes 50 --hostile greedy-names,flood --dir /tmp/lab
    """,
    group=lab_app,
)
def lab_up(
    nodes: Annotated[int, typer.Option(metavar="N", min=1, help="How many simulated nodes.")] = 20,
    dir: LabDir = Path("lab"),
    seed: Annotated[
        int, typer.Option(metavar="N", help="Seed for the fleet's layout and planted incident.")
    ] = 0,
    hostile: Annotated[
        list[str],
        typer.Option(
            metavar="MODES",
            help="Add a node that lies to sweeper: greedy-names, forged-issuer, lying-openssl, flood, "
            "multiple-modulus, deep-chain, same-name-cas, many-anchors.",
        ),
    ] = [],  # noqa: B006
) -> None:
    """Start a simulated fleet on 127.0.0.1 in the background and write its inventory."""

    def body() -> int:
        from sweeper.cli.console import err, plain
        from sweeper.lab import start_lab

        kinds = tuple(kind.strip() for item in hostile for kind in item.split(",") if kind.strip())
        handle = start_lab(dir, nodes, seed=seed, hostile=kinds)
        typer.echo(str(handle.inventory))
        err.print(
            plain(
                f"{nodes} lab nodes up; sweep them with: sweeper scan {handle.inventory}\n"
                f"stop them with: sweeper lab down --dir {dir}"
            )
        )
        return EXIT_OK

    run(body)


@command("down", examples="sweeper lab down --dir /tmp/lab", group=lab_app)
def lab_down(dir: LabDir = Path("lab")) -> None:
    """Stop a lab started with `lab up`."""

    def body() -> int:
        from sweeper.cli.console import err, plain
        from sweeper.lab import stop_lab

        if not stop_lab(dir):
            raise BadInput(f"{dir}: no lab is running from this folder")
        err.print(plain(f"lab in {dir} stopped"))
        return EXIT_OK

    run(body)


@command("scan-args", examples="sweeper scan lab/inventory.toml $(sweeper lab scan-args)", group=lab_app)
def lab_scan_args(dir: LabDir = Path("lab")) -> None:
    """Print the planted incident's scan options (CRL, IOCs, compromised CA, expected roots).

    Example: sweeper scan lab/inventory.toml $(sweeper lab scan-args --dir lab)
    """

    def body() -> int:
        import json
        import shlex

        manifest = dir / "incident" / "manifest.json"
        try:
            args = json.loads(manifest.read_text())["scan_args"]
        except (OSError, ValueError, KeyError):
            raise BadInput(f"{dir}: no lab incident here (`sweeper lab up --dir {dir}` makes one)") from None
        typer.echo(" ".join(shlex.quote(arg) for arg in args))
        return EXIT_OK

    run(body)


@command("demo", examples="sweeper demo\nsweeper demo --nodes 50 --out demo-reports")
def demo_command(
    nodes: Annotated[int, typer.Option(metavar="N", min=5, help="How many simulated nodes.")] = 20,
    dir: LabDir = Path("lab"),
    out: OutOption = Path("reports"),
) -> None:
    """The whole story on a lab fleet: sweep the incident, rotate everything, sweep again."""

    def body() -> int:
        from sweeper.cli.console import err, plain, show_before_after
        from sweeper.demo import run_demo

        result = run_demo(dir, nodes, out, TerminalDemo(), sys.argv)
        show_before_after(result.before, result.after)
        err.rule("Done")
        others = " ".join(f".{name}" for name in OTHER_FORMATS)
        for name, path in result.reports.items():
            err.print(plain(f"{name:>9}: {path}  (+ {others})"), soft_wrap=True)
        err.print(plain(f"  journal: {result.journal}"), soft_wrap=True)
        return EXIT_OK if result.complete else EXIT_INCOMPLETE

    run(body)


class TerminalDemo:
    """The demo's story on stderr: rules for chapters, the sweep progress and summaries."""

    def chapter(self, title: str) -> None:
        from sweeper.cli.console import err

        err.rule(title)

    def note(self, text: str) -> None:
        from sweeper.cli.console import err, plain

        err.print(plain(text))

    def sweeping(self, total: int) -> AbstractContextManager[Callable[[NodeResult], None]]:
        from sweeper.cli.console import progress_reporter

        return progress_reporter(total)

    def swept(self, report: Report) -> None:
        from sweeper.cli.console import show_summary

        show_summary(report)

    def rotating(self) -> AbstractContextManager[Callable[[str, str, str], None]]:
        from sweeper.cli.rotation import RotationProgress

        return RotationProgress()
