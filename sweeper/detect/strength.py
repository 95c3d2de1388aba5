"""Cryptographic strength: weak keys and weak signatures, whatever store the certificate sits in."""

from __future__ import annotations

from collections.abc import Iterator

from sweeper.detect import Context, finding, rule
from sweeper.model import CertRecord, Finding, Severity
from sweeper.pki.chain import issued_by
from sweeper.pki.parse import certificate_facts, signature_hash

MIN_RSA_BITS = 2048
MIN_EC_BITS = 256
WEAK_HASHES = frozenset({"md2", "md4", "md5", "sha1"})
UNCHECKABLE_HASHES = frozenset({"md2", "md4"})


def weak_key(key_type: str, key_bits: int) -> str | None:
    """Why this key is too weak (RSA < 2048, DSA, EC below P-256), or None."""
    if key_type == "RSA" and key_bits < MIN_RSA_BITS:
        return f"RSA {key_bits}-bit key (below {MIN_RSA_BITS})"
    if key_type == "DSA":
        return f"DSA {key_bits}-bit key (DSA is deprecated)"
    if key_type.startswith("EC-") and key_bits < MIN_EC_BITS:
        return f"{key_type[3:]} key ({key_bits}-bit curve, below P-256)"
    return None


def weak_signature(der: bytes, self_signed: bool) -> str | None:
    """The weak hash under the certificate's signature (MD2/MD4/MD5/SHA-1), or None.

    A self-signed certificate is exempt: nothing relies on its self-signature (it is
    trusted as itself), so a collision on it gains an attacker nothing. `self_signed` as
    parsed misses DSA and MD5 self-signatures (cryptography will not check them), so
    those are checked here again; an MD2/MD4 self-issued root cannot be checked at all
    any more (OpenSSL dropped both) and counts as self-signed.
    """
    if self_signed or not der:
        return None
    name = signature_hash(der)
    if name not in WEAK_HASHES or issued_by(der, der):
        return None
    facts = certificate_facts(der)
    if name in UNCHECKABLE_HASHES and facts.subject == facts.issuer:
        return None
    return name


@rule("weak-key", Severity.HIGH, "cert")
def weak_key_rule(record: CertRecord, context: Context) -> Iterator[Finding]:
    """RSA < 2048, DSA, EC curves below P-256."""
    why = weak_key(record.facts.key_type, record.facts.key_bits)
    if why:
        yield finding(
            "weak-key",
            record,
            f"{why}: {record.facts.subject}",
            key_type=record.facts.key_type,
            key_bits=record.facts.key_bits,
            spki_sha256=record.facts.spki_sha256,
        )


@rule("weak-signature", Severity.HIGH, "cert")
def weak_signature_rule(record: CertRecord, context: Context) -> Iterator[Finding]:
    """MD5 or SHA-1 signature on a non-root certificate (self-signed ones are exempt)."""
    hash_name = weak_signature(record.der, record.facts.self_signed)
    if hash_name:
        yield finding(
            "weak-signature",
            record,
            f"signed with {hash_name.upper()} ({record.facts.signature_algorithm}) by {record.facts.issuer}: "
            f"{record.facts.subject}",
            signature_algorithm=record.facts.signature_algorithm,
            hash=hash_name,
            issuer=record.facts.issuer,
        )
