"""Benchmark: sweeper's scan of N-node labs against the floor, one worker and `auto` workers, side by side.

The floor is plain asyncssh: connect, one `cat` of a store file, close, per node, at the
same concurrency, with the same loaded key and known_hosts. Each measured run is a process of
its own (this script with `--measure`), so its CPU time (its own plus its reaped workers',
getrusage SELF + CHILDREN around the measured part, imports left out) and its peak resident
memory (ru_maxrss: the process, and its largest worker) belong to that run alone. The machines
here are noisy, so floor and sweeper runs alternate and the best of each is reported, with
ratios; only ratios are meaningful across machines.

When pyinfra is importable (`pip install pyinfra`; it is not one of sweeper's dependencies), a
pyinfra column does the floor's reads through pyinfra's engine (bench/pyinfra_read.py) with
PARALLEL = the same concurrency; otherwise the column is left out with a note.

A sweeper's first run is "cold": every private key's public half is derived on its node with
openssl. Later runs are "warm": the key cache (key-file hash -> public key) spares openssl for
keys that did not change, as for a nightly sweep. Each worker setting has a cache of its own.
The lab's nodes share this machine's cores with sweeper, so node-side work (openssl, the shell,
the lab's SSH server) is on the same clock here, unlike on a real fleet: CPU per node is the
measure of sweeper's own cost.

    python bench/scan.py --nodes 200,1000 [--concurrency 100] [--rounds 2] [--workers auto] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import asyncssh
from cputime import own_cpu, process_cpu  # bench/cputime.py

from sweeper.inventory import load_inventory
from sweeper.lab import start_lab
from sweeper.model import Node
from sweeper.platforms.vcsa import VECS_CLI
from sweeper.scan import ScanOptions, scan
from sweeper.workers import worker_count

TARGETS = """targets at 1,000 nodes: warm <= 1.2x floor wall, CPU/node <= 1.1x floor's, peak RSS < 300 MB
CPU: this client's process (and its workers); lab: the nodes' side (SSH server, shells, commands)"""
PYINFRA = Path(__file__).with_name("pyinfra_read.py")


def first_file(node: Node) -> str:
    store = node.stores[0]
    return node.path(store.cert or store.path or VECS_CLI)


async def floor_sweep(nodes: tuple[Node, ...], concurrency: int) -> int:
    """Connect + one cat + close per node: the least any SSH sweep can cost."""
    known_hosts = asyncssh.read_known_hosts(nodes[0].known_hosts)
    keys = [asyncssh.read_private_key(path) for path in nodes[0].client_keys]
    gate = asyncio.Semaphore(concurrency)

    async def one(node: Node) -> int:
        async with (
            gate,
            asyncssh.connect(
                node.host,
                node.port,
                username=node.user,
                known_hosts=known_hosts,
                client_keys=keys,
                agent_path=None,
                config=None,
            ) as conn,
        ):
            result = await conn.run(f"cat {first_file(node)}", check=True)
            return len(result.stdout or "")

    return sum(await asyncio.gather(*(one(n) for n in nodes)))


@dataclass(frozen=True, slots=True)
class Measure:
    wall: float
    cpu: float
    rss_mb: float
    worker_rss_mb: float
    """The largest worker's peak (0 for a one-process run)."""
    workers: int
    lab_cpu: float = 0.0
    """CPU seconds the lab (its SSH server, the shells and commands it ran) spent meanwhile: the
    nodes' side of the run, which a real fleet does on its own CPUs."""


def measure(args: argparse.Namespace) -> None:
    """One measured run, in this process: prints its Measure as JSON."""
    inventory = load_inventory(args.inventory)
    nodes = inventory.nodes
    cpu_before, wall = own_cpu(), time.perf_counter()
    processes = 1
    if args.measure == "floor":
        asyncio.run(floor_sweep(nodes, args.concurrency))
    else:
        workers = None if args.workers == "auto" else int(args.workers)
        processes = worker_count(workers, len(nodes), args.concurrency)
        options = ScanOptions(concurrency=args.concurrency, key_cache=args.key_cache, workers=workers)
        report = scan(inventory, nodes, options, argv=["bench"])
        swept = sum(1 for n in report.nodes if n.swept)
        if swept != len(report.nodes):
            raise SystemExit(f"only {swept}/{len(report.nodes)} nodes swept; not a fair comparison")
    wall = time.perf_counter() - wall
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 if processes > 1 else 0.0
    print(json.dumps(asdict(Measure(wall, own_cpu() - cpu_before, own, workers_peak, processes))))


