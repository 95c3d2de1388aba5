"""The fleets the benches run against: the lab's asyncssh servers, or one real OpenSSH sshd per
Linux and ESXi node (bench/sshd_fleet.py), with the nodes' CPU so far for each."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cputime import process_cpu  # bench/cputime.py
from sshd_fleet import sshd_fleet  # bench/sshd_fleet.py

from sweeper.lab import start_lab


@dataclass(frozen=True, slots=True)
class Fleet:
    """Served nodes: the lab folder (its incident files), the inventory, the environment a client
    needs, how many nodes, and the CPU the nodes' side has spent so far."""

    dir: Path
    inventory: Path
    env: dict[str, str]
    nodes: int
    cpu: Callable[[], float]


@contextlib.contextmanager
def serve(kind: str, lab_dir: Path, nodes: int, rebuild: bool = False) -> Iterator[Fleet]:
    """`kind` "lab": the lab's asyncssh servers (every profile); "sshd": one real sshd per Linux
    and ESXi node. `rebuild`: fresh node trees even where a build of this size is there."""
    if kind == "sshd":
        with sshd_fleet(lab_dir, nodes, rebuild) as fleet:
            yield Fleet(lab_dir, fleet.inventory, dict(os.environ), fleet.nodes, fleet.cpu)
        return
    with start_lab(lab_dir, nodes, rebuild=rebuild) as lab:
        yield Fleet(lab.dir, lab.inventory, {**os.environ, **lab.env}, nodes, lambda: process_cpu(lab.pid))
