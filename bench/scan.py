"""Benchmark: sweeper's scan of N-node fleets against the floor and its peers, one process and `auto` workers.

The floor is plain asyncssh: connect, one `cat` of a store file, close, per node, at the
same concurrency, with the same loaded key and known_hosts. Each measured run is a process of
its own (this script with `--measure`), so its CPU time (its own plus its reaped workers',
getrusage SELF + CHILDREN around the measured part, imports left out) and its peak resident
memory (VmHWM: the process, and its largest worker) belong to that run alone. The machines
here are noisy, so floor and sweeper runs alternate and the best of each is reported, with
ratios; only ratios are meaningful across machines.

Peers, when installed (neither is one of sweeper's dependencies): pyinfra (`pip install pyinfra`)
does the floor's reads through its engine (bench/pyinfra_read.py) with PARALLEL = the same
concurrency, and as the whole `pyinfra` command (bench/pyinfra_cli.py); ansible-core (`pip install
ansible-core`) does them with `ansible -m raw -f N` (bench/ansible_read.py, timed as a whole
command). A peer that is not installed is left out with a note. `sweeper CLI` is the whole `sweeper
scan --workers auto` command, start-up and reports included, as an operator (or an outside check)
times it: compare it with the peers' whole commands. `sweeper 4 shards + merge` is four `sweeper scan
--shard K/4` commands run side by side on this machine, then `sweeper merge` of their reports,
timed as a whole: one fleet swept as the Kubernetes Job sweeps it, here on one machine's cores.

`--fleet lab` (default) serves the nodes with the lab's asyncssh servers; `--fleet sshd` with
one real OpenSSH sshd per node (bench/sshd_fleet.py; Linux and ESXi nodes only), where the
nodes' side costs what it costs on a real fleet.

`--known-hosts hashed` hashes the fleet's known_hosts first (`ssh-keygen -H`, as `HashKnownHosts
yes`, Debian's and Ubuntu's default, leaves a user's): every tool then looks up hashed names.

A sweeper's first run is "cold": every private key's public half is derived on its node with
openssl. Later runs are "warm": the key cache (key-file identity -> public key) spares openssl for
keys that did not change, as for a nightly sweep. Each worker setting has a cache of its own.
The lab's nodes share this machine's cores with sweeper, so node-side work (openssl, the shell,
the lab's SSH server) is on the same clock here, unlike on a real fleet: CPU per node is the
measure of sweeper's own cost.

    python bench/scan.py --nodes 200,1000 [--fleet lab|sshd] [--concurrency 100] [--rounds 2]
                         [--workers auto] [--known-hosts plain|hashed] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import asyncssh
from cputime import children_cpu, children_peak, own_cpu, peak_rss_mb, run_sampled  # bench/cputime.py
from fleets import Fleet, serve  # bench/fleets.py

from sweeper.collector import collect_less_often
from sweeper.inventory import load_inventory
from sweeper.model import Node
from sweeper.platforms.vcsa import VECS_CLI
from sweeper.scan import ScanOptions, scan
from sweeper.workers import worker_count

TARGETS = """targets at 1,000 nodes: warm <= 1.2x floor wall, CPU/node <= 1.1x floor's, peak RSS < 300 MB
CPU: this client's process (and its workers); lab: the nodes' side (SSH server, shells, commands)"""


@dataclass(frozen=True, slots=True)
class Peer:
    """Another tool measured beside sweeper, when its module is importable."""

    script: Path
    module: str
    package: str


PEERS = {
    "pyinfra (same cats)": Peer(Path(__file__).with_name("pyinfra_read.py"), "pyinfra", "pyinfra"),
    "pyinfra CLI (whole command)": Peer(Path(__file__).with_name("pyinfra_cli.py"), "pyinfra", "pyinfra"),
    "ansible-core raw (same cats)": Peer(
        Path(__file__).with_name("ansible_read.py"), "ansible", "ansible-core"
    ),
}


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


def peer_arguments(description: str) -> argparse.Namespace:
    """What a peer's script (bench/*_read.py) is given: the inventory and the concurrency."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--inventory", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=100)
    return parser.parse_args()


def print_measure(wall: float, cpu: float, rss_mb: float) -> None:
    """A one-process run's numbers, as the line bench/scan.py reads back."""
    print(json.dumps(asdict(Measure(wall, cpu, rss_mb, 0.0, 1))))


def measure(args: argparse.Namespace) -> None:
    """One measured run, in this process: prints its Measure as JSON."""
    inventory = load_inventory(args.inventory)
    nodes = inventory.nodes
    cpu_before, wall = own_cpu(), time.perf_counter()
    processes = 1
    with children_peak() as workers_peak:
        if args.measure == "floor":
            asyncio.run(floor_sweep(nodes, args.concurrency))
        else:
            collect_less_often()  # as the command line does at its start
            workers = None if args.workers == "auto" else int(args.workers)
            processes = worker_count(workers, nodes, args.concurrency)
            options = ScanOptions(concurrency=args.concurrency, key_cache=args.key_cache, workers=workers)
            report = scan(inventory, nodes, options, argv=["bench"])
            swept = sum(1 for n in report.nodes if n.swept)
            if swept != len(report.nodes):
                raise SystemExit(f"only {swept}/{len(report.nodes)} nodes swept; not a fair comparison")
    wall = time.perf_counter() - wall
    workers_mb = workers_peak[0] if processes > 1 else 0.0
    print(json.dumps(asdict(Measure(wall, own_cpu() - cpu_before, peak_rss_mb(), workers_mb, processes))))


