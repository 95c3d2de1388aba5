"""The floor's reads done by ansible-core: one measured run, printed as bench/scan.py's Measure JSON.
Run by bench/scan.py when ansible-core is importable (it is not one of sweeper's dependencies).

`ansible all -m raw -a 'cat <first store file>' -f N` over an INI inventory of the same nodes, with
the same key and known_hosts (strict checking). `raw` is ansible's cheapest way to run a command
(no Python on the node, no module upload); its SSH is the OpenSSH client, one process per node.
ControlMaster is off: a persistent master would only pay off for a second command. The whole
command is timed, start-up included, as ansible has no in-process API for this.

    python bench/ansible_read.py --inventory INVENTORY [--concurrency 100]
"""

from __future__ import annotations

import os
import shlex
import tempfile
import time
from pathlib import Path

from cputime import own_cpu, run_sampled  # bench/cputime.py
from scan import first_file, peer_arguments, print_measure

from sweeper.inventory import load_inventory
from sweeper.model import Node


def host_line(node: Node) -> str:
    ssh_args = f"-o UserKnownHostsFile={node.known_hosts} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
    pairs = {
        "ansible_host": node.host,
        "ansible_port": node.port,
        "ansible_user": node.user,
        "ansible_ssh_private_key_file": node.client_keys[0],
        "ansible_ssh_common_args": ssh_args,
        "sweeper_file": first_file(node),
    }
    return node.name + " " + " ".join(f"{key}={shlex.quote(str(value))}" for key, value in pairs.items())


def main() -> None:
    args = peer_arguments(__doc__.splitlines()[0])
    nodes = load_inventory(args.inventory).nodes
    with tempfile.TemporaryDirectory(prefix="sweeper-bench-ansible-") as work:
        inventory = Path(work) / "hosts.ini"
        inventory.write_text("[all]\n" + "\n".join(host_line(n) for n in nodes) + "\n")
        env = {
            **os.environ,
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_SSH_ARGS": "-o ControlMaster=no",
            "ANSIBLE_LOCAL_TEMP": work,
            "ANSIBLE_HOME": work,
            "ANSIBLE_NOCOLOR": "1",
        }
        argv = ["ansible", "all", "-i", str(inventory), "-m", "raw", "-a", "cat {{ sweeper_file }}"]
        argv += ["-f", str(args.concurrency)]
        cpu_before, wall = own_cpu(), time.perf_counter()
        done, peak = run_sampled(argv, env=env)
        wall = time.perf_counter() - wall
    if done.returncode != 0:
        failed = [line for line in done.stdout.splitlines() if "FAILED" in line or "UNREACHABLE" in line]
        raise SystemExit(f"ansible failed on {len(failed)} nodes ({failed[:3]}): not a fair comparison")
    print_measure(wall, own_cpu() - cpu_before, peak)


if __name__ == "__main__":
    main()
