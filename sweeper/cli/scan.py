"""`sweeper scan`: sweep the inventory's nodes (read-only) and report what is revoked or suspect."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from sweeper.cli.app import (
    FormatOption,
    HistoryOption,
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

PathList = list[Path]


@command(
    "scan",
    examples="""
    sweeper scan inventories/fleet.toml
    sweeper scan fleet.toml --crl crls/ --ioc ioc.txt --compromised-ca old-root.pem --expected-roots roots.pem
    sweeper scan fleet.toml --limit vcenter --format all --fail-on critical --sign report.key
    """,
)
def scan_command(
    inventory: Annotated[
        Path, typer.Argument(metavar="INVENTORY", help="Inventory file (TOML, or YAML of the same shape).")
    ],
    limit: LimitOption = [],  # noqa: B006
    concurrency: Annotated[int, typer.Option(metavar="N", min=1, help="Nodes swept at once.")] = 100,
    retries: RetriesOption = 4,
    max_node_bytes: MaxNodeBytesOption = "64MiB",
    out: OutOption = Path("reports"),
    fail_on: Annotated[
        str,
        typer.Option(
            metavar="SEVERITY",
            help="Exit 1 when a finding is at or above this severity: critical, high, medium, low or info.",
        ),
    ] = "high",
    expiring_days: Annotated[
        int, typer.Option(metavar="DAYS", min=0, help="Warn of certificates expiring this soon.")
    ] = 30,
    rule: Annotated[
        list[str], typer.Option("--rule", metavar="RULE", help="Run only this rule (repeatable).")
    ] = [],  # noqa: B006
    crl: Annotated[
        PathList,
        typer.Option(
            "--crl", metavar="FILE|DIR", help="CRL file or folder of CRLs, PEM or DER (repeatable)."
        ),
    ] = [],  # noqa: B006
    ioc: Annotated[
        PathList,
        typer.Option(
            "--ioc", metavar="FILE", help="IOC file: fingerprints, spki:, serial:, PEM (repeatable)."
        ),
    ] = [],  # noqa: B006
    compromised_ca: Annotated[
        PathList,
        typer.Option(
            "--compromised-ca", metavar="FILE", help="Certificate of a compromised CA (repeatable)."
        ),
    ] = [],  # noqa: B006
    ca: Annotated[
        PathList,
        typer.Option("--ca", metavar="FILE", help="Issuer certificates to check CRLs and OCSP with."),
    ] = [],  # noqa: B006
    expected_roots: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="PEM bundle of the roots the fleet should trust (for rogue-root)."),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE|last",
            help="Earlier scan report (JSON) whose anchors are expected; 'last': the previous run.",
        ),
    ] = None,
    ocsp: Annotated[bool, typer.Option("--ocsp", help="Also ask each certificate's OCSP responder.")] = False,
    ocsp_timeout: Annotated[
        float, typer.Option(metavar="SECONDS", min=0.1, help="Seconds to wait for an OCSP answer.")
    ] = 5.0,
    ocsp_allow: Annotated[
        list[str],
        typer.Option(
            metavar="URL-PREFIX|HOST",
            help="An OCSP responder --ocsp may post to (repeatable); none: no OCSP request at all.",
        ),
    ] = [],  # noqa: B006
    rule_budget: Annotated[
        float,
        typer.Option(
            metavar="SECONDS",
            min=0.0,
            help="Seconds each rule may take; past it, what it did not judge is a rule-error.",
        ),
    ] = 300.0,
    ocsp_budget: Annotated[
        float, typer.Option(metavar="SECONDS", min=0.0, help="Seconds all OCSP requests may take together.")
    ] = 60.0,
    badkeys_blocklist: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE|DIR", help="badkeys' blocklist.dat (or its folder) for known-compromised-key."
        ),
    ] = None,
    formats: FormatOption = [],  # noqa: B006
    sign: SignOption = None,
    history_db: HistoryOption = None,
    key_cache: Annotated[
        bool,
        typer.Option(help="Remember each key file's public key (by its hash) to skip openssl next time."),
    ] = True,
) -> None:
    """Sweep the inventory's nodes (read-only) and report what is revoked or suspect."""
    threshold = fail_on_severity(fail_on)
    answer_cap = byte_size(max_node_bytes)

    def body() -> int:
        from sweeper import history, keycache
        from sweeper.cli.console import progress_reporter, terminal_prompt
        from sweeper.cli.publishing import finish, publication_for
        from sweeper.detect import Context
        from sweeper.detect.ocsp import check_allowed
        from sweeper.incident import load_incident
        from sweeper.inventory import load_inventory
        from sweeper.scan import ScanOptions, scan
        from sweeper.ssh import RetryPolicy

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
                expiring_days=expiring_days,
                incident=incident,
                ocsp=ocsp,
                ocsp_timeout=ocsp_timeout,
                ocsp_allow=check_allowed(ocsp_allow),
                ocsp_budget=ocsp_budget,
                rule_budget=rule_budget,
            ),
            rules=tuple(rule) or None,
            ask=terminal_prompt(),
            key_cache=keycache.default_path() if key_cache else None,
            max_node_bytes=answer_cap,
        )
        with progress_reporter(len(nodes)) as on_node:
            report = scan(inv, nodes, options, argv=sys.argv, on_node=on_node)
        return finish(report, out, publication)

    run(body)
