"""`sweeper merge`: the shard reports of one `scan --shard K/N` run joined into one report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from sweeper.cli.app import FormatOption, HistoryOption, OutOption, SignOption, app, fail_on_severity, run
from sweeper.cli.judging import (
    BadkeysOption,
    BaselineOption,
    CaOption,
    CompromisedCaOption,
    CrlOption,
    ExpectedRootsOption,
    ExpiringDaysOption,
    IocOption,
    Judging,
    OcspOption,
    OcspTimeoutOption,
    RuleOption,
)


@app.command("merge")
def merge_command(
    shard_reports: Annotated[
        list[Path], typer.Argument(help="Every shard's JSON report (scan --shard K/N).")
    ],
    out: OutOption = Path("reports"),
    fail_on: Annotated[
        str, typer.Option(help="Exit 1 when a finding is at or above this severity.")
    ] = "high",
    expiring_days: ExpiringDaysOption = 30,
    rule: RuleOption = [],  # noqa: B006
    crl: CrlOption = [],  # noqa: B006
    ioc: IocOption = [],  # noqa: B006
    compromised_ca: CompromisedCaOption = [],  # noqa: B006
    ca: CaOption = [],  # noqa: B006
    expected_roots: ExpectedRootsOption = None,
    baseline: BaselineOption = None,
    ocsp: OcspOption = False,
    ocsp_timeout: OcspTimeoutOption = 5.0,
    badkeys_blocklist: BadkeysOption = None,
    formats: FormatOption = [],  # noqa: B006
    sign: SignOption = None,
    history_db: HistoryOption = None,
) -> None:
    """Join the shard reports of one sweep into one report; the fleet-wide rules run again across them.

    Give the judging options (--crl, --ioc, --expected-roots, --rule ...) the shards were swept with.
    Exit codes as scan's.
    """
    threshold = fail_on_severity(fail_on)
    judging = Judging(
        expiring_days,
        crl,
        ioc,
        compromised_ca,
        ca,
        expected_roots,
        baseline,
        ocsp,
        ocsp_timeout,
        badkeys_blocklist,
    )

    def body() -> int:
        from sweeper.cli.publishing import finish, publication_for
        from sweeper.merge import merge, read_shard

        shards = [read_shard(path) for path in shard_reports]
        publication = publication_for(out, formats, threshold, sign, history_db)
        report = merge(shards, judging.context(publication.history), tuple(rule) or None, argv=sys.argv)
        return finish(report, out, publication)

    run(body)
