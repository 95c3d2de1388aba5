"""Certificates and CRLs cryptography parses but refuses to read a part of, as a hostile node may
plant them: each made by cryptography's builder, then one DER field changed (a certificate's
signature is then wrong, which a parser does not look at; the CRL is signed again)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

_PLACEHOLDER = x509.ObjectIdentifier("1.2.3.4")
_PLACEHOLDER_DER = bytes.fromhex("06032a0304")  # as long as the OIDs put in its place
_BASIC_CONSTRAINTS = bytes.fromhex("0603551d13")
_CRL_NUMBER = bytes.fromhex("0603551d14")
_SHA256_WITH_RSA = bytes.fromhex("300d06092a864886f70d01010b0500")  # AlgorithmIdentifier, NULL parameters


def _certificate(
    name: str, serial: int, *extensions: x509.ExtensionType, key: ec.EllipticCurvePrivateKey | None = None
) -> bytes:
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = x509.CertificateBuilder(
        subject, subject, key.public_key(), serial, now, now + timedelta(days=90)
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


def duplicate_extension(key: ec.EllipticCurvePrivateKey | None = None) -> bytes:
    """basicConstraints twice (RFC 5280 §4.2 forbids it): cryptography's DuplicateExtension. The
    certificate carries `key`'s public half (a new key's when None)."""
    second = x509.UnrecognizedExtension(
        _PLACEHOLDER, x509.BasicConstraints(ca=True, path_length=None).public_bytes()
    )
    der = _certificate(
        "twice.test", 0x1001, x509.BasicConstraints(ca=True, path_length=None), second, key=key
    )
    return der.replace(_PLACEHOLDER_DER, _BASIC_CONSTRAINTS)


def x400_address_name() -> bytes:
    """A subjectAltName of a form cryptography does not know (x400Address): UnsupportedGeneralNameType."""
    der = _certificate("x400.test", 0x1002, x509.SubjectAlternativeName([x509.DNSName("abcd")]))
    return der.replace(b"\x82\x04abcd", b"\xa3\x04abcd")


def negative_serial() -> bytes:
    """Serial -0xdcc (RFC 5280 wants it positive; cryptography reads it with a warning)."""
    return _certificate("negative.test", 0x1234).replace(
        bytes.fromhex("02021234"), bytes.fromhex("0202f234"), 1
    )


def duplicate_crl_extension(issuer: x509.Certificate, key: rsa.RSAPrivateKey) -> bytes:
    """A CRL of `issuer` with crlNumber twice, signed by `key` over the changed contents (it
    verifies): cryptography reading its extensions raises DuplicateExtension."""
    now = datetime.now(UTC)
    builder = x509.CertificateRevocationListBuilder(issuer.subject, now, now + timedelta(days=7))
    builder = builder.add_extension(x509.CRLNumber(5), critical=False)
    builder = builder.add_extension(
        x509.UnrecognizedExtension(_PLACEHOLDER, x509.CRLNumber(6).public_bytes()), False
    )
    tbs = builder.sign(key, hashes.SHA256()).tbs_certlist_bytes.replace(_PLACEHOLDER_DER, _CRL_NUMBER)
    signature = b"\x00" + key.sign(tbs, padding.PKCS1v15(), hashes.SHA256())  # BIT STRING: no unused bits
    return _der(0x30, tbs + _SHA256_WITH_RSA + _der(0x03, signature))


def _der(tag: int, content: bytes) -> bytes:
    if len(content) < 0x80:
        return bytes([tag, len(content)]) + content
    size = len(content).to_bytes((len(content).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content
