"""Remember which public key each private key file holds, so a repeated sweep skips openssl.

Deriving a public key on a node costs an openssl process (~8 ms) per key per sweep; for a
nightly sweep of thousands of nodes that is most of the nodes' work. The read script's one
`stat` tells each key file's identity (size, device, inode and change time, in nanoseconds where
the node's `stat` gives them) and openssl runs only for an identity this cache has not seen.
The change time is the kernel's: every write of the file's bytes renews it and nothing sets it
back (`touch` moves the other two times), so a changed key is derived again, with no process
spent on hashing it. VECS keys, which are no files, are known by the SHA-256 of their text. The
cache maps, per node, identity -> SHA-256 of the SubjectPublicKeyInfo; it holds no key material
and is kept 0600.

What a node says about its keys is kept for that node alone: a hostile node that holds a
copy of another node's key file and lies about its public key changes only its own entries,
never what the other node's next sweep takes for granted.

Sweeps that share the cache at once (the shards of one fleet, run side by side) each write back
only the nodes they swept, merged under a lock with what the others wrote meanwhile: none loses
another's derivations to a last-writer-wins.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from sweeper.atomic import atomic_write

VERSION = 3
"""3: key files known by their identity; 2 by the SHA-256 of their bytes, and 1 shared one table
across the fleet: such caches are read as empty (one cold sweep rebuilds it)."""


def default_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sweeper" / "key-spki.json"


class KeyCache:
    """Loaded once per sweep; unreadable or foreign content is treated as empty, never trusted."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._nodes = _read(path) if path is not None else {}
        self._changed: set[str] = set()

    def known_for(self, node: str) -> dict[str, str]:
        """key identity -> spki for the keys this node held last time (what it said, no one else)."""
        return dict(self._nodes.get(node, {}))

    def learn(self, node: str, pairs: Mapping[str, str], seen: Iterable[str]) -> None:
        """Record this node's new derivations and the identities it holds now (old ones are forgotten)."""
        before = self._nodes.get(node, {})
        now = {h: spki for h in set(seen) if (spki := pairs.get(h) or before.get(h)) is not None}
        if now != before:
            self._nodes[node] = now
            self._changed.add(node)

    def tables(self, nodes: Iterable[str]) -> dict[str, dict[str, str]]:
        """The entries of `nodes`, for a worker process that sweeps them (and `adopt`s them back)."""
        return {node: dict(self._nodes[node]) for node in nodes if node in self._nodes}

    def adopt(self, tables: Mapping[str, Mapping[str, str]]) -> None:
        """Take what a worker's cache holds for the nodes it swept."""
        for node, keys in tables.items():
            if self._nodes.get(node) != keys:
                self._nodes[node] = dict(keys)
                self._changed.add(node)

    def save(self) -> None:
        """Write back the nodes this sweep changed over what the file holds now (another sweep
        may have written it since we read it)."""
        if self.path is None or not self._changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with _locked(self.path):
                nodes = _read(self.path) | {node: self._nodes[node] for node in self._changed}
                doc = {"version": VERSION, "nodes": nodes}
                atomic_write(self.path, json.dumps(doc, sort_keys=True).encode(), mode=0o600)
        except OSError:
            pass  # a cache that cannot be written only costs speed next time


def _read(path: Path) -> dict[str, dict[str, str]]:
    """The file's tables; unreadable, foreign or older content is empty."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return {}
    nodes = data.get("nodes")
    if not isinstance(nodes, dict):
        return {}
    return {node: dict(keys) for node, keys in nodes.items() if _is_table(keys)}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Held while the cache is read back and replaced; the kernel drops it if we are killed."""
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _is_table(keys: object) -> bool:
    return isinstance(keys, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items())
