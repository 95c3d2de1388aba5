"""The rotation plan: pure data, computed from what the preflight sweep saw and what the report flagged.

`make_plan()` decides, per phase and node, which steps add, replace and remove what; the
engine only carries them out, and `--dry-run` only prints them. A plan is stored in the
journal so that `resume` finishes the plan that was started, not a new one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from sweeper import names, platforms
from sweeper.errors import BadInput
from sweeper.model import CertRecord, Node, NodeResult, Profile, Role, StoreKind, vecs_store_of
from sweeper.names import NamePolicy, normal
from sweeper.pki.chain import issued_by
from sweeper.pki.parse import ParseError, certificate_facts, crl_issuer, crl_pem
from sweeper.pki.rotation import LeafProfile
from sweeper.platforms import host_names, is_identity, vcsa
from sweeper.platforms.vcsa import BACKUP_LABELS, TRUSTED_ROOT_CRLS, TRUSTED_ROOTS_LABEL
from sweeper.rotate import vcsa_plan
from sweeper.rotate.steps import (
    STEPS,
    AddAnchor,
    ClearVecsStore,
    DeleteVecsCrls,
    OldCertificate,
    Persist,
    Phase,
    PublishCrl,
    ReissueFile,
    RemoveAnchors,
    RemoveCrls,
    Restart,
    Step,
    VerifyTls,
    VmdirPublish,
    VmdirUnpublish,
)

if TYPE_CHECKING:
    from sweeper.report import schema

PHASES = (Phase.TRUST, Phase.REISSUE, Phase.PURGE)
PURGE_RULES = ("revoked", "ioc-match", "compromised-issuer", "known-compromised-key", "rogue-root")


@dataclass(frozen=True, slots=True)
class Removal:
    """A certificate the purge takes out of every store: why, what it is, and where it is."""

    reasons: tuple[str, ...]
    """Rule ids of the `--from` report's findings, or 'old-root' (a CA above today's leaves)."""
    subject: str
    nodes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Skipped:
    """A certificate of a node that the rotation does not replace, and why (shown with the plan)."""

    node: str
    store: str
    entry: str
    reason: str


REMOVALS = TypeAdapter(dict[str, Removal])
SKIPPED = TypeAdapter(tuple[Skipped, ...])


@dataclass(frozen=True, slots=True)
class Plan:
    steps: tuple[Step, ...]
    waves: tuple[tuple[str, ...], ...]
    remove: Mapping[str, Removal]
    """sha256 of every certificate the purge removes -> why, its subject and the nodes holding it."""
    max_failures: int
    skipped: tuple[Skipped, ...] = ()

    def for_phase(self, phase: Phase, nodes: Iterable[str] | None = None) -> list[Step]:
        wanted = set(nodes) if nodes is not None else None
        return [s for s in self.steps if s.phase == phase and (wanted is None or s.node in wanted)]

    def of_node(self, name: str) -> list[Step]:
        return [s for s in self.steps if s.node == name]

    def to_json(self) -> dict[str, Any]:
        """The plan as the journal keeps it: steps as a tagged union (`kind`)."""
        return {
            "steps": STEPS.dump_python(self.steps, mode="json"),
            "waves": [list(w) for w in self.waves],
            "remove": REMOVALS.dump_python(dict(self.remove), mode="json"),
            "max_failures": self.max_failures,
            "skipped": SKIPPED.dump_python(self.skipped, mode="json"),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str) -> Plan:
        """:raises BadInput: the journal's plan is not one this sweeper wrote."""
        try:
            return cls(
                steps=STEPS.validate_python(data["steps"]),
                waves=tuple(tuple(w) for w in data["waves"]),
                remove=REMOVALS.validate_python(data["remove"]),
                max_failures=int(data["max_failures"]),
                skipped=SKIPPED.validate_python(data["skipped"]),
            )
        except (ValidationError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadInput(f"{source}: the journal's plan cannot be read ({type(exc).__name__})") from None

    def to_report(self) -> dict[str, Any]:
        """The plan as a report shows it: each step's node, phase, kind, target and own fields."""
        return {
            "actions": [
                {
                    "node": s.node,
                    "phase": s.phase,
                    "kind": s.kind,
                    "target": s.target,
                    "description": s.describe(),
                    "detail": s.detail(),
                }
                for s in self.steps
            ],
            "waves": [list(w) for w in self.waves],
            "remove": {sha: list(removal.reasons) for sha, removal in self.remove.items()},
            "max_failures": self.max_failures,
        }


@dataclass(frozen=True, slots=True)
class WaveOptions:
    """How the reissue phase is paced; checked when made, so a bad value stops before any sweep."""

    canary: int = 1
    wave: str = "25%"
    max_failures: str = "0"

    def __post_init__(self) -> None:
        if self.canary < 0:
            raise BadInput(f"--canary {self.canary}: expected 0 or more nodes")
        _share(self.wave, "--wave", least=1)
        _share(self.max_failures, "--max-failures", least=0)


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
    name_policies: Mapping[str, NamePolicy] | None = None,
    new_data_encipherment_key: bool = False,
) -> Plan:
    """Every step of the rotation, per phase and node, from the preflight sweep.

    `name_policies`: what each node's certificates may name (from the whole inventory; by
    default from `nodes`). Nothing a node's certificate says beyond that is signed again.
    `new_data_encipherment_key`: a vCenter's data-encipherment entry gets a new key (its stored
    guest-customization passwords become unreadable) instead of a new certificate for its key.

    :raises BadInput: before anything changes, when a node's own certificate could not be
        replaced (the inventory names no key for it) or a vCenter would get a non-RSA root.
    """
    policies = name_policies if name_policies is not None else names.policies(nodes.values())
    swept = [r for r in observed if r.swept]
    every_cert = [c for r in swept for c in r.certificates]
    leaves = [c for c in every_cert if is_identity(c)]
    _refuse_keyless(leaves)
    reasons: dict[str, tuple[str, ...]] = dict(flagged)
    for sha in _old_chain_cas(leaves, every_cert):
        reasons.setdefault(sha, ("old-root",))
    reasons.pop(new_root_sha256, None)
    remove = _removals(reasons, every_cert)

    removed_subjects = {c.facts.subject for c in every_cert if c.facts.sha256 in remove and c.facts.is_ca}
    steps: list[Step] = []
    skipped: list[Skipped] = []
    for result in swept:
        node = nodes[result.name]
        if node.profile is Profile.VCSA and not vmca_compatible:
            raise BadInput(f"node '{node.name}' is a vCenter: VMCA accepts RSA only, use an RSA root")
        steps += _with_persist(node, Phase.TRUST, _trust_steps(node, result))
        reissue, not_replaced = _reissue_steps(node, result, policies[node.name], new_data_encipherment_key)
        steps += reissue
        skipped += not_replaced
        purge = _purge_steps(node, result, remove) + vcsa_plan.purge_steps(node, result)
        purge += _crl_purge_steps(node, result, removed_subjects)
        purge += _crl_publish_steps(node, result)
        steps += _with_persist(node, Phase.PURGE, purge)
    with_work = [r.name for r in swept if any(s.node == r.name and s.phase == Phase.REISSUE for s in steps)]
    return Plan(
        tuple(steps),
        _waves(with_work, options),
        remove,
        _count(options.max_failures, len(with_work), "--max-failures"),
        tuple(skipped),
    )