def run_measured(fleet: Fleet, script: Path, *argv: str | Path) -> Measure:
    """`script` (this one, or a peer's) run once in a process of its own, with the nodes' CPU."""
    nodes_before = fleet.cpu()
    done = subprocess.run(
        [sys.executable, script, *map(str, argv)], env=fleet.env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"measured run {argv} failed: {done.stderr.strip()[-2000:]}")
    measured = Measure(**json.loads(done.stdout.strip().splitlines()[-1]))
    return replace(measured, lab_cpu=fleet.cpu() - nodes_before)


def run_command(fleet: Fleet, argv: list[str]) -> Measure:
    """A whole command (start-up included) timed from outside: wall, its CPU and its children's,
    and its own peak RSS."""
    nodes_before, wall = fleet.cpu(), time.perf_counter()
    before = children_cpu()
    done, peak = run_sampled(argv, env=fleet.env)
    wall = time.perf_counter() - wall
    cpu = children_cpu() - before
    if done.returncode not in (0, 1):  # 1: findings at or above --fail-on, as the lab plants them
        raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return Measure(wall, cpu, peak, 0.0, 1, fleet.cpu() - nodes_before)


FLOOR, CLI = "floor (asyncssh connect+cat)", "sweeper CLI (whole command)"
SHARDS = 4
SHARDED = f"sweeper {SHARDS} shards + merge"


