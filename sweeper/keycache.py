"""Remember which public key each private key file holds, so a repeated sweep skips openssl.

Deriving a public key on a node costs an openssl process (~8 ms) per key per sweep; for a
nightly sweep of thousands of nodes that is most of the nodes' work. The node hashes each
key file (cheap) and only runs openssl for a hash this cache has not seen. The cache maps
SHA-256 of the key file's bytes -> SHA-256 of its SubjectPublicKeyInfo, so a changed key
can never be mistaken for the old one; it holds no key material and is kept 0600.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from sweeper.atomic import atomic_write

VERSION = 1


def default_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sweeper" / "key-spki.json"


class KeyCache:
    """Loaded once per sweep; unreadable or foreign content is treated as empty, never trusted."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._spki: dict[str, str] = {}
        self._by_node: dict[str, list[str]] = {}
        self._dirty = False
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        if not isinstance(data, dict) or data.get("version") != VERSION:
            return
        keys, nodes = data.get("keys"), data.get("nodes")
        if isinstance(keys, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items()):
            self._spki = dict(keys)
        if isinstance(nodes, dict):
            self._by_node = {
                n: [h for h in hs if h in self._spki] for n, hs in nodes.items() if isinstance(hs, list)
            }

    def known_for(self, node: str) -> dict[str, str]:
        """key-file hash -> spki for the keys this node held last time."""
        return {h: self._spki[h] for h in self._by_node.get(node, []) if h in self._spki}

    def learn(self, node: str, pairs: Mapping[str, str], seen: Iterable[str]) -> None:
        """Record new derivations, and the hashes the node holds now (old ones are forgotten)."""
        for key_hash, spki in pairs.items():
            if self._spki.get(key_hash) != spki:
                self._spki[key_hash] = spki
                self._dirty = True
        now = sorted(set(seen))
        if self._by_node.get(node) != now:
            self._by_node[node] = now
            self._dirty = True

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        used = {h for hashes in self._by_node.values() for h in hashes}
        doc = {
            "version": VERSION,
            "keys": {h: s for h, s in self._spki.items() if h in used},
            "nodes": self._by_node,
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write(self.path, json.dumps(doc, sort_keys=True).encode(), mode=0o600)
        except OSError:
            pass  # a cache that cannot be written only costs speed next time
