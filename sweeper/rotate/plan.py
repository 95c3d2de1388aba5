"""The rotation plan: pure data, computed from what the preflight sweep saw and what the report flagged.

`make_plan()` decides, per phase and node, what is added, replaced and removed; the engine
only carries it out, and `--dry-run` only prints it. A plan is stored in the journal so
that `resume` finishes the plan that was started, not a new one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sweeper.errors import BadInput
from sweeper.model import CertRecord, Node, NodeResult
from sweeper.pki.parse import ParseError, crl_issuer, crl_pem

if TYPE_CHECKING:
    from sweeper.report import schema

PHASES = ("trust", "reissue", "purge")
PURGE_RULES = ("revoked", "ioc-match", "compromised-issuer", "known-compromised-key", "rogue-root")
VECS_TRUST = "vecs:TRUSTED_ROOTS"
VECS_BACKUPS = ("vecs:BACKUP_STORE", "vecs:BACKUP_STORE_H5C")
ESXI_RESTART = (
    "{root}/bin/auto-backup.sh && {root}/etc/init.d/hostd restart && {root}/etc/init.d/vpxa restart"
)
VCSA_RESTART = "{root}/usr/bin/service-control --stop --all && {root}/usr/bin/service-control --start --all"


@dataclass(frozen=True, slots=True)
class Action:
    """One idempotent step on one node; `step` is unique within (node, phase)."""

    node: str
    phase: str
    kind: str
    target: str
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def step(self) -> str:
        return f"{self.kind}:{self.target}"


@dataclass(frozen=True, slots=True)
class Plan:
    actions: tuple[Action, ...]
    waves: tuple[tuple[str, ...], ...]
    remove: Mapping[str, tuple[str, ...]]
    """sha256 of every certificate the purge removes -> why (rule ids, or 'old-root')."""
    max_failures: int

    def for_phase(self, phase: str, nodes: Iterable[str] | None = None) -> list[Action]:
        wanted = set(nodes) if nodes is not None else None
        return [a for a in self.actions if a.phase == phase and (wanted is None or a.node in wanted)]

    def of_node(self, name: str) -> list[Action]:
        return [a for a in self.actions if a.node == name]

    def to_json(self) -> dict[str, Any]:
        return {
            "actions": [asdict(a) | {"detail": dict(a.detail)} for a in self.actions],
            "waves": [list(w) for w in self.waves],
            "remove": {k: list(v) for k, v in self.remove.items()},
            "max_failures": self.max_failures,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        return cls(
            actions=tuple(Action(**a) for a in data["actions"]),
            waves=tuple(tuple(w) for w in data["waves"]),
            remove={k: tuple(v) for k, v in data["remove"].items()},
            max_failures=int(data["max_failures"]),
        )


@dataclass(frozen=True, slots=True)
class WaveOptions:
    canary: int = 1
    wave: str = "25%"
    max_failures: str = "0"


def flagged_from_report(report: schema.Report) -> dict[str, tuple[str, ...]]:
    """sha256 -> rules, for every finding of the source report that the purge must act on."""
    flagged: dict[str, set[str]] = {}
    for finding in report.findings:
        if finding.rule in PURGE_RULES and finding.sha256:
            flagged.setdefault(finding.sha256, set()).add(finding.rule)
    return {sha: tuple(sorted(rules)) for sha, rules in flagged.items()}


def make_plan(
    nodes: Mapping[str, Node],
    observed: Iterable[NodeResult],
    flagged: Mapping[str, tuple[str, ...]],
    new_root_sha256: str,
    options: WaveOptions,
    vmca_compatible: bool = True,
) -> Plan:
    """Every action of the rotation, per phase and node, from the preflight sweep."""
    swept = [r for r in observed if r.swept]
    every_cert = [c for r in swept for c in r.certificates]
    leaves = [c for c in every_cert if _is_identity(c)]
    remove: dict[str, tuple[str, ...]] = dict(flagged)
    for sha in _old_chain_cas(leaves, every_cert):
        remove.setdefault(sha, ("old-root",))
    remove.pop(new_root_sha256, None)

    removed_subjects = {c.facts.subject for c in every_cert if c.facts.sha256 in remove and c.facts.is_ca}
    actions: list[Action] = []
    for result in swept:
        node = nodes[result.name]
        if node.profile == "vcsa" and not vmca_compatible:
            raise BadInput(f"node '{node.name}' is a vCenter: VMCA accepts RSA only, use an RSA root")
        actions += _trust_actions(node, result, new_root_sha256)
        actions += _reissue_actions(node, result)
        actions += _purge_actions(node, result, remove)
        actions += _crl_purge_actions(node, result, removed_subjects)
        actions += _crl_publish_actions(node, result)
    with_work = [r.name for r in swept if any(a.node == r.name and a.phase == "reissue" for a in actions)]
    return Plan(
        tuple(actions),
        _waves(with_work, options),
        remove,
        _count(options.max_failures, len(with_work), "--max-failures"),
    )


def _is_identity(cert: CertRecord) -> bool:
    """A node's own certificate: a leaf store entry that comes with its private key."""
    if cert.role != "leaf" or cert.facts.is_ca or cert.store in VECS_BACKUPS:
        return False
    return cert.key is not None or cert.entry_type == "Private Key"


