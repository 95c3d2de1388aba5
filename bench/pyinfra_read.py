"""The floor's reads done by pyinfra (paramiko + gevent): one measured run, printed as bench/scan.py's
Measure JSON. Run by bench/scan.py when pyinfra is importable (it is not one of sweeper's dependencies).

pyinfra's own engine through its API, as its CLI drives it (`pyinfra INVENTORY deploy.py --parallel N
-y`): gevent patched first, every host connected, then one operation that runs `cat <first store
file>` on each host with PARALLEL = the bench's concurrency; same key, same known_hosts (strict).
Imports are left out of the measured part, as for sweeper and the floor.

    python bench/pyinfra_read.py --inventory INVENTORY [--concurrency 100]
"""

from gevent import monkey

monkey.patch_all()  # as pyinfra's CLI does before anything else: paramiko's sockets become gevent's

import time  # noqa: E402

from cputime import own_cpu, peak_rss_mb  # noqa: E402  (bench/cputime.py)
from pyinfra import host  # noqa: E402
from pyinfra.api import Config, Inventory, State, operation  # noqa: E402
from pyinfra.api.connect import connect_all  # noqa: E402
from pyinfra.api.operation import add_op  # noqa: E402
from pyinfra.api.operations import run_ops  # noqa: E402
from pyinfra_cli import host_data  # noqa: E402  (bench/pyinfra_cli.py)
from scan import peer_arguments, print_measure  # noqa: E402

from sweeper.inventory import load_inventory  # noqa: E402
from sweeper.model import Node  # noqa: E402


@operation(is_idempotent=False)
def read_first_file():  # noqa: ANN201 (pyinfra's operation decorator wraps a generator of commands)
    """The floor's read: one `cat` of the host's first store file."""
    yield f"cat {host.data.sweeper_file}"


def pyinfra_sweep(nodes: tuple[Node, ...], concurrency: int) -> int:
    """Bytes read from every node; raises SystemExit when a host failed (not a fair comparison)."""
    state = State(Inventory(([(n.name, host_data(n)) for n in nodes], {})), Config(PARALLEL=concurrency))
    connect_all(state)
    results = add_op(state, read_first_file)
    run_ops(state)
    failed = [h.name for h, meta in results.items() if not meta.did_succeed(_raise_if_not_complete=False)]
    if failed or len(results) != len(nodes):
        read = len(results) - len(failed)
        raise SystemExit(f"pyinfra read {read}/{len(nodes)} nodes, failed: {failed[:5]}; unfair")
    return sum(len(meta.stdout) for meta in results.values())


def main() -> None:
    args = peer_arguments(__doc__.splitlines()[0])
    nodes = load_inventory(args.inventory).nodes
    cpu_before, wall = own_cpu(), time.perf_counter()
    pyinfra_sweep(nodes, args.concurrency)
    wall = time.perf_counter() - wall
    print_measure(wall, own_cpu() - cpu_before, peak_rss_mb())


if __name__ == "__main__":
    main()
