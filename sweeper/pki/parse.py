"""Read certificates, CRLs and public keys from PEM or DER bytes as the nodes hold them."""

from __future__ import annotations

import base64
import bisect
import hashlib
import re
import warnings
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.utils import CryptographyDeprecationWarning

from sweeper.pki.facts import CertFacts
from sweeper.pki.spki import describe_unloadable, public_key_of, spki_of

_PEM_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
_PEM_END = re.compile(rb"(?=-----END ([A-Z0-9 ]+)-----)")
_WHITESPACE = b" \t\n\r\x0b\x0c"  # what a regex's \s matches in bytes
CERT_LABELS = {b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE"}
CRL_LABELS = {b"X509 CRL"}


class ParseError(ValueError):
    """Bytes that should hold a certificate, key or CRL do not; the message says why."""


# A node's certificate with a zero or negative serial (RFC 5280 forbids them, cryptography still
# reads them) is reported with its serial as it is; the library's warning would reach the
# operator's terminal once per such certificate, naming sweeper's source lines.
warnings.filterwarnings("ignore", "Parsed a serial number which wasn't", CryptographyDeprecationWarning)

MALFORMED = (
    ValueError,
    TypeError,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)
"""What cryptography raises on bytes that are not a well-formed certificate or CRL (a bad version
number, an extension twice, a name form it does not know: none of them a ValueError): node bytes
must never escape as anything but ParseError."""


@dataclass(frozen=True, slots=True)
class PemBlock:
    label: str
    der: bytes


def pem_blocks(data: bytes) -> list[PemBlock]:
    """Every PEM block in `data`, whatever text stands around it (CRLF, comments, OpenSSL dumps).

    A block runs from its BEGIN line to the first END line of the same label. Each END is found
    with `bytes.find` (a lazy regex spanning the body cost ~15 µs per kilobyte, once per node)
    until a BEGIN has no END: each such search reads to the end of the data, so a node's file of
    BEGIN lines alone took time growing with the square of its size (1.5 s for 288 KB, hours
    for the 64 MiB a node may send). From then on every END is looked up in an index of them."""
    blocks = []
    start = 0
    ends: dict[bytes, list[int]] | None = None
    while match := _PEM_BEGIN.search(data, start):
        label = match.group(1)
        if ends is None:
            end = data.find(b"-----END " + label + b"-----", match.end())
        else:
            end = _next_end(ends.get(label, []), match.end())
        if end < 0:  # no END: a BEGIN may still start within this one's line
            ends = ends if ends is not None else _end_markers(data)
            start = match.start() + 1
            continue
        start = end + len(label) + 14
        body = data[match.end() : end].lstrip(_WHITESPACE)
        if b":" in body.split(b"\n", 1)[0]:
            raise ParseError(f"encrypted or headed PEM block '{label.decode()}' is not supported")
        try:
            der = base64.b64decode(body.translate(None, _WHITESPACE), validate=True)
        except ValueError:
            raise ParseError(f"PEM block '{label.decode()}' is not valid base64") from None
        blocks.append(PemBlock(label.decode(), der))
    return blocks


def _end_markers(data: bytes) -> dict[bytes, list[int]]:
    """Where every END line starts, by label, in order (a lookahead: END lines may overlap)."""
    ends: dict[bytes, list[int]] = {}
    for match in _PEM_END.finditer(data):
        ends.setdefault(match.group(1), []).append(match.start())
    return ends


def _next_end(positions: list[int], at: int) -> int:
    """The first of `positions` at or after `at`, or -1."""
    index = bisect.bisect_left(positions, at)
    return positions[index] if index < len(positions) else -1


def split_certificates(data: bytes) -> list[bytes]:
    """DER of every certificate in a PEM text (any number of blocks) or a single DER file."""
    if b"-----BEGIN" in data:
        ders = [b.der for b in pem_blocks(data) if b.label.encode() in CERT_LABELS]
        if not ders and not any(b.label.encode() in CRL_LABELS for b in pem_blocks(data)):
            raise ParseError("no certificate in PEM text")
        return ders
    if not data.strip():
        raise ParseError("file is empty")
    if data[:1] != b"\x30":
        raise ParseError("neither PEM nor DER")
    try:
        x509.load_der_x509_certificate(data)
    except MALFORMED as exc:
        raise ParseError(f"not a DER certificate ({exc})") from None
    return [data]


def split_crls(data: bytes) -> list[bytes]:
    """DER of every CRL in PEM text or a single DER CRL."""
    if b"-----BEGIN" in data:
        return [b.der for b in pem_blocks(data) if b.label.encode() in CRL_LABELS]
    try:
        x509.load_der_x509_crl(data)
    except MALFORMED as exc:
        raise ParseError(f"not a CRL ({exc})") from None
    return [data]


@lru_cache(maxsize=65536)
def certificate_facts(der: bytes) -> CertFacts:
    """Parse a DER certificate once per process; fleets repeat the same roots thousands of times.

    Through `load_certificate`, so the rules that need the certificate itself find it parsed.
    """
    cert = load_certificate(der)
    try:
        spki = spki_of(cert)
        key = public_key_of(cert)
        key_type, key_bits = describe_public_key(key) if key is not None else describe_unloadable(spki)
        return CertFacts(
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            serial=format(cert.serial_number, "x"),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            sha256=hashlib.sha256(der).hexdigest(),
            spki_sha256=hashlib.sha256(spki).hexdigest(),
            key_type=key_type,
            key_bits=key_bits,
            signature_algorithm=_signature_name(cert),
            is_ca=_is_ca(cert),
            self_signed=_self_signed(cert),
            sans=_sans(cert),
            common_name=_common_name(cert),
        )
    except MALFORMED as exc:
        raise ParseError(f"malformed certificate ({exc})") from None


def describe_public_key(key: object) -> tuple[str, int]:
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC-{key.curve.name}", key.curve.key_size
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(key, x25519.X25519PublicKey):
        return "X25519", 256
    if isinstance(key, x448.X448PublicKey):
        return "X448", 448
    return type(key).__name__, 0


def _signature_name(cert: x509.Certificate) -> str:
    oid = cert.signature_algorithm_oid
    return getattr(oid, "_name", None) or oid.dotted_string


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:  # noqa: BLE001 - any failure means "not provably self-signed"
        return False
    return True


def _common_name(cert: x509.Certificate) -> str | None:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    value = names[-1].value if names else None
    return value if isinstance(value, str) else None


def _sans(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    dns = names.get_values_for_type(x509.DNSName)
    ips = [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    return tuple(dns + ips)


def spki_sha256_from_public_pem(data: bytes) -> str:
    """SHA-256 of the SubjectPublicKeyInfo in an `openssl pkey -pubout` PEM; for a key
    cryptography cannot load (SM2, ...), of the block's bytes as they are."""
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ParseError(f"not a public key ({exc})") from None
    except UnsupportedAlgorithm:
        blocks = [block.der for block in pem_blocks(data) if block.label == "PUBLIC KEY"]
        if not blocks:
            raise ParseError("not a public key") from None
        return hashlib.sha256(blocks[0]).hexdigest()
    return _spki_sha256(key)


def spki_sha256_from_private_key(data: bytes) -> str:
    """SHA-256 of the public half of a private key held only in memory, never stored."""
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except TypeError:
        raise ParseError("private key is encrypted") from None
    except ValueError:
        raise ParseError("not a private key") from None
    except UnsupportedAlgorithm as exc:
        raise ParseError(f"private key of an unsupported algorithm ({exc})") from None
    return _spki_sha256(key.public_key())


def _spki_sha256(public_key: object) -> str:
    spki = public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def spki_sha256_from_openssl_output(text: str) -> str:
    """SHA-256 of the SPKI in `openssl pkey -pubout` output, whatever noise stands around it."""
    start = text.find("-----BEGIN PUBLIC KEY-----")
    if start < 0:
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        raise ParseError(f"key unreadable: {first[:200] or 'openssl printed no public key'}")
    return spki_sha256_from_public_pem(text[start:].encode())


@lru_cache(maxsize=65536)
def load_certificate(der: bytes) -> x509.Certificate:
    """The cryptography object for a DER certificate, once per process (rules share it)."""
    try:
        return x509.load_der_x509_certificate(der)
    except MALFORMED as exc:
        raise ParseError(f"malformed certificate ({exc})") from None


# Signature algorithms cryptography may not name (MD2, MD4, an alternate SHA-1 OID): hash by OID.
_SIGNATURE_HASH_BY_OID = {
    "1.2.840.113549.1.1.2": "md2",
    "1.2.840.113549.1.1.3": "md4",
    "1.2.840.113549.1.1.4": "md5",
    "1.2.840.113549.1.1.5": "sha1",
    "1.3.14.3.2.29": "sha1",
    "1.2.840.10040.4.3": "sha1",
    "1.2.840.10045.4.1": "sha1",
}


def signature_hash(der: bytes) -> str | None:
    """Lower-case name of the hash under a certificate's signature (RSA-PSS included); None if none."""
    cert = load_certificate(der)
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return _SIGNATURE_HASH_BY_OID.get(cert.signature_algorithm_oid.dotted_string)
    return algorithm.name.lower() if algorithm is not None else None


@lru_cache(maxsize=4096)
def crl_issuer(der: bytes) -> str:
    """The issuer name of a DER CRL (RFC 4514), to match it with the CA that signs it."""
    try:
        return x509.load_der_x509_crl(der).issuer.rfc4514_string()
    except MALFORMED as exc:
        raise ParseError(f"malformed CRL ({exc})") from None


def crl_pem(der: bytes) -> str:
    """PEM text of a DER CRL (for journals and VECS, which speak PEM)."""
    try:
        return x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM).decode()
    except MALFORMED as exc:
        raise ParseError(f"malformed CRL ({exc})") from None
