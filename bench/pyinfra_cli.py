"""The floor's reads done by the `pyinfra` command, timed whole (start-up included), as an operator
runs it and as `sweeper CLI` is timed: one measured run, printed as bench/scan.py's Measure JSON.

`pyinfra inventory.py deploy.py --parallel N -y` over generated files: every node with the same key,
known_hosts (strict) and first store file as bench/pyinfra_read.py gives pyinfra's API, and one
operation that runs `cat` of it. Run by bench/scan.py when pyinfra is importable.

    python bench/pyinfra_cli.py --inventory INVENTORY [--concurrency 100]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from cputime import own_cpu, run_sampled  # bench/cputime.py
from scan import first_file, peer_arguments, print_measure

from sweeper.inventory import load_inventory
from sweeper.model import Node

DEPLOY = """from pyinfra import host
from pyinfra.operations import server

server.shell(name="read", commands=[f"cat {host.data.sweeper_file}"])
"""


def host_data(node: Node) -> dict[str, object]:
    """pyinfra's connection settings for a node: sweeper's key and known_hosts, strict checking."""
    return {
        "ssh_hostname": node.host,
        "ssh_port": node.port,
        "ssh_user": node.user,
        "ssh_key": str(node.client_keys[0]),
        "ssh_known_hosts_file": str(node.known_hosts),
        "ssh_strict_host_key_checking": "yes",
        "ssh_allow_agent": False,
        "ssh_look_for_keys": False,
        "sweeper_file": first_file(node),
    }


def main() -> None:
    args = peer_arguments(__doc__.splitlines()[0])
    nodes = load_inventory(args.inventory).nodes
    with tempfile.TemporaryDirectory(prefix="sweeper-bench-pyinfra-") as work:
        inventory, deploy = Path(work) / "inventory.py", Path(work) / "deploy.py"
        hosts = "".join(f"    ({n.name!r}, {host_data(n)!r}),\n" for n in nodes)
        inventory.write_text(f"hosts = [\n{hosts}]\n")
        deploy.write_text(DEPLOY)
        argv = ["pyinfra", str(inventory), str(deploy), "--parallel", str(args.concurrency), "-y"]
        cpu_before, wall = own_cpu(), time.perf_counter()
        done, peak = run_sampled(argv, cwd=work)
        wall = time.perf_counter() - wall
    if done.returncode != 0:
        raise SystemExit(f"pyinfra failed ({done.returncode}): {done.stdout[-1500:]}: not a fair comparison")
    print_measure(wall, own_cpu() - cpu_before, peak)


if __name__ == "__main__":
    main()
