"""Where certificates live on a node: one module per store kind, all read by one script.

`read_script(node)` is the single script a node runs (`shell.run_node_script` frames it);
`parse(node, output)` turns what it printed into records. Each store kind supplies `calls()`
and `collect()`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType

from sweeper.model import CertRecord, CrlRecord, Node, StoreKind, StoreResult
from sweeper.shell import Output
from sweeper.stores import files, script, vecs
from sweeper.stores.records import KeyLedger, StoreRead

_KINDS: dict[StoreKind, ModuleType] = {
    StoreKind.PEM: files,
    StoreKind.BUNDLE: files,
    StoreKind.DIR: files,
    StoreKind.VECS: vecs,
}


MAX_CERTIFICATES = 10_000
"""Certificates kept from one node. A real node holds hundreds at most (a Linux trust bundle ~150,
a vCenter's VECS stores a few dozen); within `--max-node-bytes` a hostile one can send 100,000
(one certificate repeated): 0.5 GB of memory and a 36 MB report for that node alone."""


@dataclass(frozen=True, slots=True)
class NodeRead:
    """Everything read from one node's stores."""

    certificates: tuple[CertRecord, ...]
    crls: tuple[CrlRecord, ...]
    stores: tuple[StoreResult, ...]
    keys: KeyLedger


def read_script(node: Node, known_keys: Iterable[str] = ()) -> str:
    """The POSIX sh script body that prints every store of `node`."""
    calls: list[str] = []
    for index, spec in enumerate(node.stores):
        calls.extend(_KINDS[spec.kind].calls(spec, node, f"s{index}"))
    return script.build(calls, known_keys)


def parse(node: Node, split: Output, known_keys: Mapping[str, str] | None = None) -> NodeRead:
    """Records from the script's output; CPU-bound, so callers run it off the event loop."""
    keys = KeyLedger(known=known_keys or {})
    certificates: list[CertRecord] = []
    crls: list[CrlRecord] = []
    results: list[StoreResult] = []
    for index, spec in enumerate(node.stores):
        sections = split.sections.get(f"s{index}", [])
        for read in _KINDS[spec.kind].collect(spec, node, sections, keys):
            if not sections and split.complete:
                read.fail("error", "the node printed nothing for this store")
            _keep_within(read, MAX_CERTIFICATES - len(certificates))
            certificates.extend(read.certificates)
            crls.extend(read.crls)
            results.append(read.result())
    return NodeRead(tuple(certificates), tuple(crls), tuple(results), keys)


def _keep_within(read: StoreRead, room: int) -> None:
    """Keep no more of the store's certificates than the node has room left for; say so."""
    if len(read.certificates) > room:
        left_out = len(read.certificates) - room
        del read.certificates[room:]
        read.fail("error", f"{left_out} certificate(s) not kept: a node keeps at most {MAX_CERTIFICATES}")