def run_measured(env: dict[str, str], lab_pid: int, script: Path, *argv: str | Path) -> Measure:
    """`script` (this one, or pyinfra_read.py) run once in a process of its own, with the lab's CPU."""
    lab_before = process_cpu(lab_pid)
    done = subprocess.run(
        [sys.executable, script, *map(str, argv)], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"measured run {argv} failed: {done.stderr.strip()[-2000:]}")
    measured = Measure(**json.loads(done.stdout.strip().splitlines()[-1]))
    return replace(measured, lab_cpu=process_cpu(lab_pid) - lab_before)


def bench_size(nodes: int, args: argparse.Namespace) -> None:
    lab_dir = (args.dir or Path(tempfile.mkdtemp(prefix="sweeper-bench-"))) / f"lab-{nodes}"
    started = time.monotonic()
    with start_lab(lab_dir, nodes) as lab:
        print(f"lab of {nodes} nodes up in {time.monotonic() - started:.1f}s ({lab_dir})", flush=True)
        env = {**os.environ, **lab.env}
        auto = worker_count(None, nodes, args.concurrency)
        settings = {"1": "1", f"auto ({auto})": args.workers}
        caches = {label: lab_dir / f"bench-key-cache-{n}.json" for n, label in enumerate(settings)}
        for cache in caches.values():
            cache.unlink(missing_ok=True)
        common = ("--inventory", lab.inventory, "--concurrency", str(args.concurrency))
        floors: list[Measure] = []
        pyinfras: list[Measure] = []
        sweeps: dict[str, list[Measure]] = {label: [] for label in settings}
        here = Path(__file__)
        for _ in range(args.rounds + 1):
            floors.append(run_measured(env, lab.pid, here, "--measure", "floor", *common))
            if args.pyinfra:
                pyinfras.append(run_measured(env, lab.pid, PYINFRA, *common))
            for label, workers in settings.items():
                extra = ("--workers", workers, "--key-cache", caches[label])
                sweeps[label].append(run_measured(env, lab.pid, here, "--measure", "sweep", *common, *extra))
    floor = min(floors, key=lambda m: m.wall)
    floor_cpu = floor.cpu / nodes
    print(f"\nnodes={nodes} concurrency={args.concurrency} usable cores={len(os.sched_getaffinity(0))}")
    heads = ("wall s", "x floor", "CPU ms/node", "x floor", "lab ms/node", "peak RSS MB (parent + workers)")
    print(f"{'':28} {heads[0]:>7} {heads[1]:>8} {heads[2]:>12} {heads[3]:>8} {heads[4]:>12} {heads[5]:>31}")
    print(_row("floor (asyncssh connect+cat)", floor, floor, floor_cpu, nodes))
    if pyinfras:
        print(_row("pyinfra (same cats)", min(pyinfras, key=lambda m: m.wall), floor, floor_cpu, nodes))
    for label, runs in sweeps.items():
        print(_row(f"sweeper {label} cold", runs[0], floor, floor_cpu, nodes))
        warm = min(runs[1:], key=lambda m: m.wall)
        print(_row(f"sweeper {label} warm", warm, floor, floor_cpu, nodes))
    print(
        f"(runs, wall s: floor {[round(m.wall, 2) for m in floors]}; "
        + (f"pyinfra {[round(m.wall, 2) for m in pyinfras]}; " if pyinfras else "")
        + "; ".join(f"{label} {[round(m.wall, 2) for m in runs]}" for label, runs in sweeps.items())
        + ")"
    )


def _row(label: str, run: Measure, floor: Measure, floor_cpu: float, nodes: int) -> str:
    cpu = run.cpu / nodes
    rss = f"{run.rss_mb:.0f}" + (f" + {run.workers}x{run.worker_rss_mb:.0f}" if run.workers > 1 else "")
    return (
        f"{label:28} {run.wall:7.2f} {run.wall / floor.wall:8.2f} {cpu * 1000:12.1f} "
        f"{cpu / floor_cpu:8.2f} {run.lab_cpu / nodes * 1000:12.1f} {rss:>31}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="200,1000", help="lab sizes, comma-separated")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2, help="warm runs after the cold one")
    parser.add_argument("--workers", default="auto", help="the multi-process setting to compare with 1")
    parser.add_argument("--dir", type=Path, help="folder for the labs (default: a temporary one)")
    parser.add_argument("--measure", choices=("floor", "sweep"), help=argparse.SUPPRESS)
    parser.add_argument("--inventory", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--key-cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args)
        return
    args.pyinfra = importlib.util.find_spec("pyinfra") is not None
    if not args.pyinfra:
        print("pyinfra is not importable: its column is left out (pip install pyinfra to add it)")
    for nodes in (int(n) for n in args.nodes.split(",")):
        bench_size(nodes, args)
    print(TARGETS)


if __name__ == "__main__":
    main()
