"""A sweep: every node read over one SSH connection, at most N at once, then the rules.

Data flows one way: nodes -> ssh -> stores -> records -> detect -> Report. A node that
fails is a status in the report, never a crash; Ctrl-C or SIGTERM stops the sweep within
a second or two and still yields a report, marked interrupted.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from sweeper import __version__, names
from sweeper.detect import Context, detect, select
from sweeper.inventory import Inventory
from sweeper.keycache import KeyCache
from sweeper.model import InventoryRef, Node, NodeResult, Report, RunInfo, ShardInfo
from sweeper.reading import NodeCallback, sweep_with
from sweeper.shard import ShardSpec
from sweeper.ssh import MAX_NODE_BYTES, AskSecret, Connector, RetryPolicy


@dataclass(frozen=True, slots=True)
class ScanOptions:
    concurrency: int = 100
    retry: RetryPolicy = RetryPolicy()
    context: Context = field(default_factory=Context)
    rules: tuple[str, ...] | None = None
    ask: AskSecret | None = None
    key_cache: Path | None = None
    """Where to remember key-file hash -> public key between sweeps (None: derive every time)."""
    env: Mapping[str, str] | None = None
    """Where the inventory's secret variables are read (None: this process's environment)."""
    max_node_bytes: int = MAX_NODE_BYTES
    """The most one node may print for its read script before it is cut off (`--max-node-bytes`)."""
    workers: int | None = 1
    """Processes that read the nodes (`--workers`); None: auto, one per usable core for a big fleet."""


async def sweep(
    nodes: tuple[Node, ...], options: ScanOptions, on_node: NodeCallback | None = None
) -> tuple[list[NodeResult], bool]:
    """Read every node (bounded concurrency); returns results in inventory order and `interrupted`."""
    connector = Connector(nodes, options.retry, options.ask, options.env, options.max_node_bytes)
    cache = KeyCache(options.key_cache)
    try:
        return await sweep_with(nodes, connector, cache, options.concurrency, on_node)
    finally:
        await connector.close()
        cache.save()


def read_nodes(
    nodes: tuple[Node, ...], options: ScanOptions, on_node: NodeCallback | None = None
) -> tuple[list[NodeResult], bool]:
    """`sweep` in this process, or split over worker processes (`options.workers`)."""
    from sweeper.workers import sweep_in_workers, worker_count  # it imports this module

    workers = worker_count(options.workers, nodes, options.concurrency)
    if workers > 1:
        return sweep_in_workers(nodes, options, workers, on_node)
    return asyncio.run(sweep(nodes, options, on_node))


def scan(
    inventory: Inventory,
    nodes: tuple[Node, ...],
    options: ScanOptions,
    argv: list[str] | None = None,
    on_node: NodeCallback | None = None,
    shard: ShardSpec | None = None,
) -> Report:
    """Sweep `nodes`, run the rules, and return the report (synchronous entry point).

    `shard`: the nodes are that shard's (`shard.shard_of`); the report says so, with each
    node's inventory position, and keeps what `merge` needs.
    """
    select(options.rules)  # an unknown rule is bad input before any connection is made
    started = datetime.now(UTC)
    results, interrupted = read_nodes(nodes, options, on_node)
    return judge(inventory, Swept(nodes, results, interrupted, started), options, argv, shard)


@dataclass(frozen=True, slots=True)
class Swept:
    """What reading the nodes gave, before the rules: results in the nodes' order."""

    nodes: tuple[Node, ...]
    results: list[NodeResult]
    interrupted: bool
    started: datetime


async def sweep_again(
    nodes: tuple[Node, ...], connector: Connector, concurrency: int, on_node: NodeCallback | None = None
) -> Swept:
    """Read `nodes` over a connector that holds, or is to keep, their connections (a rotation's
    preflight, its verify, a rollback's sweep after): no second login per node for what comes
    next. Keys are derived afresh (no cache)."""
    started = datetime.now(UTC)
    results, interrupted = await sweep_with(nodes, connector, KeyCache(None), concurrency, on_node)
    return Swept(nodes, results, interrupted, started)


def judge(
    inventory: Inventory,
    swept: Swept,
    options: ScanOptions,
    argv: list[str] | None = None,
    shard: ShardSpec | None = None,
) -> Report:
    """The rules over what was read, and the run's report."""
    rules = select(options.rules)
    shard_info = None
    if shard is not None:
        place = {node.name: position for position, node in enumerate(inventory.nodes)}
        positions = tuple(place[node.name] for node in swept.nodes)
        shard_info = ShardInfo(shard.index, shard.count, positions, shard.judging)
    context = replace(options.context, names=names.policies(inventory.nodes))
    findings = detect(swept.results, context, options.rules)
    run = RunInfo(
        id=secrets.token_hex(4),
        kind="scan",
        started=swept.started,
        finished=datetime.now(UTC),
        tool_version=__version__,
        inventory=InventoryRef(str(inventory.path), inventory.sha256),
        argv=tuple(argv if argv is not None else sys.argv),  # no option takes a secret's value
        interrupted=swept.interrupted,
        shard=shard_info,
        inputs=context.incident.inputs,
        rules=tuple(chosen.id for chosen in rules),
    )
    return Report(run=run, nodes=tuple(swept.results), findings=tuple(findings))
