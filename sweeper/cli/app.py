"""The typer application and what every command shares: options, one error boundary, exit codes.

Only light modules are imported here and in the command modules' top level: each command
imports what it needs when it runs, so `sweeper --version` and `--help` answer at once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperArgument, TyperCommand

from sweeper import __version__
from sweeper.errors import EXIT_BAD_INPUT, SweeperError, os_reason
from sweeper.model import Severity


class SweeperCommand(TyperCommand):
    """Help in the usual Unix shape: `Usage: sweeper scan [OPTIONS] INVENTORY`, and every value
    shown by what it is (`--out DIR`, `--fail-on SEVERITY`), never as a Python type (`<path>`).

    A value without a metavar of its own is shown by its name (`--retries RETRIES`)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        for param in self.params:
            if param.metavar is None and not getattr(param, "is_flag", False):
                param.metavar = (param.name or "value").upper()

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = f"{param.metavar}..." if param.nargs != 1 else str(param.metavar)
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx: typer.Context, formatter: Any) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if isinstance(param, TyperArgument):
                arguments.append((str(param.metavar), record[1]))
            else:
                options.append(record)
        for title, records in (("Arguments", arguments), ("Options", options)):
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)


def command(
    name: str, examples: str = "", group: typer.Typer | None = None
) -> Callable[[Callable], Callable]:
    """Register a command (top level, or of `group`) with the house help shape and its examples
    (one per line)."""
    return (group or app).command(name, cls=SweeperCommand, epilog=_examples(examples))


def _examples(text: str) -> str | None:
    """Examples kept as written: click re-flows help paragraphs unless one starts with \\b."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines) if lines else None


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
    typer.Option(
        "--format",
        metavar="FORMATS",
        help="Formats besides the canonical JSON: html,md,csv,junit,sarif or all.",
    ),
]
HistoryOption = Annotated[
    Path | None,
    typer.Option("--history", metavar="FILE", help="History database (default: <out>/history.sqlite)."),
]
OutOption = Annotated[Path, typer.Option(metavar="DIR", help="Folder for the reports.")]
FailOnOption = Annotated[
    str,
    typer.Option(
        metavar="SEVERITY",
        help="Exit 1 when a finding is at or above this severity: critical, high, medium, low or info.",
    ),
]
SignOption = Annotated[
    Path | None,
    typer.Option(metavar="KEY", help="Ed25519 private key (PKCS#8 PEM): write a detached <stem>.json.sig."),
]
LimitOption = Annotated[
    list[str], typer.Option("--limit", metavar="NAME|TAG", help="Only nodes with this name or tag.")
]
RetriesOption = Annotated[
    int, typer.Option(metavar="N", min=1, help="Connection attempts per node (transient faults).")
]
MaxNodeBytesOption = Annotated[
    str,
    typer.Option(
        metavar="SIZE",
        help="Most one node may send for one command (bytes, or with K/M/G, KiB/MiB/GiB); "
        "a node past it is cut off and marked error.",
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
    """Run a command's body; a SweeperError becomes one line on stderr and its exit code, and so
    does a local file this machine could not read or write (a full disk, a folder gone): exit 2."""
    try:
        code = action()
    except SweeperError as exc:
        typer.echo(f"sweeper: {exc.message}", err=True)
        code = exc.exit_code
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"sweeper: {where}{os_reason(exc)}", err=True)
        code = EXIT_BAD_INPUT
    raise typer.Exit(code)