def _removals(reasons: Mapping[str, tuple[str, ...]], every_cert: list[CertRecord]) -> dict[str, Removal]:
    """Each certificate to purge with its subject and the nodes that hold it (only those seen now)."""
    held: dict[str, list[CertRecord]] = {}
    for cert in every_cert:
        if cert.facts.sha256 in reasons:
            held.setdefault(cert.facts.sha256, []).append(cert)
    return {
        sha: Removal(reasons[sha], certs[0].facts.subject, tuple(dict.fromkeys(c.node for c in certs)))
        for sha, certs in held.items()
    }


def _refuse_keyless(leaves: list[CertRecord]) -> None:
    """A node's own certificate in a file store with no key named cannot be replaced: say so now."""
    keyless = [c for c in leaves if vecs_store_of(c.store) is None and c.key is None]
    if keyless:
        first = keyless[0]
        more = f" (and {len(keyless) - 1} more)" if len(keyless) > 1 else ""
        raise BadInput(
            f"node '{first.node}': {first.store} holds the node's own certificate but the inventory "
            f'names no key for it, so it cannot be replaced; add key = "..." to that store{more}'
        )


MAX_CHAIN_DEPTH = 16


def _old_chain_cas(leaves: list[CertRecord], every_cert: list[CertRecord]) -> set[str]:
    """The CAs above today's leaves, each link proven by its signature (a name alone proves nothing:
    a node's self-made leaf may name any CA as its issuer): the old trust the purge removes."""
    cas_by_subject: dict[str, dict[str, bytes]] = {}
    for cert in every_cert:
        if cert.facts.is_ca and cert.der:
            cas_by_subject.setdefault(cert.facts.subject, {})[cert.facts.sha256] = cert.der
    found: set[str] = set()
    proven: dict[tuple[str, str], bool] = {}
    for leaf in leaves:
        level = {leaf.facts.sha256: leaf.der}
        for _ in range(MAX_CHAIN_DEPTH):
            above: dict[str, bytes] = {}
            for sha, der in level.items():
                for ca_sha, ca_der in cas_by_subject.get(certificate_facts(der).issuer, {}).items():
                    if ca_sha == sha or ca_sha in found:
                        continue
                    if proven.setdefault((sha, ca_sha), _issued(der, ca_der)):
                        above[ca_sha] = ca_der
            found.update(above)
            if not above:
                break
            level = above
    return found


