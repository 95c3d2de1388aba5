"""`sweeper merge`: the N shard reports of one `scan --shard K/N` run joined into one report.

Each shard report is read through `report.schema` and checked against the others before
anything is written: one inventory (by SHA-256), one shard count, every index once, no node
twice. The merged report lists the nodes in inventory order (each shard records its nodes'
positions). Findings of rules that judge one certificate or one node are the shards' own;
the fleet-wide rules (key-reuse, shared primes, rogue roots, issuers and CRLs held by other
nodes, ...) are run again over every node, from the DER each shard report carries, so a key
shared by two nodes of different shards is found here and only here.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sweeper import __version__
from sweeper.detect import REGISTRY, Context, detect, finding_order, select
from sweeper.errors import BadInput, CorruptInput, os_reason
from sweeper.model import (
    RULE_ERROR,
    CertRecord,
    CrlRecord,
    Finding,
    InputRef,
    InventoryRef,
    KeyInfo,
    NodeResult,
    Report,
    Role,
    RunInfo,
    ShardRef,
    StoreKind,
    StoreResult,
)
from sweeper.pki.parse import ParseError
from sweeper.report import schema
from sweeper.stores.records import certificate_record


@dataclass(frozen=True, slots=True)
class ShardReport:
    """One shard report as read: its path, the SHA-256 of its bytes, its content, and its nodes
    rebuilt as the rules see them."""

    path: Path
    sha256: str
    report: schema.Report
    nodes: tuple[NodeResult, ...]

    @property
    def shard(self) -> schema.Shard:
        assert self.report.run.shard is not None  # checked by `read_shard`
        return self.report.run.shard


def read_shard(path: Path) -> ShardReport:
    """Read one shard report.

    :raises BadInput: unreadable, not a report, not a scan, or not a shard's report (one line)
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CorruptInput(path, f"cannot read report: {os_reason(exc)}") from None
    report = schema.parse(raw, path)
    if report.run.kind != "scan":
        raise CorruptInput(path, f"a {report.run.kind} report, not a scan's: only scan shards merge")
    shard = report.run.shard
    if shard is None:
        raise CorruptInput(path, "not a shard's report (no run.shard): sweep with scan --shard K/N")
    if len(shard.positions) != len(report.nodes) or len(set(shard.positions)) != len(shard.positions):
        raise CorruptInput(path, "run.shard.positions does not give one inventory place per node")
    try:
        nodes = tuple(node_result(node) for node in report.nodes)
    except (ParseError, ValueError) as exc:
        raise CorruptInput(path, f"not a shard report merge can use: {exc}") from None
    return ShardReport(path, hashlib.sha256(raw).hexdigest(), report, nodes)


def check_shards(shards: Sequence[ShardReport]) -> None:
    """Refuse shards that are not the N parts of one sweep of one inventory.

    :raises BadInput: naming the files: different inventories, mixed counts, an index twice or
        missing, a node (or an inventory place) in two shards
    """
    if not shards:
        raise BadInput("merge: no shard report given")
    first = shards[0]
    by_index: dict[int, ShardReport] = {}
    node_home: dict[str, ShardReport] = {}
    place_home: dict[int, ShardReport] = {}
    for shard in shards:
        inventory = shard.report.run.inventory.sha256
        if inventory != first.report.run.inventory.sha256:
            raise BadInput(
                f"{shard.path}: swept inventory sha256 {inventory[:16]}…, {first.path} "
                f"{first.report.run.inventory.sha256[:16]}…: shards of different inventories do not merge"
            )
        if shard.shard.judging != first.shard.judging:
            raise BadInput(
                f"{shard.path}: judged with {' '.join(shard.shard.judging) or 'no option'}, {first.path} "
                f"with {' '.join(first.shard.judging) or 'no option'}: shards judged differently do not merge"
            )
        if _inputs(shard.report.run.inputs) != _inputs(first.report.run.inputs):
            raise BadInput(
                f"{shard.path}: its incident inputs (paths, SHA-256) are not {first.path}'s: "
                "shards judged by different files do not merge"
            )
        if shard.shard.count != first.shard.count:
            raise BadInput(
                f"{shard.path}: shard {shard.shard.index}/{shard.shard.count}, {first.path} "
                f"{first.shard.index}/{first.shard.count}: mixed shard counts do not merge"
            )
        twin = by_index.setdefault(shard.shard.index, shard)
        if twin is not shard:
            raise BadInput(f"{shard.path}: shard {shard.shard.index}/{shard.shard.count} is also {twin.path}")
        for node, place in zip(shard.report.nodes, shard.shard.positions, strict=True):
            other = node_home.setdefault(node.name, shard)
            if other is not shard:
                raise BadInput(f"{shard.path}: node {node.name} is also in {other.path}: shards overlap")
            other = place_home.setdefault(place, shard)
            if other is not shard:
                raise BadInput(
                    f"{shard.path}: inventory place {place} is also in {other.path}: shards overlap"
                )
    missing = sorted(set(range(1, first.shard.count + 1)) - by_index.keys())
    if missing:
        names = ", ".join(f"{index}/{first.shard.count}" for index in missing)
        raise BadInput(f"merge: shard(s) {names} missing: every shard of the sweep is needed")


