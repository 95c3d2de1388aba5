"""compromised-issuer: a CA given with --compromised-ca, wherever it appears, and all it ever vouched for.

"That CA" is its public key, not one encoding of it: a re-issued or cross-signed copy with
the same key is just as compromised. Below it, every certificate whose signature verifies
under a compromised certificate is compromised too, through any intermediate the fleet
(or the inputs) hold, however many levels deep.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sweeper.detect import Context, finding, rule
from sweeper.detect.fleet import Fleet, describe
from sweeper.incident import SourcedCert
from sweeper.model import Finding, Severity
from sweeper.pki.parse import certificate_facts


@dataclass(frozen=True, slots=True)
class Compromise:
    """Why a certificate is compromised: which given CA, how, and the chain up to it."""

    ca: SourcedCert
    how: str  # "is the compromised CA" | "carries the compromised CA's key" | "issued under it"
    chain: tuple[str, ...] = ()  # SHA-256s from the certificate's issuer up to the compromised CA


def compromised(fleet: Fleet) -> dict[str, Compromise]:
    """Every known certificate (by SHA-256) that is, or chains to, a compromised CA."""
    given = {certificate_facts(ca.der).spki_sha256: ca for ca in fleet.context.incident.compromised_cas}
    if not given:
        return {}
    memo: dict[str, Compromise | None] = {}

    def resolve(sha256: str, visiting: frozenset[str]) -> Compromise | None:
        if sha256 in memo:
            return memo[sha256]
        facts = fleet.facts(sha256)
        ca = given.get(facts.spki_sha256)
        if ca is not None:
            same = certificate_facts(ca.der).sha256 == sha256
            result = Compromise(ca, "is the compromised CA" if same else "carries the compromised CA's key")
        else:
            result = None
            for issuer in fleet.named_issuers(sha256):  # names first: signatures only on tainted paths
                above = None if issuer in visiting else resolve(issuer, visiting | {sha256})
                if above is not None and fleet.issued(sha256, issuer):
                    result = Compromise(above.ca, "issued under it", (issuer, *above.chain))
                    break
        memo[sha256] = result
        return result

    return {sha256: found for sha256 in fleet.der if (found := resolve(sha256, frozenset())) is not None}


@rule("compromised-issuer", Severity.CRITICAL, "fleet", needs=("compromised-ca",))
def compromised_issuer(fleet: Fleet, context: Context) -> Iterator[Finding]:
    """Issued (directly or through a chain) by a CA given as compromised, or that CA itself."""
    found = fleet.analysis(compromised)
    for record in fleet.records:
        hit = found.get(record.facts.sha256)
        if hit is None:
            continue
        ca = certificate_facts(hit.ca.der)
        depth = f" through {len(hit.chain) - 1} intermediate(s)" if len(hit.chain) > 1 else ""
        yield finding(
            "compromised-issuer",
            record,
            f"{hit.how} {ca.subject}{depth}"
            + ("" if record.facts.subject == ca.subject else f": {record.facts.subject}"),
            compromised_ca={"subject": ca.subject, "sha256": ca.sha256, "given_in": hit.ca.source},
            how=hit.how,
            chain=[describe(fleet, sha256) for sha256 in hit.chain],
        )
