"""A certificate's public key, whether or not cryptography can load it.

cryptography refuses some keys real certificates carry (SM2, brainpool "t" curves, GOST):
`public_key()` raises UnsupportedAlgorithm, which is no ValueError. Such a certificate still
belongs in the inventory, with its fingerprints and the SubjectPublicKeyInfo's hash (key reuse
and `spki:` indicators work on the bytes); its key verifies nothing here. A node that plants one
must not turn a sweep, a rule or a chain walk into an error, so every node certificate's key is
reached through this module.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

EC_PUBLIC_KEY = "1.2.840.10045.2.1"
_VERSION_TAG = 0xA0  # TBSCertificate's optional `[0] EXPLICIT version`


def public_key_of(cert: x509.Certificate) -> CertificatePublicKeyTypes | None:
    """The certificate's public key, or None when cryptography does not support its algorithm."""
    try:
        return cert.public_key()
    except UnsupportedAlgorithm:
        return None


def load_spki(der: bytes) -> CertificatePublicKeyTypes | None:
    """The public key of a DER SubjectPublicKeyInfo, or None for an unsupported algorithm."""
    try:
        return serialization.load_der_public_key(der)  # type: ignore[return-value]
    except UnsupportedAlgorithm:
        return None


def spki_of(cert: x509.Certificate) -> bytes:
    """The certificate's SubjectPublicKeyInfo, DER: as cryptography re-encodes the key when it
    loads (as every SPKI hash here is made, a private key's public half included), else as the
    certificate holds it."""
    key = public_key_of(cert)
    if key is not None:
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    tbs = _elements(cert.tbs_certificate_bytes)
    return tbs[6 if tbs[0][0] == _VERSION_TAG else 5]


def describe_unloadable(spki: bytes) -> tuple[str, int]:
    """Key type and size of a key cryptography cannot load: `EC-<curve OID>` with the size of the
    curve's field (from the public point's length) for an EC key; the algorithm's OID and 0
    (unknown) for anything else."""
    algorithm, public_key = _elements(spki)
    oid, *parameters = _elements(algorithm)
    if _oid(oid) != EC_PUBLIC_KEY or not parameters or parameters[0][0] != 0x06:
        return _oid(oid), 0
    point = _content(public_key)[1:]  # after the BIT STRING's unused-bits byte
    coordinates = 2 if point[:1] == b"\x04" else 1  # uncompressed: x and y; compressed: x
    return f"EC-{_oid(parameters[0])}", max(0, (len(point) - 1) // coordinates * 8)


def _span(data: bytes, at: int) -> tuple[int, int]:
    """Where the content of the DER element at `at` starts and ends. For bytes cryptography has
    already parsed as DER (single-byte tags, definite lengths); anything else is a ValueError."""
    if at + 2 > len(data):
        raise ValueError("truncated DER element")
    size = data[at + 1]
    start = at + 2 + (size & 0x7F if size & 0x80 else 0)
    end = start + (int.from_bytes(data[at + 2 : start], "big") if size & 0x80 else size)
    if end > len(data):
        raise ValueError("truncated DER element")
    return start, end


def _content(element: bytes) -> bytes:
    start, end = _span(element, 0)
    return element[start:end]


def _elements(element: bytes) -> list[bytes]:
    """The whole elements inside a constructed DER element (a SEQUENCE)."""
    content, found, at = _content(element), [], 0
    while at < len(content):
        end = _span(content, at)[1]
        found.append(content[at:end])
        at = end
    return found


def _oid(element: bytes) -> str:
    """Dotted form of a DER OBJECT IDENTIFIER."""
    arcs, value = [], 0
    for byte in _content(element):
        value = value << 7 | byte & 0x7F
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if not arcs:
        raise ValueError("empty OBJECT IDENTIFIER")
    first = min(arcs[0] // 40, 2)
    return ".".join(map(str, [first, arcs[0] - 40 * first, *arcs[1:]]))