def _old_chain_cas(leaves: list[CertRecord], every_cert: list[CertRecord]) -> set[str]:
    """The CAs above today's leaves (by issuer name, up to a self-signed root): the old trust."""
    cas_by_subject: dict[str, list[CertRecord]] = {}
    for cert in every_cert:
        if cert.facts.is_ca:
            cas_by_subject.setdefault(cert.facts.subject, []).append(cert)
    found: set[str] = set()
    for leaf in leaves:
        issuer, seen = leaf.facts.issuer, set()
        while issuer in cas_by_subject and issuer not in seen:
            seen.add(issuer)
            for ca in cas_by_subject[issuer]:
                found.add(ca.facts.sha256)
            parent = cas_by_subject[issuer][0]
            if parent.facts.self_signed:
                break
            issuer = parent.facts.issuer
    return found


def _trust_actions(node: Node, result: NodeResult, new_root: str) -> list[Action]:
    actions = []
    for store in result.stores:
        if store.role != "trust":
            continue
        if store.kind == "vecs":
            actions.append(Action(node.name, "trust", "vmdir-publish", "TRUSTED_ROOTS", {"sha256": new_root}))
        elif store.status in ("ok", "missing"):
            actions.append(
                Action(
                    node.name,
                    "trust",
                    "add-anchor",
                    store.label,
                    {"store_kind": store.kind, "sha256": new_root},
                )
            )
    return actions


def _reissue_actions(node: Node, result: NodeResult) -> list[Action]:
    actions = []
    for cert in result.certificates:
        if not _is_identity(cert):
            continue
        if cert.store.startswith("vecs:"):
            store = cert.store.removeprefix("vecs:")
            actions.append(
                Action(
                    node.name,
                    "reissue",
                    "reissue-vecs",
                    f"{store}/{cert.entry}",
                    {"store": store, "alias": cert.entry, **_old(cert)},
                )
            )
        elif cert.key is not None and "#" not in cert.entry:
            actions.append(
                Action(
                    node.name,
                    "reissue",
                    "reissue-file",
                    cert.entry,
                    {
                        "key": cert.key.path,
                        **_old(cert),
                        "key_type": cert.facts.key_type,
                        "key_bits": cert.facts.key_bits,
                    },
                )
            )
    if actions:
        restart = _restart_command(node)
        if restart:
            actions.append(Action(node.name, "reissue", "restart", "services", {"command": restart}))
        if node.tls_port:
            actions.append(
                Action(
                    node.name,
                    "reissue",
                    "verify-tls",
                    str(node.tls_port),
                    {"host": node.host, "port": node.tls_port},
                )
            )
    return actions


def _old(cert: CertRecord) -> dict[str, str]:
    """What the revocation list needs of the certificate being replaced."""
    return {"old_sha256": cert.facts.sha256, "old_serial": cert.facts.serial, "old_issuer": cert.facts.issuer}