def run_shards(fleet: Fleet, scan_argv: list[str], out: Path) -> Measure:
    """SHARDS `sweeper scan --shard K/N` commands at once, then `sweeper merge` of their reports:
    wall and CPU of the whole, and the largest command's own peak RSS."""
    nodes_before, wall = fleet.cpu(), time.perf_counter()
    before = children_cpu()
    folders = [out / f"shard-{k}" for k in range(1, SHARDS + 1)]
    peak = 0.0
    shutil.rmtree(out, ignore_errors=True)  # a folder holding one report each, this run's
    with tempfile.TemporaryFile() as stderr:
        running = [
            subprocess.Popen(
                [*scan_argv, "--shard", f"{k}/{SHARDS}", "--out", str(folder)],
                env=fleet.env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
            for k, folder in enumerate(folders, start=1)
        ]
        while any(proc.poll() is None for proc in running):
            peak = max([peak, *(peak_rss_mb(proc.pid) for proc in running)])
            time.sleep(0.02)
        if any(proc.returncode not in (0, 1) for proc in running):
            stderr.seek(0)
            raise SystemExit(f"a shard failed: {stderr.read().decode(errors='replace').strip()[-2000:]}")
    reports = [str(next(folder.glob("*.json"))) for folder in folders]
    merge = ["sweeper", "merge", *reports, "--out", str(out / "merged")]
    done, merge_peak = run_sampled(merge, env=fleet.env)
    if done.returncode not in (0, 1):
        raise SystemExit(f"sweeper merge failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    wall = time.perf_counter() - wall
    cpu = children_cpu() - before
    return Measure(wall, cpu, max(peak, merge_peak), 0.0, 1, fleet.cpu() - nodes_before)


def multi_process(setting: str, nodes: tuple[Node, ...], concurrency: int) -> dict[str, str]:
    """The settings compared with one process, by label: `--workers` as it resolves here, and, where
    auto is one process (a fleet served from this machine), one worker per core too, to show why."""
    resolved = worker_count(None if setting == "auto" else int(setting), nodes, concurrency)
    settings = {f"{setting} ({resolved})": setting}
    cores = worker_count(len(os.sched_getaffinity(0)), nodes, concurrency)
    if resolved == 1 and cores > 1:
        settings[f"{cores} workers"] = str(cores)
    return settings


def bench_size(nodes: int, args: argparse.Namespace) -> None:
    lab_dir = (args.dir or Path(tempfile.mkdtemp(prefix="sweeper-bench-"))) / f"{args.fleet}-{nodes}"
    started = time.monotonic()
    with serve(args.fleet, lab_dir, nodes) as fleet:
        up = time.monotonic() - started
        print(f"{fleet.nodes} nodes ({args.fleet}) up in {up:.1f}s ({lab_dir})", flush=True)
        fleet_nodes = load_inventory(fleet.inventory).nodes
        if args.known_hosts == "hashed":
            hashed = {node.known_hosts for node in fleet_nodes if node.known_hosts}
            for path in hashed:
                subprocess.run(["ssh-keygen", "-H", "-f", path], check=True, capture_output=True)
            print(f"known_hosts hashed (ssh-keygen -H): {', '.join(sorted(hashed))}", flush=True)
        settings = {"1": "1"} | multi_process(args.workers, fleet_nodes, args.concurrency)
        caches = {label: lab_dir / f"bench-key-cache-{n}.json" for n, label in enumerate(settings)}
        for cache in caches.values():
            cache.unlink(missing_ok=True)
        shutil.rmtree(lab_dir / "cli-cache", ignore_errors=True)
        shutil.rmtree(lab_dir / "shards-cache", ignore_errors=True)
        common = ("--inventory", fleet.inventory, "--concurrency", str(args.concurrency))
        cli = ["sweeper", "scan", str(fleet.inventory), "--concurrency", str(args.concurrency)]
        cli += ["--workers", args.workers, "--out", str(lab_dir / "cli-reports")]
        cli_fleet = replace(fleet, env={**fleet.env, "XDG_CACHE_HOME": str(lab_dir / "cli-cache")})
        shards_fleet = replace(fleet, env={**fleet.env, "XDG_CACHE_HOME": str(lab_dir / "shards-cache")})
        shard_argv = ["sweeper", "scan", str(fleet.inventory), "--concurrency", str(args.concurrency)]
        peers = {label: peer for label, peer in PEERS.items() if importlib.util.find_spec(peer.module)}
        runs: dict[str, list[Measure]] = {label: [] for label in (FLOOR, *peers)}
        runs |= {f"sweeper {label}": [] for label in settings} | {CLI: [], SHARDED: []}
        here = Path(__file__)
        for round_ in range(args.rounds + 1):
            runs[FLOOR].append(run_measured(fleet, here, "--measure", "floor", *common))
            for label, peer in peers.items():
                runs[label].append(run_measured(fleet, peer.script, *common))
            for label, workers in settings.items():
                extra = ("--measure", "sweep", "--workers", workers, "--key-cache", caches[label])
                runs[f"sweeper {label}"].append(run_measured(fleet, here, *common, *extra))
            runs[CLI].append(run_command(cli_fleet, cli))
            runs[SHARDED].append(run_shards(shards_fleet, shard_argv, lab_dir / f"shards-{round_}"))
    print(f"\nnodes={fleet.nodes} fleet={args.fleet} known_hosts={args.known_hosts} ", end="")
    print(f"concurrency={args.concurrency} ", end="")
    print(f"usable cores={len(os.sched_getaffinity(0))}")
    heads = ("wall s", "x floor", "CPU ms/node", "x floor", "nodes ms/node", "peak RSS MB (parent + workers)")
    print(f"{'':32} {heads[0]:>7} {heads[1]:>8} {heads[2]:>12} {heads[3]:>8} {heads[4]:>13} {heads[5]:>31}")
    floor = min(runs[FLOOR], key=lambda m: m.wall)
    for label, measured in runs.items():
        if not label.startswith("sweeper"):
            print(_row(label, min(measured, key=lambda m: m.wall), floor, fleet.nodes))
            continue
        print(_row(f"{label} cold", measured[0], floor, fleet.nodes))
        print(_row(f"{label} warm", min(measured[1:], key=lambda m: m.wall), floor, fleet.nodes))
    walls = "; ".join(f"{label} {[round(m.wall, 2) for m in measured]}" for label, measured in runs.items())
    print(f"(runs, wall s: {walls})")


def _row(label: str, run: Measure, floor: Measure, nodes: int) -> str:
    cpu, floor_cpu = run.cpu / nodes, floor.cpu / nodes
    rss = f"{run.rss_mb:.0f}" + (f" + {run.workers}x{run.worker_rss_mb:.0f}" if run.workers > 1 else "")
    return (
        f"{label:32} {run.wall:7.2f} {run.wall / floor.wall:8.2f} {cpu * 1000:12.1f} "
        f"{cpu / floor_cpu:8.2f} {run.lab_cpu / nodes * 1000:13.1f} {rss:>31}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="200,1000", help="lab sizes, comma-separated")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2, help="warm runs after the cold one")
    parser.add_argument("--workers", default="auto", help="the multi-process setting to compare with 1")
    parser.add_argument("--fleet", choices=("lab", "sshd"), default="lab", help="the nodes' servers")
    parser.add_argument(
        "--known-hosts", choices=("plain", "hashed"), default="plain", help="hashed: ssh-keygen -H it first"
    )
    parser.add_argument("--dir", type=Path, help="folder for the labs (default: a temporary one)")
    parser.add_argument("--measure", choices=("floor", "sweep"), help=argparse.SUPPRESS)
    parser.add_argument("--inventory", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--key-cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args)
        return
    for peer in PEERS.values():
        if importlib.util.find_spec(peer.module) is None:
            print(
                f"{peer.module} is not importable: its row is left out (pip install {peer.package} to add it)"
            )
    for nodes in (int(n) for n in args.nodes.split(",")):
        bench_size(nodes, args)
    print(TARGETS)


if __name__ == "__main__":
    main()