def _issued(der: bytes, issuer_der: bytes) -> bool:
    try:
        return issued_by(der, issuer_der)
    except ParseError:
        return False


def _trust_steps(node: Node, result: NodeResult) -> list[Step]:
    steps: list[Step] = []
    for store in result.stores:
        if store.role != Role.TRUST:
            continue
        if store.kind == StoreKind.VECS:
            steps.append(VmdirPublish(node=node.name))
        elif store.status in ("ok", "missing"):
            steps.append(AddAnchor(node=node.name, store=store.label, store_kind=store.kind))
    return steps


def _reissue_steps(
    node: Node, result: NodeResult, policy: NamePolicy, new_data_key: bool = False
) -> tuple[list[Step], list[Skipped]]:
    """Per identity of the node: a new key and a certificate with the fixed profile and approved names."""
    steps: list[Step] = []
    skipped: list[Skipped] = []
    for cert in result.certificates:
        if not is_identity(cert):
            continue
        vecs_store = vecs_store_of(cert.store)
        if vecs_store is not None and vecs_store not in vcsa.REISSUED_STORES:
            why = "a VECS store sweeper does not know: not re-issued (check it by hand)"
            skipped.append(Skipped(node.name, cert.store, cert.entry, why))
            continue
        allowed, dropped = policy.split(host_names(cert))
        if normal(node.host) not in allowed:
            allowed = (*allowed, normal(node.host))
        common_name = allowed[0] if vecs_store is None or vecs_store in vcsa.HOST_NAMED_STORES else vecs_store
        common = {
            "node": node.name,
            "key_kind": platforms.new_key_kind(node.profile, cert.facts.key_type),
            "rsa_only": platforms.rsa_only(node.profile),
            "profile": LeafProfile(common_name, allowed, client_auth=vecs_store in vcsa.CLIENT_STORES),
            "old": OldCertificate(cert.facts.sha256, cert.facts.serial, cert.facts.issuer),
            "dropped": dropped,
        }
        if vecs_store is not None:
            steps += vcsa_plan.vecs_steps(node, cert, vecs_store, common, new_data_key)
        elif cert.key is not None:
            steps.append(ReissueFile(cert=cert.store, key=cert.key.path, **common))
    if not steps:
        return steps, skipped
    steps = vcsa_plan.ordered(node, steps)
    steps = _with_persist(node, Phase.REISSUE, steps)
    if node.restart:
        steps.append(Restart(node=node.name, command=node.restart))
    if node.tls_port:
        steps.append(VerifyTls(node=node.name, host=node.host, port=node.tls_port))
    return steps, skipped