def check_recorded_inputs(shards: Sequence[ShardReport], inputs: Iterable[InputRef]) -> None:
    """The files the merge read are the very ones the shards recorded (same paths, same SHA-256).

    :raises BadInput: one changed or went missing since the shards read it (one line)
    """
    recorded = _inputs(shards[0].report.run.inputs)
    now = _inputs(inputs)
    changed, unread = sorted(recorded - now), sorted(now - recorded)
    if changed:
        kind, path, _ = changed[0]
        raise BadInput(f"{path}: the shards' --{kind} input changed or went away since they read it")
    if unread:
        kind, path, _ = unread[0]
        raise BadInput(f"{path}: a --{kind} input the shards did not read")


def _inputs(items: Iterable[InputRef | schema.Input]) -> frozenset[tuple[str, str, str]]:
    return frozenset((item.kind, item.path, item.sha256) for item in items)


def _judged_again(item: schema.Finding) -> bool:
    """True for a shard's finding of a fleet-wide rule (a `rule-error` of one too): the merge re-runs it."""
    rule_id = item.evidence.get("failed_rule") if item.rule == RULE_ERROR else item.rule
    return rule_id in REGISTRY and REGISTRY[rule_id].scope == "fleet"


def merge(
    shards: Sequence[ShardReport],
    context: Context,
    rule_ids: Iterable[str] | None = None,
    argv: Sequence[str] = (),
) -> Report:
    """One report of every shard's nodes; the fleet-wide rules among `rule_ids` (all if None) re-run.

    `rule_ids` are the rules the shards ran (their `--rule`); `context` holds the incident
    inputs they were judged against (the same `--crl`, `--ioc`, ... options).
    """
    check_shards(shards)
    chosen = select(rule_ids)
    placed = sorted(
        (pair for shard in shards for pair in zip(shard.shard.positions, shard.nodes, strict=True)),
        key=lambda pair: pair[0],
    )
    nodes = tuple(node for _, node in placed)
    kept = [
        finding_from(item) for shard in shards for item in shard.report.findings if not _judged_again(item)
    ]
    fleet = detect(nodes, context, [r.id for r in chosen if r.scope == "fleet"])
    runs = [shard.report.run for shard in sorted(shards, key=lambda s: s.shard.index)]
    run = RunInfo(
        id=secrets.token_hex(4),
        kind="scan",
        started=min(r.started for r in runs),
        finished=datetime.now(UTC),
        tool_version=__version__,
        inventory=InventoryRef(runs[0].inventory.path, runs[0].inventory.sha256),
        argv=tuple(argv),
        interrupted=any(r.interrupted for r in runs),
        inputs=context.incident.inputs,
        rules=tuple(r.id for r in chosen),
        shards=tuple(
            ShardRef(shard.report.run.id, shard.shard.index, str(shard.path), shard.sha256)
            for shard in sorted(shards, key=lambda s: s.shard.index)
        ),
    )
    return Report(run=run, nodes=nodes, findings=tuple(sorted([*kept, *fleet], key=finding_order)))


def node_result(node: schema.Node) -> NodeResult:
    """A node of a shard report as the rules see a swept node: records rebuilt from their DER.

    :raises ValueError: a certificate without its DER, or whose DER is not the one listed
    :raises ParseError: a DER that is no certificate
    """
    certificates = tuple(_record(node.name, cert) for cert in node.certificates)
    crls = tuple(
        CrlRecord(source=crl.source, der=crl.der, node=node.name, store=crl.store, entry=crl.entry)
        for crl in node.crls or ()
    )
    stores = tuple(
        StoreResult(s.store, StoreKind(s.kind), Role(s.role), s.status, s.error, s.certificates)
        for s in node.stores
    )
    return NodeResult(**{**dict(node), "certificates": certificates, "crls": crls, "stores": stores})


def _record(node: str, cert: schema.Certificate) -> CertRecord:
    if cert.der is None:
        raise ValueError(f"{node}: {cert.entry} has no der")
    record = certificate_record(
        node,
        cert.store,
        cert.entry,
        Role(cert.role),
        cert.der,
        entry_type=cert.entry_type,
        key=KeyInfo(**cert.key.model_dump()) if cert.key is not None else None,
    )
    if record.facts.sha256 != cert.sha256:
        raise ValueError(f"{node}: {cert.entry}: its der is not the certificate {cert.sha256}")
    return record


def finding_from(item: schema.Finding) -> Finding:
    """A shard's finding, kept as it was."""
    return Finding(**{**dict(item), "evidence": dict(item.evidence)})
