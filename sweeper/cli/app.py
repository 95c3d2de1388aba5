"""The typer application and what every command shares: options, one error boundary, exit codes.

Only light modules are imported here and in the command modules' top level: each command
imports what it needs when it runs, so `sweeper --version` and `--help` answer at once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from sweeper import __version__
from sweeper.errors import SweeperError
from sweeper.model import Severity

app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
)
lab_app = typer.Typer(
    help="A simulated fleet on this machine, for demos, tests and benchmarks.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(lab_app, name="lab")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Find revoked or suspect certificates across a fleet over SSH, and replace them all."""


FormatOption = Annotated[
    list[str],
    typer.Option("--format", help="Formats besides the canonical JSON: html,md,csv,junit,sarif or all."),
]
HistoryOption = Annotated[
    Path | None, typer.Option("--history", help="History database (default: <out>/history.sqlite).")
]
OutOption = Annotated[Path, typer.Option(help="Folder for the reports.")]
FailOnOption = Annotated[str, typer.Option(help="Exit 1 when a finding is at or above this severity.")]
SignOption = Annotated[
    Path | None, typer.Option(help="Ed25519 private key (PKCS#8 PEM): write a detached <stem>.json.sig.")
]
LimitOption = Annotated[list[str], typer.Option("--limit", help="Only nodes with this name or tag.")]
RetriesOption = Annotated[int, typer.Option(min=1, help="Connection attempts per node (transient faults).")]
MaxNodeBytesOption = Annotated[
    str,
    typer.Option(
        help="Most one node may send for one command (bytes, or with K/M/G, KiB/MiB/GiB); "
        "a node past it is cut off and marked error."
    ),
]
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_SIZE_UNITS |= {f"{unit}ib": size for unit, size in _SIZE_UNITS.items() if unit}


def fail_on_severity(value: str) -> Severity:
    """`--fail-on` as a Severity; a wrong name is typer's own usage error (exit 2)."""
    try:
        return Severity.parse(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def byte_size(value: str) -> int:
    """`--max-node-bytes` in bytes: `67108864`, `64MiB`, `64M` (binary units); a wrong value is exit 2."""
    text = value.strip().lower()
    digits = len(text) - len(text.lstrip("0123456789"))
    unit = _SIZE_UNITS.get(text[digits:].strip())
    if digits == 0 or unit is None or int(text[:digits]) == 0:
        raise typer.BadParameter(f"{value!r} is not a size (e.g. 67108864, 64MiB, 512K)")
    return int(text[:digits]) * unit


def run(action: Callable[[], int]) -> NoReturn:
    """Run a command's body; a SweeperError becomes one line on stderr and its exit code."""
    try:
        code = action()
    except SweeperError as exc:
        typer.echo(f"sweeper: {exc.message}", err=True)
        code = exc.exit_code
    raise typer.Exit(code)
