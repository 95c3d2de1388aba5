"""Past one core: a sweep's nodes read by N worker processes, the rules run once in this one.

One event loop is CPU-bound past ~150 SSH handshakes/s, so `scan --workers N` splits the
nodes over N worker processes, each with its own event loop, connections and a share of the
concurrency. Credentials are loaded (and asked for) once here; each worker gets the resolved
secrets and unlocked keys through its socket, never through argv or an environment, and reads
known_hosts itself. Each node's raw read (a NodeResult) comes back as soon as it is done, so
progress stays live, and this process puts them in inventory order and runs detection and the
fleet-wide rules once: the report is the one a one-process sweep makes.

Workers run in a process group of their own and ignore SIGINT/SIGTERM; this process catches
them and tells each worker to stop through its socket, or, if this process is gone, the worker
sees its socket close and stops. A worker that dies turns its unfinished nodes
into `error` statuses, never a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING

from sweeper.collector import collect_less_often
from sweeper.keycache import KeyCache
from sweeper.model import Node, NodeResult
from sweeper.names import ip_form, normal
from sweeper.reading import NodeCallback, sweep_with
from sweeper.ssh import HANDSHAKES_PER_SERVER, Connector, Credentials, CredentialSeed, RetryPolicy

if TYPE_CHECKING:  # a worker never imports the rules that sweeper.scan brings
    from sweeper.scan import ScanOptions

AUTO_MIN_NODES = 50
"""`auto` uses one process below this many nodes: a worker's start costs more than it saves."""
STOP_GRACE = 5.0
"""Seconds a stopped worker has to hand back what it read before it is killed."""
INTERRUPTED = "interrupted before this node was swept"
_SIGNALS = {signal.SIGINT, signal.SIGTERM}
_ENTRY = "import sys; from sweeper.workers import work; work(int(sys.argv[1]))"


def worker_count(workers: int | None, nodes: tuple[Node, ...], concurrency: int) -> int:
    """How many processes sweep `nodes`; `workers` None is auto: one per usable core for a big
    fleet, one for a small fleet or one served from this machine. Never more than there are
    nodes or concurrent slots.

    A fleet served from this machine (on loopback or one of its own addresses: a lab, sshd
    listeners, containers with host networking) runs its SSH servers on this machine's cores; an
    sshd login costs them ~5x what reading it costs us, so one event loop keeps up, and each
    further process only adds its start and hand-offs (measured at 950 real-sshd nodes on 2
    cores: 2 workers took ~0.8 s longer than one process, with 40 % more client CPU)."""
    if workers is None:
        big = len(nodes) >= AUTO_MIN_NODES and not all(map(_served_here, nodes))
        workers = len(os.sched_getaffinity(0)) if big else 1
    return max(1, min(workers, len(nodes), concurrency))


def _served_here(node: Node) -> bool:
    """Reached on this machine itself, with no bastion between: `localhost`, a loopback address,
    or an address of one of this machine's interfaces."""
    if node.jump or node.ssh_config:
        return False
    address = ip_form(node.host)
    if address is None:
        return normal(node.host) == "localhost"
    return ipaddress.ip_address(address).is_loopback or _own_address(address)


@functools.lru_cache(maxsize=4096)
def _own_address(address: str) -> bool:
    """The kernel lets a socket bind to an address only if one of this machine's interfaces holds
    it (or it is the unspecified address, which reaches this machine too): no lookup, no packet."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class WorkerJob:
    """One worker's share of the sweep; it travels pickled through the worker's socket."""

    nodes: tuple[Node, ...]
    positions: tuple[int, ...]
    """Where each node stands in the whole sweep's order."""
    retry: RetryPolicy
    max_node_bytes: int
    concurrency: int
    handshakes_per_server: int
    """This worker's share of the handshakes one SSH server may see at once (nodes that share a
    server are dealt to every worker)."""
    seed: CredentialSeed
    known_keys: dict[str, dict[str, str]]


@dataclass(slots=True)
class _Worker:
    process: subprocess.Popen[bytes]
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
                handshakes_per_server=HANDSHAKES_PER_SERVER // workers,  # Connector keeps it >= 1
                seed=seed,
                known_keys=cache.tables(n.name for n in share),
            )
        )
    return jobs


def _start(jobs: list[WorkerJob], pool: list[_Worker]) -> None:
    """Start one process per job into `pool` and hand it its job through a socket pair.

    A worker is a fresh interpreter that imports only what reading needs (not the caller's main
    module, as multiprocessing's spawn would), in a process group of its own so that a terminal's
    Ctrl-C reaches this process only; and the inventory's secret variables are left out of its
    environment: /proc/PID/environ of a worker shows none."""
    for job in jobs:
        mine, theirs = socket.socketpair()
        with theirs:
            process = subprocess.Popen(
                [sys.executable, "-P", "-c", _ENTRY, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env={k: v for k, v in os.environ.items() if k not in job.seed.secrets},
                process_group=0,
            )
        pool.append(_Worker(process, Connection(mine.detach()), job))
    for worker in pool:  # once all are starting: a big job fills the socket until its worker reads it
        try:
            worker.conn.send(worker.job)
        except OSError:
            worker.failure = f"worker process could not be started (exit status {worker.process.poll()})"


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
                worker.failure = f"worker process ended unexpectedly (exit status {_exit_status(worker)})"
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
    """Wait for a worker; one that does not end in time is killed."""
    if _exit_status(worker) is None:
        worker.process.kill()
        worker.process.wait()
    worker.conn.close()


def _exit_status(worker: _Worker) -> int | None:
    """The worker's exit status (negative: the signal that ended it), waiting a second for it."""
    try:
        return worker.process.wait(timeout=1)
    except subprocess.TimeoutExpired:
        return None


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


def work(fd: int) -> None:
    """A worker process's entry point (`_ENTRY`): sweep the job sent through socket `fd`, report
    each node as it is done, then its end."""
    collect_less_often()
    for sig in _SIGNALS:
        signal.signal(sig, signal.SIG_IGN)  # the parent says when to stop
    conn = Connection(fd)
    try:
        job = conn.recv()
        asyncio.run(_sweep_job(conn, job))
    except (EOFError, BrokenPipeError):
        pass  # the parent is gone: nobody to report to
    except Exception as exc:  # noqa: BLE001 - a worker's failure becomes its nodes' status, never a traceback
        with suppress(OSError):
            conn.send(("failed", f"worker process failed: {type(exc).__name__}: {exc}"))
    sys.stderr.flush()
    os._exit(0)  # all is sent: the parent waits for this exit, not for an interpreter's teardown


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

    connector = Connector(
        job.nodes, job.retry, None, {}, job.max_node_bytes, job.seed, job.handshakes_per_server
    )
    cache = KeyCache(None)
    cache.adopt(job.known_keys)
    try:
        results, interrupted = await sweep_with(job.nodes, connector, cache, job.concurrency, send, stop)
    finally:
        await connector.close()
    unfinished = [(position[r.name], r) for r in results if r.name not in sent]
    conn.send(("done", interrupted, unfinished, cache.tables(position)))
