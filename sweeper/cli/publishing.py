"""What every run that writes a report shares: output options checked before the run starts,
the report written in every format asked for, the summary, and the exit code."""

from __future__ import annotations

from pathlib import Path

import typer

from sweeper import history
from sweeper.atomic import not_writable
from sweeper.cli.console import show_summary
from sweeper.errors import EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK, OutputError
from sweeper.model import Report, Severity
from sweeper.pki.sign import load_signer
from sweeper.report.formats import parse_formats
from sweeper.report.options import RenderOptions
from sweeper.report.publish import Publication, publish


def publication_for(
    out: Path, formats: list[str], threshold: Severity, sign: Path | None, history_db: Path | None
) -> Publication:
    """Check every output option before the sweep starts: a bad format, key, report folder or
    history path is exit 2."""
    if (where := not_writable(out)) is not None:
        raise OutputError(f"{out}: cannot write reports there ({where} is not a writable folder)")
    db = history_db or history.default_path(out)
    publication = Publication(
        formats=parse_formats(["json", *formats]),
        options=RenderOptions(fail_on=threshold),
        signer=load_signer(sign) if sign else None,
        history=db,
    )
    history.check(db)
    return publication


def finish(report: Report, out: Path, publication: Publication) -> int:
    """Write the report in every format asked for, show the summary, and choose the exit code."""
    try:
        paths = publish(report, out, publication)
    except OutputError:
        show_summary(report)  # what the run found, though its files are not all where asked
        raise
    show_summary(report)
    for path in paths:
        typer.echo(str(path))
    return exit_code(report, publication.options.fail_on)


def exit_code(report: Report, threshold: Severity) -> int:
    """1 for findings at or above the threshold, else 3 if some nodes were not swept, else 0."""
    worst = report.worst_severity()
    if worst is not None and worst >= threshold:
        return EXIT_FINDINGS
    if report.incomplete:
        return EXIT_INCOMPLETE
    return EXIT_OK
