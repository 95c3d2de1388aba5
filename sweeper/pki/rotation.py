"""The certificate work of a rotation, in bytes in and bytes out, so `rotate/` never touches crypto.

A new root (or an enterprise CA loaded from files), leaves re-issued under it with their old
subject, SANs and key usages, and the checks that go with them (does this key belong to
this certificate; would VMCA accept this chain).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sweeper.errors import CorruptInput
from sweeper.pki.issue import cert_pem, crl_pem, generate_key, key_pem, make_crl, make_root

ROOT_KEY_TYPES = {"rsa3072": "rsa3072", "rsa4096": "rsa4096", "ec-p384": "ec-p384"}
LEAF_BACKDATE = timedelta(days=1)  # ESXi wants notBefore a day in the past


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """A CA we can sign with: its certificate and (in memory only) its private key."""

    cert_pem: bytes
    key_pem: bytes = field(repr=False)
    sha256: str
    subject: str
    key_type: str
    not_after: datetime

    @property
    def is_rsa(self) -> bool:
        return self.key_type == "RSA"


def new_root(
    key_type: str = "rsa3072", common_name: str | None = None, days: int = 3650
) -> CertificateAuthority:
    """A fresh self-signed root for the rotation (RSA 3072 by default, or ECDSA P-384)."""
    if key_type not in ROOT_KEY_TYPES:
        raise ValueError(f"root key type must be one of {', '.join(ROOT_KEY_TYPES)}")
    key = generate_key(ROOT_KEY_TYPES[key_type])
    name = common_name or f"sweeper root {datetime.now(UTC):%Y-%m-%d %H%M%S}"
    cert = make_root(name, key, days=days, organization="sweeper rotation")
    return _authority(cert, key)


def load_authority(
    cert_data: bytes, key_data: bytes, passphrase: str | None, source: str
) -> CertificateAuthority:
    """An existing CA from PEM files; refuses a non-CA or a key that is not the certificate's."""
    try:
        cert = x509.load_pem_x509_certificate(cert_data)
    except ValueError as exc:
        raise CorruptInput(source, f"not a PEM certificate ({exc})") from None
    try:
        key = serialization.load_pem_private_key(key_data, passphrase.encode() if passphrase else None)
    except TypeError:
        raise CorruptInput(source, "the CA key is encrypted: give its passphrase") from None
    except ValueError:
        raise CorruptInput(source, "not a PEM private key, or the wrong passphrase") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CorruptInput(source, "the CA key must be RSA or ECDSA")
    if _spki(key.public_key()) != _spki(cert.public_key()):
        raise CorruptInput(source, "the CA key does not belong to the CA certificate")
    try:
        if not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise CorruptInput(source, "the certificate is not a CA (basicConstraints CA:FALSE)")
    except x509.ExtensionNotFound:
        raise CorruptInput(source, "the certificate is not a CA (no basicConstraints)") from None
    return _authority(cert, key)


def reissue(old_der: bytes, public_key_pem: bytes, ca: CertificateAuthority, days: int = 730) -> bytes:
    """A new leaf (PEM) for `public_key_pem`, signed by `ca`, with the old leaf's subject, SANs,
    key usage and extended key usage: rotation changes who vouches, not what a service is."""
    old = x509.load_der_x509_certificate(old_der)
    issuer = x509.load_pem_x509_certificate(ca.cert_pem)
    issuer_key = serialization.load_pem_private_key(ca.key_pem, None)
    public_key = serialization.load_pem_public_key(public_key_pem)
    now = datetime.now(UTC).replace(microsecond=0)
    not_after = min(now + timedelta(days=days), issuer.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - LEAF_BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()), critical=False
        )
    )
    for kind in (x509.KeyUsage, x509.ExtendedKeyUsage, x509.SubjectAlternativeName):
        try:
            ext = old.extensions.get_extension_for_class(kind)
        except x509.ExtensionNotFound:
            continue
        value = ext.value
        if kind is x509.KeyUsage and not isinstance(public_key, rsa.RSAPublicKey):
            value = _without_key_encipherment(value)
        builder = builder.add_extension(value, critical=ext.critical)
    digest = hashes.SHA256() if isinstance(issuer_key, rsa.RSAPrivateKey) else hashes.SHA384()
    return cert_pem(builder.sign(issuer_key, digest))


def generate_private_key_pem(kind: str) -> bytes:
    """A new private key for a node that has no openssl; it never touches local disk."""
    return key_pem(generate_key(kind))


def public_key_pem_of(private_pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(private_pem, None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def certificate_serial(pem: bytes) -> str:
    """Lower-case hex serial, as reports write it."""
    return format(x509.load_pem_x509_certificate(pem).serial_number, "x")


def revocation_list(ca: CertificateAuthority, serials: list[str], days: int = 30) -> bytes:
    """A CRL (PEM) signed by the rotation CA listing `serials` (hex); its number is the time,
    so a later CRL always supersedes an earlier one."""
    issuer = x509.load_pem_x509_certificate(ca.cert_pem)
    key = serialization.load_pem_private_key(ca.key_pem, None)
    now = datetime.now(UTC).replace(microsecond=0)
    revoked = [(int(serial, 16), now) for serial in sorted(set(serials))]
    crl = make_crl(
        issuer,
        key,
        revoked,
        now,
        now + timedelta(days=days),
        int(now.timestamp()),
        hash="sha256" if ca.is_rsa else "sha384",
    )
    return crl_pem(crl)


def der_to_pem(der: bytes) -> bytes:
    return cert_pem(x509.load_der_x509_certificate(der))


def certificate_sha256(pem_or_der: bytes) -> str:
    if pem_or_der.lstrip().startswith(b"-----"):
        pem_or_der = x509.load_pem_x509_certificate(pem_or_der).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(pem_or_der).hexdigest()


def _authority(
    cert: x509.Certificate, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
) -> CertificateAuthority:
    return CertificateAuthority(
        cert_pem=cert_pem(cert),
        key_pem=key_pem(key),
        sha256=hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
        subject=cert.subject.rfc4514_string(),
        key_type="RSA" if isinstance(key, rsa.RSAPrivateKey) else "EC",
        not_after=cert.not_valid_after_utc,
    )


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _without_key_encipherment(usage: x509.KeyUsage) -> x509.KeyUsage:
    """keyEncipherment means RSA key transport; an EC key cannot honour it."""
    return x509.KeyUsage(
        digital_signature=usage.digital_signature,
        content_commitment=usage.content_commitment,
        key_encipherment=False,
        data_encipherment=usage.data_encipherment,
        key_agreement=usage.key_agreement,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
