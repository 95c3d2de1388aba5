"""Reading nodes: each over one SSH connection, at most N at once, stopped early on request.

What a worker process needs and no more (no rules, no reports), so that a worker starts fast;
`sweeper.scan` runs it in this process and `sweeper.workers` in others.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

from sweeper import stores
from sweeper.errors import NodeError, Unreachable
from sweeper.keycache import KeyCache
from sweeper.model import Node, NodeResult
from sweeper.shell import Output, run_and_parse
from sweeper.ssh import Connector, Session

NodeCallback = Callable[[NodeResult], None]


async def read_node(node: Node, connector: Connector, cache: KeyCache) -> NodeResult:
    """Sweep one node: one connection, one command, records parsed off the event loop."""
    started = time.monotonic()
    known = cache.known_for(node.name)
    script = stores.read_script(node, known)

    async def work(session: Session) -> stores.NodeRead:
        def parse(output: Output) -> stores.NodeRead:
            return stores.parse(node, output, known)

        return await run_and_parse(session, script, "read script", parse, node.deadline, inline=True)

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


async def sweep_with(
    nodes: tuple[Node, ...],
    connector: Connector,
    cache: KeyCache,
    concurrency: int,
    on_node: NodeCallback | None = None,
    stop: asyncio.Event | None = None,
) -> tuple[list[NodeResult], bool]:
    """`sweep` with its connector and key cache given; it stops early when `stop` is set
    (None: on SIGINT/SIGTERM). The connector stays open: whoever made it closes it (a rotation
    still has work for its kept connections)."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(node: Node) -> NodeResult:
        async with gate:
            result = await read_node(node, connector, cache)
        if on_node:
            on_node(result)
        return result

    tasks = [asyncio.create_task(one(n), name=n.name) for n in nodes]
    interrupted = await _wait_unless_stopped(tasks, stop)
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
