"""Revocation: CRLs from the nodes' own stores and from --crl, verified before they count; OCSP when asked.

Each distinct CRL is verified once against the issuer certificates the fleet and the
inputs hold. Its entries then revoke a certificate only when the certificate's issuer
name and serial match AND the certificate's signature verifies under the same issuer
certificate (never serial alone), and the CRL's scope covers it. A stale CRL (nextUpdate
passed) still counts — a revocation does not expire — and is reported as `crl-stale`;
a CRL that cannot be verified counts for nothing and is reported as `crl-unverified`.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sweeper.detect import Context, finding, located_finding, rule
from sweeper.detect.fleet import Fleet, describe
from sweeper.detect.ocsp import ocsp_answers
from sweeper.model import Finding, Severity
from sweeper.pki.chain import issued_by
from sweeper.pki.crl import CrlEntry, CrlFacts, crl_covers, crl_facts, crl_signed_by
from sweeper.pki.parse import ParseError

MAX_LISTED = 10
HOLD = "certificateHold"
LIFTED = "removeFromCRL"


@dataclass(frozen=True, slots=True)
class SeenCrl:
    """One distinct CRL, every place it was found, and the issuer certificates that signed it."""

    der: bytes
    sha256: str
    sources: tuple[str, ...]
    nodes: tuple[str, ...]
    facts: CrlFacts | None
    issuers: tuple[str, ...]
    problem: str | None

    def evidence(self) -> dict[str, Any]:
        facts = self.facts
        return {
            "crl": self.sources[0],
            "crl_sources": list(self.sources[:MAX_LISTED]),
            "crl_copies": len(self.sources),
            "crl_sha256": self.sha256,
            "crl_issuer": facts.issuer if facts else None,
            "crl_number": facts.number if facts else None,
            "this_update": facts.this_update.isoformat() if facts else None,
            "next_update": facts.next_update.isoformat() if facts and facts.next_update else None,
        }


def seen_crls(fleet: Fleet) -> tuple[SeenCrl, ...]:
    """Every distinct CRL of the sweep and the inputs, with its verified issuers (or why it has none)."""
    copies: dict[bytes, list[tuple[str, str | None]]] = defaultdict(list)
    for node in fleet.nodes:
        for crl in node.crls:
            copies[crl.der].append((crl.source, crl.node or node.name))
    for crl in fleet.context.incident.crls:
        copies[crl.der].append((crl.source, None))
    return tuple(_verify(fleet, der, places) for der, places in copies.items())


def _verify(fleet: Fleet, der: bytes, places: list[tuple[str, str | None]]) -> SeenCrl:
    sources = tuple(source for source, _ in places)
    nodes = tuple(sorted({node for _, node in places if node}))
    sha256 = hashlib.sha256(der).hexdigest()
    try:
        facts = crl_facts(der)
    except ParseError as exc:
        return SeenCrl(der, sha256, sources, nodes, None, (), str(exc))
    if facts.unsupported:
        return SeenCrl(der, sha256, sources, nodes, facts, (), facts.unsupported)
    candidates = fleet.with_subject(facts.issuer)
    issuers = tuple(c for c in candidates if crl_signed_by(der, fleet.der[c]))
    problem = None
    if not candidates:
        problem = f"no certificate of its issuer ({facts.issuer}) is known: give it with --ca"
    elif not issuers:
        problem = (
            f"signature does not verify under any of {len(candidates)} certificate(s) named {facts.issuer}"
        )
    return SeenCrl(der, sha256, sources, nodes, facts, issuers, problem)


def crl_revocations(fleet: Fleet) -> dict[str, dict[str, Any]]:
    """Certificates (by SHA-256) that a verified CRL revokes, with that CRL as evidence."""
    verified = [seen for seen in fleet.analysis(seen_crls) if seen.facts is not None and seen.issuers]
    index: dict[tuple[str, int], list[SeenCrl]] = defaultdict(list)
    series: dict[str, list[SeenCrl]] = defaultdict(list)
    for seen in verified:
        assert seen.facts is not None
        series[seen.facts.issuer].append(seen)
        for serial in seen.facts.entries:
            index[(seen.facts.issuer, serial)].append(seen)
    found: dict[str, dict[str, Any]] = {}
    for sha256, der in fleet.der.items():
        facts = fleet.facts(sha256)
        serial = int(facts.serial, 16)
        listing = [s for s in index.get((facts.issuer, serial), []) if _speaks_for(fleet, s, sha256, der)]
        if not listing:
            continue
        newest = max(listing, key=_number)
        entry = newest.facts.entries[serial]  # type: ignore[union-attr]
        if entry.reason == LIFTED or (
            entry.reason == HOLD and _hold_lifted(fleet, newest, series, sha256, der)
        ):
            continue
        found[sha256] = _evidence(fleet, newest, entry, sha256, der)
    return found


def _number(seen: SeenCrl) -> tuple[int, bool]:
    """Newest first: higher CRL number, and a delta over the base it extends."""
    facts = seen.facts
    return (facts.number or 0, facts.delta) if facts else (0, False)


def _speaks_for(fleet: Fleet, seen: SeenCrl, sha256: str, der: bytes) -> bool:
    """The CRL covers this certificate and was signed by the key that issued it."""
    return crl_covers(seen.der, der) and _signer(fleet, seen, sha256, der) is not None


def _signer(fleet: Fleet, seen: SeenCrl, sha256: str, der: bytes) -> str | None:
    return next((i for i in seen.issuers if i != sha256 and issued_by(der, fleet.der[i])), None)


def _hold_lifted(
    fleet: Fleet, newest: SeenCrl, series: dict[str, list[SeenCrl]], sha256: str, der: bytes
) -> bool:
    """A hold is over when a newer complete CRL of the same issuer covers the certificate and omits it."""
    assert newest.facts is not None
    serial = int(fleet.facts(sha256).serial, 16)
    return any(
        other.facts is not None
        and not other.facts.delta
        and _number(other) > _number(newest)
        and serial not in other.facts.entries
        and _speaks_for(fleet, other, sha256, der)
        for other in series[newest.facts.issuer]
    )


def _evidence(fleet: Fleet, seen: SeenCrl, entry: CrlEntry, sha256: str, der: bytes) -> dict[str, Any]:
    assert seen.facts is not None
    signer = _signer(fleet, seen, sha256, der)
    return {
        "source": "crl",
        "serial": format(entry.serial, "x"),
        "revoked_at": entry.revoked_at.isoformat(),
        "reason": entry.reason,
        "issuer": describe(fleet, signer) if signer else None,
        "stale": _stale(seen.facts, fleet.context),
        "delta": seen.facts.delta,
        **seen.evidence(),
    }


def _stale(facts: CrlFacts, context: Context) -> bool:
    return facts.next_update is not None and facts.next_update < context.now


def revocations(fleet: Fleet) -> dict[str, dict[str, Any]]:
    """Revoked certificates by SHA-256: verified CRLs first, then OCSP answers (with --ocsp)."""
    found = dict(fleet.analysis(crl_revocations))
    for sha256, (url, answer) in fleet.analysis(ocsp_answers).items():
        if answer.status == "revoked" and sha256 not in found:
            found[sha256] = {
                "source": "ocsp",
                "ocsp_url": url,
                "responder": answer.responder,
                "revoked_at": answer.revoked_at.isoformat() if answer.revoked_at else None,
                "reason": answer.reason,
                "this_update": answer.this_update.isoformat() if answer.this_update else None,
            }
    return found


@rule("revoked", Severity.CRITICAL, "fleet")
def revoked(fleet: Fleet, context: Context) -> Iterator[Finding]:
    """Serial listed in a CRL whose signature verifies against its issuer (or a verified OCSP answer)."""
    found = fleet.analysis(revocations)
    for record in fleet.records:
        evidence = found.get(record.facts.sha256)
        if evidence is None:
            continue
        by = (
            f"CRL #{evidence['crl_number']} of {evidence['crl_issuer']}"
            if evidence["source"] == "crl"
            else (f"OCSP responder {evidence['ocsp_url']}")
        )
        yield finding(
            "revoked",
            record,
            f"revoked ({evidence['reason'] or 'no reason given'}) per {by}: {record.facts.subject}",
            **evidence,
        )


@rule("crl-stale", Severity.INFO, "fleet")
def crl_stale(fleet: Fleet, context: Context) -> Iterator[Finding]:
    """A verified CRL whose nextUpdate has passed: still used, but the CA may have revoked more since."""
    for seen in fleet.analysis(seen_crls):
        if seen.facts is not None and seen.issuers and _stale(seen.facts, context):
            yield _crl_finding(
                "crl-stale",
                seen,
                f"CRL of {seen.facts.issuer} is out of date (nextUpdate passed); used anyway",
            )


@rule("crl-unverified", Severity.INFO, "fleet")
def crl_unverified(fleet: Fleet, context: Context) -> Iterator[Finding]:
    """A CRL that was ignored: unreadable, unsupported, or not signed by any issuer certificate known."""
    for seen in fleet.analysis(seen_crls):
        if seen.problem:
            yield _crl_finding("crl-unverified", seen, f"CRL ignored: {seen.problem}", problem=seen.problem)


def _crl_finding(rule_id: str, seen: SeenCrl, message: str, **extra: object) -> Finding:
    node = seen.nodes[0] if len(seen.nodes) == 1 else None
    return located_finding(rule_id, message, node=node, entry=seen.sources[0], **seen.evidence(), **extra)
