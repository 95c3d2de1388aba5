"""Public keys known to be broken: badkeys' offline checks, primes shared across a fleet, a blocklist.

badkeys (https://badkeys.info) is used for what it checks without its downloadable
blocklist: ROCA, Fermat-factorable close primes, small prime factors, primes it ships
from keys broken in the wild, invalid RSA values, Wiener small-d, polynomial-factorable
moduli, repeated byte patterns and sparse DSA keys. Its blocklist (Debian 2008 weak keys,
keys published in RFCs, firmware, test suites …) is a 60 MB download that badkeys fetches
into ~/.cache; sweeper never downloads it, but reads a copy given with
`--badkeys-blocklist` (the `blocklist.dat` badkeys writes, with `badkeysdata.json` beside
it for names). Recovered factors are never kept: a finding names the check, not the key.
"""

from __future__ import annotations

import hashlib
import json
import mmap
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import gmpy2
from badkeys.checks import allchecks, checkdsa, checkrsa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from sweeper.pki.parse import ParseError, load_certificate
from sweeper.pki.spki import load_spki, spki_of

RSA_CHECKS = ("fermat", "roca", "rsainvalid", "rsapoly", "sharedprimes", "smalld", "smallfactors", "pattern")
DSA_CHECKS = ("dsasparse",)
FLEET_SHARED_PRIMES = "fleet-sharedprimes"
_RECORD = 16  # blocklist.dat: sorted 15-byte truncated SHA-256 + 1-byte list id


@dataclass(frozen=True, slots=True)
class KeyFlaw:
    """One reason a key is broken: the check's id, what it means, and badkeys' subtest if any."""

    check: str
    description: str
    subtest: str | None = None


def public_key_der(cert_der: bytes) -> bytes:
    """The certificate's SubjectPublicKeyInfo, DER."""
    return spki_of(load_certificate(cert_der))


@lru_cache(maxsize=65536)
def key_flaws(spki_der: bytes) -> tuple[KeyFlaw, ...]:
    """badkeys' offline verdicts on one public key (empty: nothing known against it)."""
    key = load_spki(spki_der)
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        results = checkrsa(numbers.n, e=numbers.e, checks=RSA_CHECKS)
    elif isinstance(key, dsa.DSAPublicKey):
        numbers = key.public_numbers()
        results = checkdsa(numbers.y, p=numbers.parameter_numbers.p, checks=DSA_CHECKS)
    else:
        return ()
    return tuple(
        KeyFlaw(check, allchecks[check]["desc"], result.get("subtest")) for check, result in results.items()
    )


def rsa_modulus(spki_der: bytes) -> int | None:
    key = load_spki(spki_der)
    return key.public_numbers().n if isinstance(key, rsa.RSAPublicKey) else None


MIN_MODULUS_BITS = 512
MAX_MODULUS_BITS = 16384
MAX_PAIRWISE = 200
_SMALL_PRIMES = gmpy2.primorial(1 << 16)
"""The product of every prime below 65,536: one gcd tells a modulus with a small factor."""


def valid_modulus(n: int) -> bool:
    """True for a modulus that can be an RSA product of two large primes.

    Even, tiny, huge, with a small prime factor, or a perfect power (n = m^k): none is a
    real key, and each is how a node would plant a "partner" for someone else's modulus.
    badkeys' own checks (smallfactors, rsainvalid) report such keys on their holder.
    """
    value = gmpy2.mpz(n)
    return (
        MIN_MODULUS_BITS <= value.bit_length() <= MAX_MODULUS_BITS
        and gmpy2.gcd(value, _SMALL_PRIMES) == 1
        and not gmpy2.is_power(value)
    )


