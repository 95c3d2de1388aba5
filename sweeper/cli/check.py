"""`sweeper check`: the vCenters' health as vCert checks it (read-only), as a report."""

from __future__ import annotations

import sys
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


@command(
    "check",
    examples="""
    sweeper check inventories/vsphere.toml
    sweeper check fleet.toml --limit vcenter --format all --fail-on medium
    """,
)
def check_command(
    inventory: Annotated[
        Path, typer.Argument(metavar="INVENTORY", help="Inventory file (TOML, or YAML of the same shape).")
    ],
    limit: LimitOption = [],  # noqa: B006
    concurrency: Annotated[int, typer.Option(metavar="N", min=1, help="Nodes checked at once.")] = 50,
    retries: RetriesOption = 4,
    max_node_bytes: MaxNodeBytesOption = "64MiB",
    out: OutOption = Path("reports"),
    fail_on: FailOnOption = "high",
    formats: FormatOption = [],  # noqa: B006
    sign: SignOption = None,
    history_db: HistoryOption = None,
) -> None:
    """Check every vCenter (read-only): VECS chains to published roots, solution users match
    VMware Directory, the STS chain's root is published, Lookup Service pins the served
    certificate, TRUSTED_ROOT_CRLS is not overfull."""
    threshold = fail_on_severity(fail_on)
    answer_cap = byte_size(max_node_bytes)

    def body() -> int:
        from sweeper.cli.console import terminal_prompt
        from sweeper.cli.publishing import finish, publication_for
        from sweeper.health import check
        from sweeper.inventory import load_inventory
        from sweeper.scan import ScanOptions
        from sweeper.ssh import RetryPolicy

        inv = load_inventory(inventory)
        nodes = inv.limited(limit)
        publication = publication_for(out, formats, threshold, sign, history_db)
        options = ScanOptions(
            concurrency=concurrency,
            retry=RetryPolicy(attempts=retries),
            ask=terminal_prompt(),
            max_node_bytes=answer_cap,
        )
        return finish(check(inv, nodes, options, sys.argv), out, publication)

    run(body)
