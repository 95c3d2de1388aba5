"""`scan --shard K/N`: which nodes one of N sweeps takes, decided by node names alone.

Shards are numbered 1..N. The node names (of the inventory after `--limit`) are sorted by
code point and dealt round-robin: the i-th name (from 0) goes to shard i mod N + 1. So the
slice depends on neither the inventory's order nor the interpreter (no `hash()`, no
PYTHONHASHSEED), every shard gets within one node of the same share, and N sweeps with the
same inventory and `--limit` cover every node exactly once. A Kubernetes Indexed Job's
`JOB_COMPLETION_INDEX` counts from 0: its pod sweeps shard `JOB_COMPLETION_INDEX + 1`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sweeper.errors import BadInput
from sweeper.model import Node

MAX_SHARDS = 10_000
_SPEC = re.compile(r"\s*(\d{1,6})\s*/\s*(\d{1,6})\s*")


@dataclass(frozen=True, slots=True)
class ShardSpec:
    """Shard `index` (1-based) of `count`; `judging`: the sweep's judging options, recorded for `merge`."""

    index: int
    count: int
    judging: tuple[str, ...] = ()


def parse_shard(text: str) -> ShardSpec:
    """`K/N` with 1 <= K <= N <= MAX_SHARDS.

    :raises BadInput: anything else (one line, exit 2)
    """
    match = _SPEC.fullmatch(text)
    if match is None:
        raise BadInput(f"--shard {text!r}: expected K/N, e.g. 1/4 (shards are numbered 1..N)")
    index, count = int(match[1]), int(match[2])
    if not 1 <= count <= MAX_SHARDS:
        raise BadInput(f"--shard {text!r}: the shard count must be 1..{MAX_SHARDS}")
    if not 1 <= index <= count:
        raise BadInput(f"--shard {text!r}: the shard index must be 1..{count} (shards are numbered 1..N)")
    return ShardSpec(index, count)


def shard_of(nodes: tuple[Node, ...], spec: ShardSpec) -> tuple[Node, ...]:
    """The nodes shard `spec` sweeps, in the order they were given (inventory order)."""
    names = sorted(node.name for node in nodes)
    taken = {name for position, name in enumerate(names) if position % spec.count == spec.index - 1}
    return tuple(node for node in nodes if node.name in taken)