def _crl_publish_actions(node: Node, result: NodeResult) -> list[Action]:
    """The rotation CA's CRL goes into every CRL store the node has (folders and VECS)."""
    actions = []
    for store in result.stores:
        if store.label == "vecs:TRUSTED_ROOT_CRLS":
            actions.append(
                Action(node.name, "purge", "publish-crl", "TRUSTED_ROOT_CRLS", {"store_kind": "vecs"})
            )
        elif store.role == "crl" and store.kind == "dir" and store.status in ("ok", "missing"):
            actions.append(Action(node.name, "purge", "publish-crl", store.label, {"store_kind": "dir"}))
    return actions


def _restart_command(node: Node) -> str | None:
    if node.restart:
        return node.restart
    root = node.root.rstrip("/")
    if node.profile == "esxi":
        return ESXI_RESTART.format(root=root)
    if node.profile == "vcsa":
        return VCSA_RESTART.format(root=root)
    return None


def _purge_actions(node: Node, result: NodeResult, remove: Mapping[str, tuple[str, ...]]) -> list[Action]:
    """Removed certificates out of trust stores; VMware's BACKUP_STORE emptied (old certs *and keys*)."""
    doomed: dict[str, list[CertRecord]] = {}
    for cert in result.certificates:
        if cert.store in VECS_BACKUPS or (cert.facts.sha256 in remove and cert.role == "trust"):
            doomed.setdefault(cert.store, []).append(cert)
    actions = []
    for store, certs in doomed.items():
        detail = {"sha256": sorted({c.facts.sha256 for c in certs})}
        entries = sorted({c.entry.split("#", 1)[0] for c in certs})
        if store == VECS_TRUST:
            kind, target, extra = "vmdir-unpublish", "TRUSTED_ROOTS", {"aliases": entries}
        elif store in VECS_BACKUPS:
            kind, target, extra = "clear-vecs-store", store.removeprefix("vecs:"), {"aliases": entries}
        else:
            store_kind = next(s.kind for s in result.stores if s.label == store)
            kind, target, extra = "remove-anchors", store, {"store_kind": store_kind, "files": entries}
        actions.append(Action(node.name, "purge", kind, target, detail | extra))
    return actions


def _crl_purge_actions(node: Node, result: NodeResult, removed_subjects: set[str]) -> list[Action]:
    """CRLs signed by a removed CA go with it: nothing left can verify them."""
    by_entry: dict[tuple[str, str], list[bool]] = {}
    pems: dict[tuple[str, str], str] = {}
    for crl in result.crls:
        if crl.store is None or crl.entry is None:
            continue
        try:
            doomed = crl_issuer(crl.der) in removed_subjects
        except ParseError:
            doomed = False
        by_entry.setdefault((crl.store, crl.entry), []).append(doomed)
        pems[(crl.store, crl.entry)] = crl_pem(crl.der)
    gone = sorted(key for key, verdicts in by_entry.items() if all(verdicts))
    actions = []
    for store in sorted({store for store, _ in gone}):
        entries = [entry for s, entry in gone if s == store]
        if store.startswith("vecs:"):
            crls = {entry: pems[(store, entry)] for entry in entries}
            actions.append(
                Action(
                    node.name,
                    "purge",
                    "delete-vecs-crls",
                    store.removeprefix("vecs:"),
                    {"aliases": entries, "crls": crls},
                )
            )
        else:
            actions.append(Action(node.name, "purge", "remove-crls", store, {"files": entries}))
    return actions


def _waves(names: list[str], options: WaveOptions) -> tuple[tuple[str, ...], ...]:
    """Canary nodes first, then waves of N nodes or PCT of the fleet."""
    canary = max(0, min(options.canary, len(names)))
    size = max(1, _count(options.wave, len(names), "--wave"))
    waves = [tuple(names[:canary])] if canary else []
    rest = names[canary:]
    waves += [tuple(rest[i : i + size]) for i in range(0, len(rest), size)]
    return tuple(w for w in waves if w)


def _count(value: str, total: int, option: str) -> int:
    """`N` or `PCT%` of `total` (rounded up)."""
    text = value.strip()
    try:
        if text.endswith("%"):
            return math.ceil(total * float(text[:-1]) / 100)
        return int(text)
    except ValueError:
        raise BadInput(f"{option} {value!r}: expected a number or a percentage like 25%") from None
