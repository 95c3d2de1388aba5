"""Every CRL of a sweep, once: where it was found, what it says, and which known certificates signed it.

CRLs come from the nodes' CRL stores and from --crl; the same CRL found in many places is
one `SeenCrl`. Its signers are the known certificates named as its issuer whose key
verifies its signature and whose key usage allows cRLSign; whether one of them may speak
for a given certificate (same anchor, itself not revoked) is `detect.status`'s question.
A CRL that cannot be used by anyone carries a `CrlProblem`: unreadable, an unknown critical
extension, no known issuer certificate, a signature no such certificate verifies, an issuer
that may not sign CRLs, or a delta CRL with no usable complete CRL under it (RFC 5280
§5.2.4: a delta is never taken for a complete CRL).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sweeper.detect.fleet import Fleet
from sweeper.pki.crl import CrlFacts, crl_facts, crl_signature_valid, may_sign_crls
from sweeper.pki.parse import ParseError

MAX_LISTED = 10


@dataclass(frozen=True, slots=True)
class CrlProblem:
    """Why a CRL counts for nothing: a short kind (for grouping) and the full reason."""

    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class SeenCrl:
    """One distinct CRL, every place it was found, and the known certificates that signed it."""

    der: bytes
    sha256: str
    sources: tuple[str, ...]
    found_on: tuple[str, ...]
    facts: CrlFacts | None
    signers: tuple[str, ...]
    problem: CrlProblem | None

    @property
    def label(self) -> str:
        """How a message names this CRL: its kind, number and issuer."""
        if self.facts is None:
            return f"CRL {self.sources[0]}"
        kind = "delta CRL" if self.facts.delta else "CRL"
        number = f" #{self.facts.number}" if self.facts.number is not None else ""
        return f"{kind}{number} of {self.facts.issuer}"

    def evidence(self) -> dict[str, Any]:
        facts = self.facts
        return {
            "crl": self.sources[0],
            "crl_sources": list(self.sources[:MAX_LISTED]),
            "crl_copies": len(self.sources),
            "crl_sha256": self.sha256,
            "crl_issuer": facts.issuer if facts else None,
            "crl_number": facts.number if facts else None,
            "delta": facts.delta if facts else False,
            "this_update": facts.this_update.isoformat() if facts else None,
            "next_update": facts.next_update.isoformat() if facts and facts.next_update else None,
        }


def seen_crls(fleet: Fleet) -> tuple[SeenCrl, ...]:
    """Every distinct CRL of the sweep and the inputs, with its signers (or why it has none)."""
    copies: dict[bytes, list[tuple[str, str | None]]] = defaultdict(list)
    for node in fleet.nodes:
        for crl in node.crls:
            copies[crl.der].append((crl.source, crl.node or node.name))
    for crl in fleet.context.incident.crls:
        copies[crl.der].append((crl.source, None))
    seen = [_verify(fleet, der, places) for der, places in copies.items()]
    return tuple(_without_base(seen, crl) for crl in seen)


def _verify(fleet: Fleet, der: bytes, places: list[tuple[str, str | None]]) -> SeenCrl:
    sources = tuple(source for source, _ in places)
    found_on = tuple(sorted({node for _, node in places if node}))
    sha256 = hashlib.sha256(der).hexdigest()

    def seen(
        facts: CrlFacts | None, signers: tuple[str, ...] = (), problem: CrlProblem | None = None
    ) -> SeenCrl:
        return SeenCrl(der, sha256, sources, found_on, facts, signers, problem)

    try:
        facts = crl_facts(der)
    except ParseError as exc:
        return seen(None, problem=CrlProblem("malformed", str(exc)))
    if facts.unsupported:
        return seen(facts, problem=CrlProblem("unsupported", facts.unsupported))
    named = fleet.with_subject(facts.issuer)
    verifying = [c for c in named if crl_signature_valid(der, fleet.der[c])]
    signers = tuple(c for c in verifying if may_sign_crls(fleet.der[c]))
    if signers:
        return seen(facts, signers)
    if not named:
        detail = f"no certificate of its issuer ({facts.issuer}) is known: give it with --ca"
        return seen(facts, problem=CrlProblem("issuer-unknown", detail))
    if not verifying:
        detail = (
            f"its signature does not verify under any of {len(named)} certificate(s) named {facts.issuer}"
        )
        return seen(facts, problem=CrlProblem("bad-signature", detail))
    detail = f"it is signed by {facts.issuer}, whose key usage does not allow signing CRLs (no cRLSign)"
    return seen(facts, problem=CrlProblem("no-crl-sign", detail))


def _without_base(seen: list[SeenCrl], crl: SeenCrl) -> SeenCrl:
    """Mark a delta CRL that extends no usable complete CRL (same issuer and scope, base <= number < own)."""
    delta = crl.facts
    if crl.problem or delta is None or delta.delta_base is None:
        return crl
    for other in seen if delta.number is not None else ():
        base = other.facts
        if (
            other.problem is None
            and base is not None
            and not base.delta
            and base.issuer == delta.issuer
            and base.scope == delta.scope
            and base.number is not None
            and delta.delta_base <= base.number < delta.number  # type: ignore[operator]
        ):
            return crl
    detail = (
        f"it is a delta CRL and no usable complete CRL #{delta.delta_base} or later of its issuer was found"
    )
    return SeenCrl(
        crl.der, crl.sha256, crl.sources, crl.found_on, delta, crl.signers, CrlProblem("no-base", detail)
    )
