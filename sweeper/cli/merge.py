"""`sweeper merge`: the shard reports of one `scan --shard K/N` run joined into one report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from sweeper.cli.app import (
    FailOnOption,
    FormatOption,
    HistoryOption,
    OutOption,
    SignOption,
    command,
    fail_on_severity,
    run,
)
from sweeper.cli.judging import Judging, judged, judging_options


@command(
    "merge",
    examples="""
    sweeper merge shards/*/*.json --out reports
    sweeper merge shard-1.json shard-2.json shard-3.json --out reports --format all --sign report.key
    """,
)
@judged
def merge_command(
    shard_reports: Annotated[
        list[Path], typer.Argument(metavar="REPORT", help="Every shard's JSON report (scan --shard K/N).")
    ],
    out: OutOption = Path("reports"),
    fail_on: FailOnOption = "high",
    formats: FormatOption = [],  # noqa: B006
    sign: SignOption = None,
    history_db: HistoryOption = None,
    *,
    judging: Judging,
) -> None:
    """Join the shard reports of one sweep into one report; the fleet-wide rules run again across them.

    Judged as the shards were (their reports record their --crl, --ioc, --rule ... options)
    unless judging options are given here. Exit codes as scan's.
    """
    threshold = fail_on_severity(fail_on)

    def body() -> int:
        from sweeper.cli.publishing import finish, publication_for
        from sweeper.merge import check_recorded_inputs, merge, read_shard

        shards = [read_shard(path) for path in shard_reports]
        publication = publication_for(out, formats, threshold, sign, history_db)
        recorded = judging == judging_options()
        chosen = Judging.from_args(shards[0].shard.judging, shards[0].path) if recorded else judging
        context = chosen.context(publication.history)
        if recorded:
            check_recorded_inputs(shards, context.incident.inputs)
        report = merge(shards, context, chosen.rules, argv=sys.argv)
        return finish(report, out, publication)

    run(body)
