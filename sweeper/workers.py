"""Past one core: a sweep's nodes read by N worker processes, the rules run once in this one.

One event loop is CPU-bound past ~150 SSH handshakes/s, so `scan --workers N` splits the
nodes over N spawned processes, each with its own event loop, connections and a share of the
concurrency. Credentials are loaded (and asked for) once here; each worker gets the resolved
secrets and unlocked keys through its pipe, never through argv or an environment, and reads
known_hosts itself. Each node's raw read (a NodeResult) comes back as soon as it is done, so
progress stays live, and this process puts them in inventory order and runs detection and the
fleet-wide rules once: the report is the one a one-process sweep makes.

Workers ignore SIGINT/SIGTERM (a terminal's Ctrl-C reaches the whole process group); this
process catches them and tells each worker to stop through its pipe, or, if this process is
gone, the worker sees its pipe close and stops. A worker that dies turns its unfinished nodes
into `error` statuses, never a traceback.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

from sweeper.keycache import KeyCache
from sweeper.model import Node, NodeResult
from sweeper.scan import NodeCallback, ScanOptions, sweep_with
from sweeper.ssh import Connector, Credentials, CredentialSeed, RetryPolicy

AUTO_MIN_NODES = 50
"""`auto` uses one process below this many nodes: a worker's start costs more than it saves."""
STOP_GRACE = 5.0
"""Seconds a stopped worker has to hand back what it read before it is killed."""
INTERRUPTED = "interrupted before this node was swept"
_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def worker_count(workers: int | None, nodes: int, concurrency: int) -> int:
    """How many processes sweep `nodes`; `workers` None is auto: one per usable core, 1 for a
    small fleet. Never more than there are nodes or concurrent slots."""
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if nodes >= AUTO_MIN_NODES else 1
    return max(1, min(workers, nodes, concurrency))


@dataclass(frozen=True, slots=True)
class WorkerJob:
    """One worker's share of the sweep; it travels pickled through the worker's pipe."""

    nodes: tuple[Node, ...]
    positions: tuple[int, ...]
    """Where each node stands in the whole sweep's order."""
    retry: RetryPolicy
    max_node_bytes: int
    concurrency: int
    seed: CredentialSeed
    known_keys: dict[str, dict[str, str]]


@dataclass(slots=True)
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    job: WorkerJob
    failure: str | None = None


def sweep_in_workers(
    nodes: tuple[Node, ...], options: ScanOptions, workers: int, on_node: NodeCallback | None = None
) -> tuple[list[NodeResult], bool]:
    """Read `nodes` in `workers` processes; results in inventory order, and whether it was interrupted."""
    seed = Credentials(nodes, options.ask, options.env).seed()  # bad input and prompts: once, here
    cache = KeyCache(options.key_cache)
    results: list[NodeResult | None] = [None] * len(nodes)
    pool: list[_Worker] = []
    with _stop_requests() as stop_requested:
        try:
            _start(_jobs(nodes, options, workers, seed, cache), pool)
            interrupted = _collect(pool, results, cache, on_node, stop_requested)
        finally:
            for worker in pool:
                _end(worker)
    cache.save()
    for worker in pool:
        reason = worker.failure if worker.failure and not interrupted else INTERRUPTED
        for position in worker.job.positions:
            if results[position] is None:
                node = nodes[position]
                results[position] = NodeResult(name=node.name, host=node.host, status="error", error=reason)
    return [result for result in results if result is not None], interrupted


