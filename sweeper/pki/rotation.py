"""The certificate work of a rotation, in bytes in and bytes out, so `rotate/` never touches crypto.

A new root (or an enterprise CA loaded from files), leaves issued under it with one fixed
profile and the names the plan approved, and the checks that go with them (does the node
hold the key it asks us to sign; would VMCA accept this chain).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sweeper.errors import CorruptInput
from sweeper.pki.issue import (
    cert_pem,
    crl_pem,
    general_name,
    generate_key,
    key_pem,
    key_usage,
    make_crl,
    make_root,
)
from sweeper.pki.parse import MALFORMED
from sweeper.pki.spki import public_key_of

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
    signing_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = field(repr=False, compare=False)
    """`key_pem` loaded once: a load checks an RSA key (~100 ms at 3072 bits), too slow per signature."""

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
    except UnsupportedAlgorithm:
        key = None  # SM2 and the like: refused below with the others
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CorruptInput(source, "the CA key must be RSA or ECDSA")
    certified = public_key_of(cert)
    if certified is None or _spki(key.public_key()) != _spki(certified):
        raise CorruptInput(source, "the CA key does not belong to the CA certificate")
    try:
        if not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise CorruptInput(source, "the certificate is not a CA (basicConstraints CA:FALSE)")
    except x509.ExtensionNotFound:
        raise CorruptInput(source, "the certificate is not a CA (no basicConstraints)") from None
    except MALFORMED as exc:
        raise CorruptInput(source, f"the CA certificate's extensions are malformed ({exc})") from None
    return _authority(cert, key)


@dataclass(frozen=True, slots=True)
class LeafProfile:
    """Everything a re-issued leaf says, decided by the plan from approved names only."""

    common_name: str
    names: tuple[str, ...]
    """DNS names and IP addresses for the subjectAltName, all approved for the node."""
    client_auth: bool = False
    data_encipherment: bool = False
    """KU keyEncipherment + dataEncipherment (vCenter's data-encipherment entry, RSA only)."""


def issue_leaf(
    profile: LeafProfile, public_key_pem: bytes, ca: CertificateAuthority, days: int = 730
) -> bytes:
    """A new leaf (PEM) for `public_key_pem`, signed by `ca`, with the one fixed end-entity profile:
    CA:FALSE, digitalSignature (+keyEncipherment for RSA), serverAuth (+clientAuth), the approved
    names. Nothing of the old certificate is copied: a node cannot ask for more than its role."""
    issuer = x509.load_pem_x509_certificate(ca.cert_pem)
    issuer_key = ca.signing_key
    public_key = serialization.load_pem_public_key(public_key_pem)
    is_rsa = isinstance(public_key, rsa.RSAPublicKey)
    now = datetime.now(UTC).replace(microsecond=0)
    not_after = min(now + timedelta(days=days), issuer.not_valid_after_utc)
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if profile.client_auth else []
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, profile.common_name)]))
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - LEAF_BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            key_usage(key_encipherment=is_rsa, data_encipherment=is_rsa and profile.data_encipherment),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName([general_name(n) for n in profile.names]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()), critical=False
        )
    )
    digest = hashes.SHA256() if isinstance(issuer_key, rsa.RSAPrivateKey) else hashes.SHA384()
    return cert_pem(builder.sign(issuer_key, digest))


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """Which keys a node may present for signing: RSA 2048-8192 always, EC P-256/P-384 unless RSA-only."""

    rsa_only: bool = False


class KeyRefused(ValueError):
    """A node's new key failed proof of possession or the key policy: nothing is signed for it."""


def proven_public_key(csr_pem: bytes, nonce: str, policy: KeyPolicy) -> bytes:
    """The public key of a CSR the node made with its new key for this attempt (`CN=<nonce>`).

    The CSR's signature proves the node holds the key; the nonce proves it was made now.

    :raises KeyRefused: not a CSR, a bad signature, another nonce, or a key the policy refuses
    """
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise KeyRefused(f"the node's answer is not a certificate request ({exc})") from None
    if not csr.is_signature_valid:
        raise KeyRefused("the request's signature does not verify: no proof the node holds the key")
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if [n.value for n in names] != [nonce]:
        raise KeyRefused("the request is not the one asked for now (wrong nonce)")
    try:
        key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyRefused(f"the request's key cannot be read ({exc})") from None
    if isinstance(key, rsa.RSAPublicKey):
        if not 2048 <= key.key_size <= 8192:
            raise KeyRefused(f"RSA-{key.key_size}: keys must be RSA 2048 to 8192 bits")
    elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in ("secp256r1", "secp384r1"):
        if policy.rsa_only:
            raise KeyRefused(f"EC {key.curve.name}: this platform takes RSA keys only")
    else:
        raise KeyRefused(f"{type(key).__name__.removeprefix('_')}: not an accepted key type")
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


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
    key = ca.signing_key
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
        signing_key=key,
    )


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
