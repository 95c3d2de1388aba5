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
    app,
    byte_size,
    fail_on_severity,
    run,
)

PathList = list[Path]


@app.command("scan")
def scan_command(
    inventory: Annotated[Path, typer.Argument(help="Inventory file (TOML, or YAML of the same shape).")],
    limit: LimitOption = [],  # noqa: B006
    concurrency: Annotated[int, typer.Option(min=1, help="Nodes swept at once.")] = 100,
    workers: Annotated[
        str,
        typer.Option(
            help="Processes that read the nodes, sharing --concurrency: a number, or 'auto' "
            "(one per usable core; 1 for fewer than 50 nodes)."
        ),
    ] = "1",
    retries: RetriesOption = 4,
    max_node_bytes: MaxNodeBytesOption = "64MiB",
    out: OutOption = Path("reports"),
    fail_on: Annotated[
        str, typer.Option(help="Exit 1 when a finding is at or above this severity.")
    ] = "high",
    expiring_days: Annotated[int, typer.Option(min=0, help="Warn of certificates expiring this soon.")] = 30,
    rule: Annotated[list[str], typer.Option("--rule", help="Run only this rule (repeatable).")] = [],  # noqa: B006
    crl: Annotated[
        PathList, typer.Option("--crl", help="CRL file or folder of CRLs, PEM or DER (repeatable).")
    ] = [],  # noqa: B006
    ioc: Annotated[
        PathList, typer.Option("--ioc", help="IOC file: fingerprints, spki:, serial:, PEM (repeatable).")
    ] = [],  # noqa: B006
    compromised_ca: Annotated[
        PathList, typer.Option("--compromised-ca", help="Certificate of a compromised CA (repeatable).")
    ] = [],  # noqa: B006
    ca: Annotated[
        PathList, typer.Option("--ca", help="Issuer certificates to check CRLs and OCSP with.")
    ] = [],  # noqa: B006
    expected_roots: Annotated[
        Path | None, typer.Option(help="PEM bundle of the roots the fleet should trust (for rogue-root).")
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(help="Earlier scan report (JSON) whose anchors are expected; 'last': the previous run."),
    ] = None,
    ocsp: Annotated[bool, typer.Option("--ocsp", help="Also ask each certificate's OCSP responder.")] = False,
    ocsp_timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for an OCSP answer.")] = 5.0,
    badkeys_blocklist: Annotated[
        Path | None, typer.Option(help="badkeys' blocklist.dat (or its folder) for known-compromised-key.")
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
    processes = worker_processes(workers)

    def body() -> int:
        from sweeper import history, keycache
        from sweeper.cli.console import progress_reporter, terminal_prompt
        from sweeper.cli.publishing import finish, publication_for
        from sweeper.detect import Context
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
                expiring_days=expiring_days, incident=incident, ocsp=ocsp, ocsp_timeout=ocsp_timeout
            ),
            rules=tuple(rule) or None,
            ask=terminal_prompt(),
            key_cache=keycache.default_path() if key_cache else None,
            max_node_bytes=answer_cap,
            workers=processes,
        )
        with progress_reporter(len(nodes)) as on_node:
            report = scan(inv, nodes, options, argv=sys.argv, on_node=on_node)
        return finish(report, out, publication)

    run(body)


def worker_processes(value: str) -> int | None:
    """`--workers` as a count, None for auto; anything else is a usage error (exit 2)."""
    text = value.strip().lower()
    if text == "auto":
        return None
    if not text.isdigit() or int(text) < 1:
        raise typer.BadParameter(f"{value!r} is not a number of processes (1, 2, ... or auto)")
    return int(text)
