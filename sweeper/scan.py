"""A sweep: every node read over one SSH connection, at most N at once, then the rules.

Data flows one way: nodes -> ssh -> stores -> records -> detect -> Report. A node that
fails is a status in the report, never a crash; Ctrl-C or SIGTERM stops the sweep within
a second or two and still yields a report, marked interrupted.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from sweeper import __version__, names, stores
from sweeper.detect import Context, detect, select
from sweeper.errors import NodeError, Unreachable
from sweeper.inventory import Inventory
from sweeper.keycache import KeyCache
from sweeper.model import InventoryRef, Node, NodeResult, Report, RunInfo
from sweeper.shell import run_node_script
from sweeper.ssh import MAX_NODE_BYTES, AskSecret, Connector, RetryPolicy, Session

NodeCallback = Callable[[NodeResult], None]


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


async def read_node(node: Node, connector: Connector, cache: KeyCache) -> NodeResult:
    """Sweep one node: one connection, one command, records parsed off the event loop."""
    started = time.monotonic()
    known = cache.known_for(node.name)
    script = stores.read_script(node, known)

    async def work(session: Session) -> stores.NodeRead:
        output = await run_node_script(session, script, "read script", timeout=node.deadline)
        return await asyncio.to_thread(stores.parse, node, output, known)

    try:
        async with asyncio.timeout(node.deadline):
            read, attempts = await connector.with_session(node, work)
    except TimeoutError:
        return _failed(
            node, Unreachable(f"no complete answer within the {node.deadline:g}s deadline"), started
        )
    except NodeError as exc:
        return _failed(node, exc, started)
    cache.learn(node.name, read.keys.learned, read.keys.seen)
    return NodeResult(
        name=node.name,
        host=node.host,
        status="ok",
        attempts=attempts,
        certificates=read.certificates,
        crls=read.crls,
        stores=read.stores,
        identity=connector.identity(node),
        duration=time.monotonic() - started,
    )


def _failed(node: Node, exc: NodeError, started: float) -> NodeResult:
    return NodeResult(
        name=node.name,
        host=node.host,
        status=exc.status,
        error=str(exc),
        attempts=exc.attempts,
        duration=time.monotonic() - started,
    )


async def sweep(
    nodes: tuple[Node, ...], options: ScanOptions, on_node: NodeCallback | None = None
) -> tuple[list[NodeResult], bool]:
    """Read every node (bounded concurrency); returns results in inventory order and `interrupted`."""
    connector = Connector(nodes, options.retry, options.ask, options.env, options.max_node_bytes)
    cache = KeyCache(options.key_cache)
    try:
        return await sweep_with(nodes, connector, cache, options.concurrency, on_node)
    finally:
        cache.save()


async def sweep_with(
    nodes: tuple[Node, ...],
    connector: Connector,
    cache: KeyCache,
    concurrency: int,
    on_node: NodeCallback | None = None,
    stop: asyncio.Event | None = None,
) -> tuple[list[NodeResult], bool]:
    """`sweep` with its connector and key cache given; it stops early when `stop` is set
    (None: on SIGINT/SIGTERM). The connector is closed on the way out."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(node: Node) -> NodeResult:
        async with gate:
            result = await read_node(node, connector, cache)
        if on_node:
            on_node(result)
        return result

    tasks = [asyncio.create_task(one(n), name=n.name) for n in nodes]
    try:
        interrupted = await _wait_unless_stopped(tasks, stop)
    finally:
        await connector.close()
    results = []
    for node, task in zip(nodes, tasks, strict=True):
        if task.done() and not task.cancelled() and task.exception() is None:
            results.append(task.result())
        else:
            reason = "interrupted before this node was swept" if interrupted else str(task.exception())
            results.append(NodeResult(name=node.name, host=node.host, status="error", error=reason))
    return results, interrupted


async def _wait_unless_stopped(tasks: list[asyncio.Task], stop: asyncio.Event | None) -> bool:
    """Wait for every task; once `stop` is set (by default on SIGINT/SIGTERM) cancel them and
    return True quickly."""
    loop = asyncio.get_running_loop()
    installed = []
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
    try:
        everything = asyncio.gather(*tasks, return_exceptions=True)
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({everything, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            stopper.cancel()
            return False
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=2)
        return True
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def read_nodes(
    nodes: tuple[Node, ...], options: ScanOptions, on_node: NodeCallback | None = None
) -> tuple[list[NodeResult], bool]:
    """`sweep` in this process, or split over worker processes (`options.workers`)."""
    from sweeper.workers import sweep_in_workers, worker_count  # it imports this module

    workers = worker_count(options.workers, len(nodes), options.concurrency)
    if workers > 1:
        return sweep_in_workers(nodes, options, workers, on_node)
    return asyncio.run(sweep(nodes, options, on_node))


def scan(
    inventory: Inventory,
    nodes: tuple[Node, ...],
    options: ScanOptions,
    argv: list[str] | None = None,
    on_node: NodeCallback | None = None,
) -> Report:
    """Sweep `nodes`, run the rules, and return the report (synchronous entry point)."""
    select(options.rules)  # an unknown rule is bad input before any connection is made
    started = datetime.now(UTC)
    results, interrupted = read_nodes(nodes, options, on_node)
    context = replace(options.context, names=names.policies(inventory.nodes))
    findings = detect(results, context, options.rules)
    run = RunInfo(
        id=secrets.token_hex(4),
        kind="scan",
        started=started,
        finished=datetime.now(UTC),
        tool_version=__version__,
        inventory=InventoryRef(str(inventory.path), inventory.sha256),
        argv=tuple(argv if argv is not None else sys.argv),  # no option takes a secret's value
        interrupted=interrupted,
    )
    return Report(run=run, nodes=tuple(results), findings=tuple(findings))