def _jobs(
    nodes: tuple[Node, ...], options: ScanOptions, workers: int, seed: CredentialSeed, cache: KeyCache
) -> list[WorkerJob]:
    """Nodes dealt round-robin (neighbours in an inventory tend to cost alike); concurrency split."""
    jobs = []
    for k in range(workers):
        positions = tuple(range(k, len(nodes), workers))
        share = nodes[k::workers]
        jobs.append(
            WorkerJob(
                nodes=share,
                positions=positions,
                retry=options.retry,
                max_node_bytes=options.max_node_bytes,
                concurrency=max(1, options.concurrency // workers + (k < options.concurrency % workers)),
                seed=seed,
                known_keys=cache.tables(n.name for n in share),
            )
        )
    return jobs


def _start(jobs: list[WorkerJob], pool: list[_Worker]) -> None:
    """Spawn one process per job into `pool` with SIGINT/SIGTERM blocked (the mask survives exec),
    so a Ctrl-C during its start cannot kill it before it ignores them; then hand it its job."""
    context = multiprocessing.get_context("spawn")
    for job in jobs:
        mine, theirs = context.Pipe()
        process = context.Process(target=work, args=(theirs,), name="sweeper-worker", daemon=True)
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            with _environment_without(job.seed.secrets):
                process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        theirs.close()
        worker = _Worker(process, mine, job)
        pool.append(worker)
        try:
            mine.send(job)
        except OSError:
            worker.failure = f"worker process could not be started (exit status {process.exitcode})"


def _collect(
    pool: list[_Worker],
    results: list[NodeResult | None],
    cache: KeyCache,
    on_node: NodeCallback | None,
    stop_requested: list[bool],
) -> bool:
    """Take each worker's results as they come until all are done; on a stop request tell every
    worker to stop, and give them STOP_GRACE seconds."""
    running = {worker.conn: worker for worker in pool if worker.failure is None}
    interrupted = stop_requested[0]
    deadline = None
    while running:
        if stop_requested[0] and deadline is None:
            interrupted = True
            deadline = time.monotonic() + STOP_GRACE
            for worker in running.values():
                _tell_stop(worker)
        if deadline is not None and time.monotonic() > deadline:
            break
        for conn in wait(list(running), timeout=0.2):
            worker = running[conn]
            try:
                message = conn.recv()
            except (EOFError, OSError):
                worker.process.join(timeout=1)
                worker.failure = f"worker process ended unexpectedly (exit status {worker.process.exitcode})"
                del running[conn]
                continue
            kind = message[0]
            if kind == "node":
                _, position, result = message
                results[position] = result
                if on_node:
                    on_node(result)
            elif kind == "done":  # with the nodes it could not finish, which are no progress
                _, worker_interrupted, unfinished, tables = message
                for position, result in unfinished:
                    results[position] = result
                interrupted = interrupted or worker_interrupted
                cache.adopt(tables)
                del running[conn]
            else:  # "failed": the worker could not sweep (its own bad input or a bug), said why
                worker.failure = message[1]
                del running[conn]
    return interrupted


def _tell_stop(worker: _Worker) -> None:
    with suppress(OSError):  # it has ended already
        worker.conn.send(("stop",))


def _end(worker: _Worker) -> None:
    """Join a worker; one that does not end in time is killed."""
    worker.process.join(timeout=1)
    if worker.process.is_alive():
        worker.process.kill()
        worker.process.join(timeout=5)
    worker.conn.close()


@contextmanager
def _environment_without(variables: Iterable[str]) -> Iterator[None]:
    """The inventory's secret variables are out of the environment a worker inherits: its secrets
    come through its pipe, and /proc/PID/environ of a worker shows none."""
    hidden = {name: os.environ.pop(name) for name in variables if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(hidden)


@contextmanager
def _stop_requests() -> Iterator[list[bool]]:
    """SIGINT/SIGTERM set a flag (in a one-item list) instead of raising, while the workers run."""
    flag = [False]

    def request_stop(signum: int, frame: object) -> None:
        flag[0] = True

    previous = {}
    try:
        for sig in _SIGNALS:
            previous[sig] = signal.signal(sig, request_stop)
    except ValueError:  # not the main thread: signals are not ours to take
        pass
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def work(conn: Connection) -> None:
    """A worker process's entry point: sweep the job it is sent, report each node, then its end."""
    for sig in _SIGNALS:
        signal.signal(sig, signal.SIG_IGN)  # a pending Ctrl-C is discarded; the parent says when to stop
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
    try:
        job = conn.recv()
        asyncio.run(_sweep_job(conn, job))
    except (EOFError, BrokenPipeError):
        pass  # the parent is gone: nobody to report to
    except Exception as exc:  # noqa: BLE001 - a worker's failure becomes its nodes' status, never a traceback
        with suppress(OSError):
            conn.send(("failed", f"worker process failed: {type(exc).__name__}: {exc}"))


async def _sweep_job(conn: Connection, job: WorkerJob) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def parent_spoke() -> None:  # a stop message, or the parent's end (EOF): stop either way
        loop.remove_reader(conn.fileno())
        stop.set()

    loop.add_reader(conn.fileno(), parent_spoke)
    position = dict(zip((n.name for n in job.nodes), job.positions, strict=True))
    sent: set[str] = set()

    def send(result: NodeResult) -> None:
        conn.send(("node", position[result.name], result))
        sent.add(result.name)

    connector = Connector(job.nodes, job.retry, None, {}, job.max_node_bytes, job.seed)
    cache = KeyCache(None)
    cache.adopt(job.known_keys)
    results, interrupted = await sweep_with(job.nodes, connector, cache, job.concurrency, send, stop)
    unfinished = [(position[r.name], r) for r in results if r.name not in sent]
    conn.send(("done", interrupted, unfinished, cache.tables(position)))