def _with_persist(node: Node, phase: Phase, steps: list[Step]) -> list[Step]:
    """A phase that changes a node's files ends with its persist command (ESXi: auto-backup.sh)."""
    file_changes = (AddAnchor, ReissueFile, RemoveAnchors, RemoveCrls, PublishCrl)
    if not (node.persist and any(isinstance(s, file_changes) for s in steps)):
        return steps
    return [*steps, Persist(node=node.name, command=node.persist, after=phase)]


def _crl_publish_steps(node: Node, result: NodeResult) -> list[Step]:
    """The rotation CA's CRL goes into every CRL store the node has (folders and VECS)."""
    steps: list[Step] = []
    for store in result.stores:
        if vecs_store_of(store.label) == TRUSTED_ROOT_CRLS:
            steps.append(PublishCrl(node=node.name, store=TRUSTED_ROOT_CRLS, store_kind=StoreKind.VECS))
        elif store.role == Role.CRL and store.kind == StoreKind.DIR and store.status in ("ok", "missing"):
            steps.append(PublishCrl(node=node.name, store=store.label, store_kind=StoreKind.DIR))
    return steps


def _purge_steps(node: Node, result: NodeResult, remove: Mapping[str, tuple[str, ...]]) -> list[Step]:
    """Removed certificates out of trust stores; VMware's BACKUP_STORE emptied (old certs *and keys*)."""
    doomed: dict[str, list[CertRecord]] = {}
    for cert in result.certificates:
        if cert.store in BACKUP_LABELS or (cert.facts.sha256 in remove and cert.role == Role.TRUST):
            doomed.setdefault(cert.store, []).append(cert)
    steps: list[Step] = []
    for store, certs in doomed.items():
        shas = tuple(sorted({c.facts.sha256 for c in certs}))
        entries = tuple(sorted({c.entry.split("#", 1)[0] for c in certs}))
        if store == TRUSTED_ROOTS_LABEL:
            steps.append(VmdirUnpublish(node=node.name, aliases=entries, sha256=shas))
        elif store in BACKUP_LABELS:
            vecs_store = vecs_store_of(store) or store
            steps.append(ClearVecsStore(node=node.name, store=vecs_store, aliases=entries, sha256=shas))
        else:
            kind = next(s.kind for s in result.stores if s.label == store)
            steps.append(
                RemoveAnchors(node=node.name, store=store, store_kind=kind, files=entries, sha256=shas)
            )
    return steps


def _crl_purge_steps(node: Node, result: NodeResult, removed_subjects: set[str]) -> list[Step]:
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
    steps: list[Step] = []
    for store in sorted({store for store, _ in gone}):
        entries = [entry for s, entry in gone if s == store]
        vecs_store = vecs_store_of(store)
        if vecs_store is not None:
            crls = {entry: pems[(store, entry)] for entry in entries}
            steps.append(DeleteVecsCrls(node=node.name, store=vecs_store, crls=crls))
        else:
            steps.append(RemoveCrls(node=node.name, store=store, files=tuple(entries)))
    return steps


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
    number, percent = _share(value, option, least=0)
    return math.ceil(total * number / 100) if percent else int(number)


def _share(value: str, option: str, least: int) -> tuple[float, bool]:
    """(number, is a percentage) of `N` or `PCT%`, at least `least` and at most 100%.

    :raises BadInput: naming the option and what it expects
    """
    text = value.strip()
    percent = text.endswith("%")
    try:
        number = float(text[:-1]) if percent else int(text)
    except ValueError:
        number = -1
    if number < least or (percent and not 0 <= number <= 100) or (percent and least and number == 0):
        kind = "a number of nodes" + (" (1 or more)" if least else "")
        raise BadInput(f"{option} {value!r}: expected {kind} or a percentage like 25%")
    return number, percent
