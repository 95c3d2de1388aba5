"""The command line: parse, call, render, exit. The only package that exits or talks to the terminal.

`app` (cli/app.py) holds the shared options and the one error boundary; each command family
registers itself from its own module, in the order `--help` lists them: scan, merge, rotation
(rotate, resume, rollback), reports (report, verify-report, history, diff) and lab (demo,
lab up/down). Commands import their heavy modules when they run.
"""

# isort: off
from sweeper.cli.app import app, command
from sweeper.cli import scan, merge, check, rotation, reports, lab

# isort: on
import typer

from sweeper import __version__
from sweeper.collector import collect_less_often
from sweeper.errors import EXIT_DECLINED

__all__ = ["app", "check", "lab", "main", "merge", "reports", "rotation", "scan"]


@command("version")
def version_command() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    """The console entry: usage errors (a bad option value, a missing argument) are one line,
    `sweeper: ...` exit 2, like every other bad input, instead of a boxed panel."""
    collect_less_often()
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        typer.echo("sweeper: aborted; nothing was changed", err=True)
        raise SystemExit(EXIT_DECLINED) from None
    except Exception as exc:
        message = getattr(exc, "format_message", None)
        if message is None or not hasattr(exc, "exit_code"):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":
            typer.echo(message(), err=True)
        else:
            typer.echo(f"sweeper: {' '.join(message().split())}", err=True)
        raise SystemExit(exc.exit_code) from None
    raise SystemExit(code or 0)
