"""The command line: parse, call, render, exit. The only package that exits or talks to the terminal.

`app` (cli/app.py) holds the shared options and the one error boundary; each command family
registers itself from its own module, in the order `--help` lists them: scan, rotation
(rotate, resume, rollback), reports (report, verify-report, history, diff) and lab (demo,
lab up/down). Commands import their heavy modules when they run.
"""

# isort: off
from sweeper.cli.app import app
from sweeper.cli import scan, rotation, reports, lab

# isort: on
import typer

from sweeper import __version__

__all__ = ["app", "lab", "main", "reports", "rotation", "scan"]


@app.command("version")
def version_command() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:  # pragma: no cover - console entry
    app()
