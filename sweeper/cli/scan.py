"""`sweeper scan`: sweep the inventory's nodes (read-only) and report what is revoked or suspect."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from sweeper.cli.app import (
    FailOnOption,
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
from sweeper.cli.judging import Judging, judged


@command(
    "scan",
    examples="""
    sweeper scan inventories/fleet.toml
    sweeper scan fleet.toml --crl crls/ --ioc ioc.txt --compromised-ca old-root.pem --expected-roots roots.pem
    sweeper scan fleet.toml --limit vcenter --format all --fail-on critical --sign report.key
    sweeper scan fleet.toml --shard 2/4 --out shards/2   (then: sweeper merge shards/*/*.json)
    """,
)
@judged
def scan_command(
    inventory: Annotated[
        Path, typer.Argument(metavar="INVENTORY", help="Inventory file (TOML, or YAML of the same shape).")
    ],
    limit: LimitOption = [],  # noqa: B006
    shard: Annotated[
        str | None,
        typer.Option(
            metavar="K/N",
            help="Sweep only shard K of N (K in 1..N): a fixed slice by node name; "
            "`sweeper merge` joins the N reports.",
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option(metavar="N", min=1, help="Nodes swept at once.")] = 100,
    workers: Annotated[
        str,
        typer.Option(
            metavar="N|auto",
            help="Processes that read the nodes, sharing --concurrency: a number, or auto "
            "(one per usable core; 1 for fewer than 50 nodes or nodes served from this machine: "
            "loopback or its own addresses).",
        ),
    ] = "1",
    retries: RetriesOption = 4,
    max_node_bytes: MaxNodeBytesOption = "64MiB",
    out: OutOption = Path("reports"),
    fail_on: FailOnOption = "high",
    formats: FormatOption = [],  # noqa: B006
    sign: SignOption = None,
    history_db: HistoryOption = None,
    key_cache: Annotated[
        bool,
        typer.Option(help="Remember each key file's public key (by its hash) to skip openssl next time."),
    ] = True,
    *,
    judging: Judging,
) -> None:
    """Sweep the inventory's nodes (read-only) and report what is revoked or suspect."""
    threshold = fail_on_severity(fail_on)
    answer_cap = byte_size(max_node_bytes)
    processes = worker_processes(workers)

    def body() -> int:
        from sweeper import keycache
        from sweeper.cli.console import progress_reporter, terminal_prompt
        from sweeper.cli.publishing import finish, publication_for
        from sweeper.inventory import load_inventory
        from sweeper.scan import ScanOptions, scan
        from sweeper.shard import parse_shard, shard_of
        from sweeper.ssh import RetryPolicy

        spec = parse_shard(shard) if shard is not None else None
        inv = load_inventory(inventory)
        nodes = inv.limited(limit) if spec is None else shard_of(inv.limited(limit), spec)
        publication = publication_for(out, formats, threshold, sign, history_db)
        if spec is not None:
            spec = replace(spec, judging=judging.resolved(publication.history).as_args())
        options = ScanOptions(
            concurrency=concurrency,
            retry=RetryPolicy(attempts=retries),
            context=judging.context(publication.history),
            rules=judging.rules,
            ask=terminal_prompt(),
            key_cache=keycache.default_path() if key_cache else None,
            max_node_bytes=answer_cap,
            workers=processes,
        )
        with progress_reporter(len(nodes)) as on_node:
            report = scan(inv, nodes, options, argv=sys.argv, on_node=on_node, shard=spec)
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
