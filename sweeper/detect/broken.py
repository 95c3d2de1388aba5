"""known-compromised-key: public keys that are published or can be broken (badkeys, shared primes, blocklist).

Each distinct key is checked once. Besides badkeys' own checks (see `pki.keys`), every
RSA modulus of the sweep goes through one batch GCD, so two keys of this fleet that
share a prime (a weak RNG at key generation) are both caught even if no one has published
them yet.
"""

from __future__ import annotations

from collections.abc import Iterator
from math import gcd

from sweeper.detect import Context, finding, rule
from sweeper.detect.fleet import Fleet
from sweeper.model import Finding, Severity
from sweeper.pki.keys import (
    FLEET_SHARED_PRIMES,
    KeyFlaw,
    blocklisted,
    key_flaws,
    load_blocklist,
    public_key_der,
    rsa_modulus,
    shared_prime_moduli,
)

MAX_PAIRED = 200


def broken_keys(fleet: Fleet) -> dict[str, tuple[KeyFlaw, ...]]:
    """Flaws per public key (by SPKI SHA-256), for keys that have any."""
    spkis: dict[str, bytes] = {}
    for sha256, records in fleet.holders.items():
        der = fleet.der.get(sha256)
        if der is not None:
            spkis.setdefault(records[0].facts.spki_sha256, public_key_der(der))
    flaws = {spki: list(key_flaws(der)) for spki, der in spkis.items()}
    blocklist_path = fleet.context.incident.badkeys_blocklist
    if blocklist_path is not None:
        blocklist = load_blocklist(blocklist_path)
        for spki, der in spkis.items():
            listed = blocklisted(blocklist, der)
            if listed:
                flaws[spki].append(listed)
    for spki, partners in _shared_primes(spkis).items():
        subtest = f"shares a prime with the key(s) spki:{', spki:'.join(partners[:5])}" if partners else None
        flaws[spki].append(
            KeyFlaw(FLEET_SHARED_PRIMES, "shares a prime factor with another key of this fleet", subtest)
        )
    return {spki: tuple(found) for spki, found in flaws.items() if found}


def _shared_primes(spkis: dict[str, bytes]) -> dict[str, list[str]]:
    """Keys whose modulus shares a prime with another key of the sweep, and with which (when few)."""
    moduli: dict[int, str] = {}
    for spki, der in spkis.items():
        n = rsa_modulus(der)
        if n is not None:
            moduli.setdefault(n, spki)
    weak = sorted(shared_prime_moduli(moduli))
    if len(weak) > MAX_PAIRED:
        return {moduli[n]: [] for n in weak}
    return {moduli[n]: [moduli[m] for m in weak if m != n and gcd(n, m) != 1] for n in weak}


@rule("known-compromised-key", Severity.CRITICAL, "fleet", needs=("badkeys-blocklist",))
def known_compromised_key(fleet: Fleet, context: Context) -> Iterator[Finding]:
    """Public key in a list of published/broken keys (Debian weak keys, ROCA, Fermat-factorable, …)."""
    broken = fleet.analysis(broken_keys)
    for record in fleet.records:
        flaws = broken.get(record.facts.spki_sha256)
        if not flaws:
            continue
        yield finding(
            "known-compromised-key",
            record,
            f"broken public key ({', '.join(f.check for f in flaws)}): {record.facts.subject}",
            spki_sha256=record.facts.spki_sha256,
            checks=[{"check": f.check, "description": f.description, "subtest": f.subtest} for f in flaws],
        )
