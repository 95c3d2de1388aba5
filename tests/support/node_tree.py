"""A Linux node's certificate files laid out under a directory that stands for ``/``, and a
node whose read hangs.

DESIGN's inventory gives every node a ``root`` path prefix, so one machine can host
many nodes' file trees side by side.
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from sweeper.platforms.vcsa import VECS_CLI

from .openssl_pki import OpenSSLPki, PkiCert


@dataclass(frozen=True, slots=True)
class LinuxNodeTree:
    """A Linux node's certificate files laid under ``root``.

    The ``str`` fields are paths *on the node*, as an inventory names them; the node's
    ``root`` (inventory key) is ``root``, and :meth:`host_path` finds a file here.
    """

    root: Path
    cert: str = "/etc/pki/tls/certs/server.crt"
    key: str = "/etc/pki/tls/private/server.key"
    trust_bundle: str = "/etc/pki/tls/certs/ca-bundle.crt"
    crl_dir: str = "/etc/pki/tls/crl"
    names: tuple[str, ...] = ()
    """The host names its leaf carries: the inventory's `names` for the node."""

    def host_path(self, node_path: str) -> Path:
        """Where a node path lives on this machine."""
        return self.root / node_path.lstrip("/")

    @property
    def stores(self) -> list[dict[str, str]]:
        """The node's ``[[nodes.stores]]`` entries for :func:`write_inventory`."""
        return [
            {"kind": "pem", "role": "leaf", "cert": self.cert, "key": self.key},
            {"kind": "bundle", "role": "trust", "path": self.trust_bundle},
            {"kind": "dir", "role": "crl", "path": self.crl_dir},
        ]


def lay_linux_node_tree(root: Path, pki: OpenSSLPki, leaf: PkiCert | None = None) -> LinuxNodeTree:
    """Lay a Linux node's files under ``root``: ``leaf`` (default ``pki.leaf_rsa``) with
    its key (0600), the root + intermediate bundle (CRLF, text between blocks) as trust,
    and the root's and intermediate's CRLs in a CRL folder."""
    leaf = leaf or pki.leaf_rsa
    tree = LinuxNodeTree(root, names=leaf.names)
    files = {
        tree.cert: leaf.cert,
        tree.key: leaf.key,
        tree.trust_bundle: pki.bundle_crlf,
        f"{tree.crl_dir}/intermediate.crl.pem": pki.crl,
        f"{tree.crl_dir}/root.crl.pem": pki.root_crl,
    }
    for node_path, source in files.items():
        target = tree.host_path(node_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    tree.host_path(tree.key).chmod(0o600)
    return tree


HANGING_STORE = {"kind": "vecs", "role": "trust"}
"""The store to give a node laid by :func:`lay_hanging_vecs_cli`."""


def lay_hanging_vecs_cli(root: Path) -> Path:
    """A `vecs-cli` under ``root`` that blocks, reading a FIFO, until someone opens that FIFO for
    writing: a node whose read never ends by itself (sweeper refuses to read a FIFO as a store,
    so the tool it runs is what hangs). Returns the FIFO."""
    fifo = root / "stuck.fifo"
    cli = root / VECS_CLI.lstrip("/")
    cli.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(fifo)
    cli.write_text(f"#!/bin/sh\nexec cat {shlex.quote(str(fifo))}\n")
    cli.chmod(0o755)
    return fifo
