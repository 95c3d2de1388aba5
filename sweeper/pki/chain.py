"""Who issued whom: signature checks between certificates and path building to a node's anchors.

Two views of a chain. `verify_path` is the strict one: cryptography's RFC 5280 verifier
(CA flags, path length, name constraints, key usage, allowed algorithms) against exactly
the anchors and intermediates a node holds. `walk_path` is the lenient one (names,
signatures, CA flags only) and tells a chain that is merely weak — a SHA-1 link, an
expired intermediate, which other rules report on that certificate — from no chain at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa
from cryptography.x509 import verification

from sweeper.pki.parse import certificate_facts, load_certificate
from sweeper.pki.spki import public_key_of

MAX_DEPTH = 8


@lru_cache(maxsize=262144)
def issued_by(der: bytes, issuer_der: bytes) -> bool:
    """True if `issuer_der`'s subject is `der`'s issuer and its key verifies `der`'s signature.

    MD5-signed certificates are checked by hand (cryptography's helper refuses them): a
    weak signature is still a signature, and compromise tracing must follow it.
    """
    cert, issuer = load_certificate(der), load_certificate(issuer_der)
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (InvalidSignature, TypeError):
        return False
    except (ValueError, UnsupportedAlgorithm):
        return _verify_legacy(cert, issuer)


def _verify_legacy(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return False
    return verify_signature(public_key_of(issuer), cert.signature, cert.tbs_certificate_bytes, algorithm)


def verify_signature(
    key: object, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm | None
) -> bool:
    """Check an RSA (PKCS#1 v1.5), ECDSA or DSA signature with any hash OpenSSL still computes."""
    if algorithm is None:
        return False
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, dsa.DSAPublicKey):
            key.verify(signature, data, algorithm)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class PathCheck:
    """The outcome of strict path validation, and why it failed."""

    trusted: bool
    error: str | None = None


def verify_path(
    leaf: bytes, intermediates: Sequence[bytes], anchors: Sequence[bytes], at: datetime
) -> PathCheck:
    """Validate `leaf` against exactly these anchors at time `at` (cryptography's verifier).

    The end-entity profile is relaxed (any extensions): whether the leaf names its host
    or carries serverAuth is another rule's business, not the chain's.
    """
    builder = (
        verification.PolicyBuilder()
        .store(_store(tuple(sorted(set(anchors)))))
        .time(at)
        .max_chain_depth(MAX_DEPTH)
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=verification.ExtensionPolicy.permit_all(),
        )
    )
    try:
        builder.build_client_verifier().verify(
            load_certificate(leaf), [load_certificate(d) for d in intermediates]
        )
    except verification.VerificationError as exc:
        return PathCheck(False, error=str(exc).split(" (encountered", 1)[0])
    return PathCheck(True)


@lru_cache(maxsize=1024)
def _store(anchors: tuple[bytes, ...]) -> verification.Store:
    return verification.Store([load_certificate(d) for d in anchors])


def walk_path(leaf: bytes, candidates: Sequence[bytes], anchors: Sequence[bytes]) -> tuple[bytes, ...] | None:
    """A lenient path from `leaf` to one of `anchors` through `candidates`, or None.

    Only names, signatures and the issuers' CA flag count; time, algorithms and
    extensions do not. Breadth first over certificates, each reached once (so the
    shortest path wins, and CAs that all issue each other cost no more than distinct
    ones), at most MAX_DEPTH levels; issuers are looked up by name, not tried one by one.
    """
    anchor_set = set(anchors)
    if leaf in anchor_set:
        return (leaf,)
    by_subject: dict[str, list[bytes]] = {}
    for der in {*candidates, *anchors}:
        facts = certificate_facts(der)
        if facts.is_ca:
            by_subject.setdefault(facts.subject, []).append(der)
    below: dict[bytes, bytes | None] = {leaf: None}
    frontier = [leaf]
    for _ in range(MAX_DEPTH):
        next_frontier = []
        for der in frontier:
            for issuer in by_subject.get(certificate_facts(der).issuer, ()):
                if issuer in below or not issued_by(der, issuer):
                    continue
                below[issuer] = der
                if issuer in anchor_set:
                    return _path_down(issuer, below)
                next_frontier.append(issuer)
        if not next_frontier:
            return None
        frontier = next_frontier
    return None


def _path_down(top: bytes, below: dict[bytes, bytes | None]) -> tuple[bytes, ...]:
    """The path from the leaf up to `top`, following who was reached from whom."""
    path = [top]
    while (lower := below[path[-1]]) is not None:
        path.append(lower)
    return tuple(reversed(path))
