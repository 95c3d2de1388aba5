"""Benchmark: sweeper's scan of an N-node lab against the floor, in the same process and run.

The floor is plain asyncssh: connect, one `cat` of a store file, close, per node, at the
same concurrency, with the same loaded key and known_hosts. The machines here are noisy,
so the script alternates floor and sweeper runs and reports the best of each, and their
ratio; only the ratio is meaningful across machines.

The first sweeper run is "cold": every private key's public half is derived on its node
with openssl. Later runs are "warm": the key cache (key-file hash -> public key) spares
openssl for keys that did not change, as for a nightly sweep. Both are reported. The
lab's nodes share this machine's two cores with sweeper, so node-side work (openssl,
the shell, the lab's SSH server) is on the same clock here, unlike on a real fleet; the
script also prints sweeper's own CPU time against the floor's.

    python bench/scan.py --nodes 200 [--concurrency 100] [--rounds 2] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import asyncssh

from sweeper.inventory import load_inventory
from sweeper.lab import start_lab
from sweeper.model import Node
from sweeper.platforms.vcsa import VECS_CLI
from sweeper.scan import ScanOptions, scan


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", type=Path, help="lab folder (default: a temporary one)")
    args = parser.parse_args()
    lab_dir = args.dir or Path(tempfile.mkdtemp(prefix="sweeper-bench-"))
    started = time.monotonic()
    with start_lab(lab_dir, args.nodes) as lab:
        print(f"lab of {args.nodes} nodes up in {time.monotonic() - started:.1f}s ({lab_dir})")
        inventory = load_inventory(lab.inventory)
        options = ScanOptions(concurrency=args.concurrency, key_cache=lab_dir / "bench-key-cache.json")
        (lab_dir / "bench-key-cache.json").unlink(missing_ok=True)
        floors, sweeps, floor_cpu, sweep_cpu = [], [], [], []
        for _ in range(args.rounds + 1):
            wall, cpu = timed(lambda: asyncio.run(floor_sweep(inventory.nodes, args.concurrency)))
            floors.append(wall)
            floor_cpu.append(cpu)
            wall, cpu = timed(lambda: check(scan(inventory, inventory.nodes, options, argv=["bench"])))
            sweeps.append(wall)
            sweep_cpu.append(cpu)
    cold, warm, floor = sweeps[0], min(sweeps[1:]), min(floors)
    print(f"nodes={args.nodes} concurrency={args.concurrency}")
    print(f"floor   (asyncssh connect + cat): {floor:.2f}s  ({[round(f, 2) for f in floors]})")
    print(f"sweeper cold (keys derived):       {cold:.2f}s  ratio {cold / floor:.2f}")
    warm_runs = [round(s, 2) for s in sweeps[1:]]
    print(f"sweeper warm (key cache):          {warm:.2f}s  ratio {warm / floor:.2f}  ({warm_runs})")
    print(f"sweeper process CPU / floor process CPU: {min(sweep_cpu) / min(floor_cpu):.2f}")


def timed(action) -> tuple[float, float]:
    """Wall time and this process's CPU time of one run."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def check(report) -> None:
    swept = sum(1 for n in report.nodes if n.swept)
    if swept != len(report.nodes):
        raise SystemExit(f"only {swept}/{len(report.nodes)} nodes swept; not a fair comparison")


if __name__ == "__main__":
    main()
