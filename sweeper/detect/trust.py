"""Trust: leaves that do not chain to their own node's anchors, and anchors the fleet should not hold."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from sweeper.detect import Context, finding, rule
from sweeper.detect.fleet import Fleet
from sweeper.detect.strength import weak_key, weak_signature
from sweeper.model import Finding, NodeResult, Severity
from sweeper.pki.chain import MAX_DEPTH, verify_path, walk_path
from sweeper.pki.parse import certificate_facts
from sweeper.platforms import is_identity

MAX_LISTED = 20


@rule("untrusted-chain", Severity.HIGH, "node")
def untrusted_chain(node: NodeResult, context: Context) -> Iterator[Finding]:
    """A leaf that does not chain to a trust anchor on its own node.

    Anchors are the node's trust stores (VECS TRUSTED_ROOTS on a vcsa, castore.pem on
    ESXi, the bundles listed for Linux); intermediates are every CA certificate the node
    holds (a leaf file's chain, CA certificates in its stores). A node with no trust
    store swept is not judged: its anchors (say, the OS bundle) are unknown to us.
    A path that exists but fails only for a reason another rule reports on a member —
    expired, weak key, SHA-1/MD5 link — is not reported again here.
    """
    anchors = [r.der for r in node.certificates if r.role == "trust" and r.der]
    if not anchors:
        return
    intermediates = [r.der for r in node.certificates if r.facts.is_ca and r.der]
    for record in node.certificates:
        if not is_identity(record) or not record.der or record.der in anchors:
            continue
        at = min(max(context.now, record.facts.not_before), record.facts.not_after)
        check = verify_path(record.der, intermediates, anchors, at)
        if check.trusted:
            continue
        path = walk_path(record.der, intermediates, anchors)
        if path is not None and _explained(path, at):
            continue
        issuer_held = any(r.facts.subject == record.facts.issuer for r in node.certificates if r.facts.is_ca)
        yield finding(
            "untrusted-chain",
            record,
            f"does not chain to a trust anchor on {node.name} ({check.error}): {record.facts.subject}",
            reason=check.error,
            issuer=record.facts.issuer,
            issuer_on_node=issuer_held,
            lenient_path=[certificate_facts(d).subject for d in path] if path else None,
            anchors=sorted({certificate_facts(d).subject for d in anchors})[:MAX_LISTED],
        )


def _explained(path: Sequence[bytes], at: datetime) -> bool:
    """True if a defect that another rule reports on a member of the path explains the failure.

    `at` is the time the leaf was checked at (now, or the edge of its own validity), so an
    expired leaf is judged by whether its chain held while it was valid.
    """
    for index, der in enumerate(path):
        facts = certificate_facts(der)
        out_of_time = index > 0 and not facts.not_before <= at <= facts.not_after
        weak_link = index < len(path) - 1 and weak_signature(der, facts.self_signed)
        if out_of_time or weak_link or weak_key(facts.key_type, facts.key_bits):
            return True
    return False


def _chains_to_expected(fleet: Fleet, sha256: str, expected: frozenset[str]) -> bool:
    """True if the certificate was issued, through known CAs, by an expected root."""
    frontier, seen = {sha256}, {sha256}
    for _ in range(MAX_DEPTH):
        frontier = {i for s in frontier for i in fleet.issuers(s)} - seen
        if frontier & expected:
            return True
        if not frontier:
            return False
        seen |= frontier
    return False


@rule("rogue-root", Severity.HIGH, "fleet", needs=("expected-roots", "baseline"))
def rogue_root(fleet: Fleet, context: Context) -> Iterator[Finding]:
    """A trust anchor not in the fleet's expected roots (--expected-roots or a --baseline report).

    A CA certificate in a trust store that an expected root issued (an intermediate
    shipped in a bundle) is not rogue; anything else is, whoever signed it.
    """
    expected = context.incident.expected_roots
    if expected is None:
        return
    trust = [r for r in fleet.records if r.role == "trust"]
    rogue = {
        r.facts.sha256
        for r in trust
        if r.facts.sha256 not in expected.sha256
        and not (r.facts.sha256 in fleet.der and _chains_to_expected(fleet, r.facts.sha256, expected.sha256))
    }
    holders = {
        sha256: sorted({h.node for h in fleet.holders[sha256] if h.role == "trust"}) for sha256 in rogue
    }
    for record in trust:
        if record.facts.sha256 not in rogue:
            continue
        nodes = holders[record.facts.sha256]
        yield finding(
            "rogue-root",
            record,
            f"trust anchor not among the expected roots of {expected.source} (on {len(nodes)} node(s)): "
            f"{record.facts.subject}",
            expected_roots=expected.source,
            self_signed=record.facts.self_signed,
            issuer=record.facts.issuer,
            nodes=nodes[:MAX_LISTED],
            nodes_total=len(nodes),
        )
