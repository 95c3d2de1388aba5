"""Build a lab directory: every node's file tree, SSH keys, vmdir and the incident.

Layout and plant placement are deterministic in (nodes, seed); key material, serials
and dates are fresh per build. A directory already built for the same (nodes, seed)
less than REUSE_FOR ago is reused as is (so a restarted lab keeps its state, rotations
included); otherwise the node trees, vmdir and incident are rebuilt, while the SSH
host keys, the client key and the RSA key pool are kept.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncssh

from sweeper.lab.filenodes import write_esxi, write_linux
from sweeper.lab.files import write_atomic, write_file
from sweeper.lab.hostile import write_hostile
from sweeper.lab.incident import Placement, write_incident
from sweeper.lab.keypool import KeyPool
from sweeper.lab.mint import Mint, make_authorities
from sweeper.lab.paths import LabError, LabPaths
from sweeper.lab.plan import REVOKED_LEAF, NodeSpec, plan_fleet
from sweeper.lab.state import read_json, serving_pid
from sweeper.lab.vcsa import rsa_keys_needed, write_vcsa, write_vmdir

BUILD_SCHEMA = "sweeper.lab.build/3"  # 3: vCenter's VCDB, SMS, STS_INTERNAL_SSL_CERT, HA
REUSE_FOR = timedelta(days=7)  # the expiring plant (10 days left) stays "expiring"
_OWN_NAMES = {
    "build.json", "client_key", "client_key.pub", "hostkeys", "nodes", "vmdir", "incident",
    ".keypool", "lab.log", "lab.json", "inventory.toml", "known_hosts",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class LabBuild:
    """What build_lab produced (or found, when `reused`)."""

    dir: Path
    nodes: tuple[NodeSpec, ...]
    seed: int
    built: datetime
    reused: bool
    seconds: float


def build_lab(
    dir: Path, nodes: int, seed: int = 0, rebuild: bool = False, hostile: tuple[str, ...] = ()
) -> LabBuild:
    """Build (or reuse) a lab of `nodes` nodes in `dir`, plus one node per `hostile` behaviour.

    :param rebuild: rebuild the trees even if a fresh build for (nodes, seed, hostile) exists
    :raises LabError: bad node count, a directory that is not a lab, or a lab being served
    """
    started = time.perf_counter()
    paths = LabPaths(Path(dir).resolve())
    try:
        plan = plan_fleet(nodes, seed, hostile)
    except ValueError as exc:
        raise LabError(str(exc)) from exc
    previous = read_json(paths.build_json)
    now = datetime.now(UTC).replace(microsecond=0)
    if not rebuild and previous and _matches(previous, nodes, seed, hostile, now):
        built = datetime.fromisoformat(previous["built"])
        return LabBuild(paths.dir, plan, seed, built, True, time.perf_counter() - started)
    _check_rebuildable(paths, previous)

    paths.build_json.unlink(missing_ok=True)
    for tree in (paths.nodes, paths.vmdir, paths.incident):
        shutil.rmtree(tree, ignore_errors=True)
    _ensure_ssh_keys(paths, plan)
    rsa_needed = 2 + sum(rsa_keys_needed(n) for n in plan if n.profile == "vcsa")
    with KeyPool(paths.keypool, rsa_needed) as pool:
        authorities = make_authorities(now, pool)
        revoked = [n.name for n in plan if any(s.plant == REVOKED_LEAF for s in n.leaves)]
        mint = Mint(authorities, now, pool, revoked)
        crls = {authorities.corp.slug: mint.corp_crl}
        vmdir_anchors = (authorities.corp, authorities.services, authorities.compromised)
        write_vmdir(paths, vmdir_anchors, crls)
        placed: list[Placement] = []
        # vcsa last: their RSA keys are still being made by the pool's workers.
        for node in sorted(plan, key=lambda n: n.profile == "vcsa"):
            root = paths.node_root(node.name)
            if node.profile == "linux":
                placed += write_linux(root, node, mint)
                if node.hostile:
                    write_hostile(root, node, mint)
            elif node.profile == "esxi":
                placed += write_esxi(root, node, mint)
            else:
                placed += write_vcsa(root, node, mint, vmdir_anchors, crls)
        write_incident(paths, placed, mint, nodes, seed, now)
    record = {
        "schema": BUILD_SCHEMA,
        "nodes": nodes,
        "seed": seed,
        "hostile": list(hostile),
        "built": now.isoformat(),
    }
    write_atomic(paths.build_json, json.dumps(record, indent=2) + "\n")
    return LabBuild(paths.dir, plan, seed, now, False, time.perf_counter() - started)


def _matches(
    previous: dict[str, object], nodes: int, seed: int, hostile: tuple[str, ...], now: datetime
) -> bool:
    try:
        built = datetime.fromisoformat(str(previous["built"]))
    except (KeyError, ValueError):
        return False
    return (
        previous.get("schema") == BUILD_SCHEMA
        and previous.get("nodes") == nodes
        and previous.get("seed") == seed
        and previous.get("hostile", []) == list(hostile)
        and timedelta(0) <= now - built < REUSE_FOR
    )


def _check_rebuildable(paths: LabPaths, previous: dict[str, object] | None) -> None:
    """Refuse to wipe anything that is not lab material, or a lab someone is serving."""
    if paths.dir.exists():
        foreign = sorted(p.name for p in paths.dir.iterdir() if p.name not in _OWN_NAMES)
        if foreign and previous is None:
            raise LabError(f"{paths.dir} is not a sweeper lab (it holds {foreign[0]}); pick another --dir")
    pid = serving_pid(paths)
    if pid is not None:
        raise LabError(f"a lab is being served from {paths.dir} (pid {pid}); stop it first")
    paths.dir.mkdir(parents=True, exist_ok=True)


def _ensure_ssh_keys(paths: LabPaths, plan: tuple[NodeSpec, ...]) -> None:
    """The client key and one Ed25519 host key per node, made once and kept across builds."""
    if not paths.client_key.exists():
        key = asyncssh.generate_private_key("ssh-ed25519", comment="sweeper-lab-client")
        write_file(paths.client_key, key.export_private_key(), 0o600)
        write_file(paths.client_key.with_suffix(".pub"), key.export_public_key())
    for node in plan:
        path = paths.host_key(node.name)
        if not path.exists():
            key = asyncssh.generate_private_key("ssh-ed25519", comment=node.name)
            write_file(path, key.export_private_key(), 0o600)