def shared_primes(moduli: Collection[int]) -> dict[int, tuple[int, ...]]:
    """Valid moduli that share a real prime factor with another one, each with its partners.

    A real shared prime is a common factor g of n and m with 1 < g < n and g < m: a factor
    both keys lost. A modulus that is a multiple of another (m = 3n, or n times a prime
    the planter chose) shares the whole of n: that proves nothing against n's key, so it
    flags neither. Bernstein's batch GCD finds the candidates in one product and one
    remainder tree; up to MAX_PAIRWISE of them are paired one to one (partners named);
    past that each candidate is judged by its batch gcd alone, which must be a proper
    factor of it and not a whole modulus of the fleet (partners not named).
    """
    distinct = sorted({n for n in moduli if valid_modulus(n)})
    candidates = [(n, g) for n, g in zip(distinct, _batch_gcd(distinct), strict=True) if g != 1]
    if len(candidates) > MAX_PAIRWISE:
        whole = set(distinct)
        return {n: () for n, g in candidates if g != n and int(g) not in whole}
    found: dict[int, list[int]] = {}
    for i, (n, _) in enumerate(candidates):
        for m, _ in candidates[i + 1 :]:
            common = gmpy2.gcd(n, m)
            if common != 1 and common != n and common != m:
                found.setdefault(n, []).append(m)
                found.setdefault(m, []).append(n)
    return {n: tuple(partners) for n, partners in found.items()}


def _batch_gcd(distinct: list[int]) -> list[gmpy2.mpz]:
    """gcd(n, P/n) for each n, P the product of all of them (1 where nothing is shared)."""
    if len(distinct) < 2:
        return [gmpy2.mpz(1)] * len(distinct)
    tree = [[gmpy2.mpz(n) for n in distinct]]
    while len(tree[-1]) > 1:
        level = tree[-1]
        tree.append(
            [level[i] * level[i + 1] if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
        )
    remainders = tree.pop()
    while tree:
        level = tree.pop()
        remainders = [remainders[i // 2] % (n * n) for i, n in enumerate(level)]
    return [gmpy2.gcd(r // n, n) for n, r in zip(map(gmpy2.mpz, distinct), remainders, strict=True)]


@dataclass(frozen=True, slots=True)
class Blocklist:
    """badkeys' blocklist.dat, memory-mapped, and the names of its source lists."""

    path: Path
    data: mmap.mmap
    names: Mapping[int, str]


@lru_cache(maxsize=4)
def load_blocklist(path: Path) -> Blocklist:
    """Open a badkeys blocklist: `blocklist.dat`, or the folder badkeys keeps it in.

    :raises ParseError: if the file is missing or not a sequence of 16-byte records
    """
    data_path = path / "blocklist.dat" if path.is_dir() else path
    try:
        with data_path.open("rb") as handle:
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        raise ParseError(f"cannot read badkeys blocklist {data_path}: {exc}") from None
    if len(data) % _RECORD:
        raise ParseError(f"{data_path} is not a badkeys blocklist (size is not a multiple of {_RECORD})")
    return Blocklist(data_path, data, _blocklist_names(data_path.parent / "badkeysdata.json"))


def _blocklist_names(meta: Path) -> dict[int, str]:
    try:
        lists = json.loads(meta.read_text())["blocklists"]
        return {int(item["id"]): str(item["name"]) for item in lists}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def blocklist_hash(spki_der: bytes) -> bytes:
    """badkeys' BKHASH120: SHA-256 of the key's defining number (RSA n, EC x, DSA y, raw EdDSA)."""
    key = load_spki(spki_der)
    if isinstance(key, rsa.RSAPublicKey):
        value = key.public_numbers().n
    elif isinstance(key, ec.EllipticCurvePublicKey):
        value = key.public_numbers().x
    elif isinstance(key, dsa.DSAPublicKey):
        value = key.public_numbers().y
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        value = int.from_bytes(raw, "big")
    else:
        raise ParseError(f"no blocklist hash for {type(key).__name__}")
    return hashlib.sha256(value.to_bytes((value.bit_length() + 7) // 8, "big")).digest()[:15]


def blocklisted(blocklist: Blocklist, spki_der: bytes) -> KeyFlaw | None:
    """The blocklist entry for this key (binary search), or None."""
    try:
        wanted = blocklist_hash(spki_der)
    except ParseError:
        return None
    low, high = 0, len(blocklist.data) // _RECORD - 1
    while low <= high:
        middle = (low + high) // 2
        record = blocklist.data[middle * _RECORD : (middle + 1) * _RECORD]
        if record[:15] == wanted:
            list_id = record[15]
            name = blocklist.names.get(list_id, f"id{list_id}")
            return KeyFlaw(f"blocklist/{name}", "key in badkeys' blocklist of compromised keys", name)
        if record[:15] < wanted:
            low = middle + 1
        else:
            high = middle - 1
    return None
