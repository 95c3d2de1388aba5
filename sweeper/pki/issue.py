"""Make keys, CA and leaf certificates and CRLs: the one place sweeper mints X.509 material.

The lab builds its fleet with these functions and the rotation engine reuses them for a
new root and for re-issued leaves, so they stay general: pure functions over
cryptography objects, no files, no global state.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Certificate = x509.Certificate
CRL = x509.CertificateRevocationList
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
HashName = Literal["sha256", "sha384", "sha512", "sha1", "md5"]

KEY_KINDS = ("rsa1024", "rsa2048", "rsa3072", "rsa4096", "ec-p256", "ec-p384")

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_LEGACY: dict[str, type[hashes.HashAlgorithm]] = {"sha1": hashes.SHA1, "md5": hashes.MD5}
# DER AlgorithmIdentifiers: (key family, hash) -> signatureAlgorithm.
_ALGIDS = {
    ("rsa", "sha256"): bytes.fromhex("300d06092a864886f70d01010b0500"),
    ("rsa", "sha1"): bytes.fromhex("300d06092a864886f70d0101050500"),
    ("rsa", "md5"): bytes.fromhex("300d06092a864886f70d0101040500"),
    ("ec", "sha256"): bytes.fromhex("300a06082a8648ce3d040302"),
    ("ec", "sha1"): bytes.fromhex("300906072a8648ce3d0401"),
    ("ec", "md5"): b"",  # no such algorithm
}


@dataclass(frozen=True, slots=True)
class Revoked:
    """One CRL entry: which serial, and since when."""

    serial: int
    revocation_date: datetime


def generate_key(kind: str = "rsa2048") -> PrivateKey:
    """Generate a private key; rsa1024 exists only so the lab can plant a weak key.

    :raises ValueError: for a kind not in KEY_KINDS
    """
    if kind.startswith("rsa") and kind in KEY_KINDS:
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    if kind == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    raise ValueError(f"unknown key kind {kind!r}; expected one of {', '.join(KEY_KINDS)}")


def make_root(
    common_name: str,
    key: PrivateKey,
    days: int = 3650,
    not_before: datetime | None = None,
    organization: str | None = None,
    hash: HashName = "sha256",
) -> x509.Certificate:
    """Self-sign a root CA: CA:TRUE critical, keyCertSign+cRLSign, SKI."""
    start = not_before or _now()
    name = _name(common_name, organization)
    builder = (
        _base(name, name, key.public_key(), start, start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(key_usage(certificate_authority=True), critical=True)
    )
    return _sign(builder, key, hash)


def make_intermediate(
    issuer_cert: x509.Certificate,
    issuer_key: PrivateKey,
    common_name: str,
    key_public: PublicKey,
    days: int = 1825,
    not_before: datetime | None = None,
    organization: str | None = None,
    path_length: int | None = 0,
    hash: HashName = "sha256",
) -> x509.Certificate:
    """Issue a subordinate CA under issuer_cert (pathlen 0 by default: it signs leaves only)."""
    start = not_before or _now()
    builder = (
        _base(
            _name(common_name, organization),
            issuer_cert.subject,
            key_public,
            start,
            start + timedelta(days=days),
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(key_usage(certificate_authority=True), critical=True)
        .add_extension(_aki(issuer_cert), critical=False)
    )
    return _sign(builder, issuer_key, hash)


def issue_leaf(
    issuer_cert: x509.Certificate,
    issuer_key: PrivateKey,
    subject_cn: str,
    sans: Sequence[str],
    key_public: PublicKey,
    not_before: datetime,
    not_after: datetime,
    hash: HashName = "sha256",
    organization: str | None = None,
) -> x509.Certificate:
    """Issue a TLS server/client leaf; SANs are IP addresses or DNS names (``IP:``/``DNS:`` ok)."""
    return _leaf(
        issuer_cert,
        issuer_key,
        _name(subject_cn, organization),
        x509.SubjectAlternativeName([general_name(s) for s in sans]),
        key_public,
        not_before,
        not_after,
        hash,
    )


def forge_leaf(
    key: PrivateKey,
    subject_cn: str,
    sans: Sequence[str],
    not_before: datetime,
    not_after: datetime,
    issuer: x509.Name | None = None,
    greedy: bool = False,
) -> x509.Certificate:
    """What a node with root can write as its own certificate: signed by its own key, naming any
    issuer (none: itself) and any names, and with `greedy` every usage a CA or a code signer has.
    Only the lab's hostile nodes make these."""
    subject = _name(subject_cn, None)
    usage = key_usage(certificate_authority=True) if greedy else key_usage()
    purposes = [ExtendedKeyUsageOID.SERVER_AUTH]
    if greedy:
        purposes += [
            ExtendedKeyUsageOID.CODE_SIGNING,
            ExtendedKeyUsageOID.OCSP_SIGNING,
            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
        ]
    builder = (
        _base(subject, issuer or subject, key.public_key(), not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage(purposes), critical=False)
        .add_extension(x509.SubjectAlternativeName([general_name(s) for s in sans]), critical=False)
    )
    return _sign(builder, key, "sha256")


def reissue_leaf(
    old: x509.Certificate,
    issuer_cert: x509.Certificate,
    issuer_key: PrivateKey,
    key_public: PublicKey,
    not_before: datetime,
    not_after: datetime,
    hash: HashName = "sha256",
) -> x509.Certificate:
    """Re-issue a leaf under a new issuer and key, keeping its exact subject and SANs.

    Rotation must not change what a service is called, only who vouches for it.
    """
    try:
        sans = old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = None
    return _leaf(issuer_cert, issuer_key, old.subject, sans, key_public, not_before, not_after, hash)


def make_crl(
    issuer_cert: x509.Certificate,
    issuer_key: PrivateKey,
    revoked: Sequence[Revoked | tuple[int, datetime]],
    last_update: datetime,
    next_update: datetime,
    crl_number: int,
    hash: HashName = "sha256",
) -> x509.CertificateRevocationList:
    """Sign a v2 CRL (CRL number, AKI) listing the given serials."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer_cert.subject)
        .last_update(last_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(crl_number), critical=False)
        .add_extension(_aki(issuer_cert), critical=False)
    )
    for entry in revoked:
        serial, when = (entry.serial, entry.revocation_date) if isinstance(entry, Revoked) else entry
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    if hash not in _HASHES:
        raise ValueError(f"CRLs are not signed with {hash} here")
    return builder.sign(issuer_key, _HASHES[hash]())


def cert_pem(cert: x509.Certificate) -> bytes:
    """PEM of one certificate."""
    return cert.public_bytes(serialization.Encoding.PEM)


def cert_der(cert: x509.Certificate) -> bytes:
    """DER of one certificate."""
    return cert.public_bytes(serialization.Encoding.DER)


def key_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM: only for lab material written 0600, never for real keys."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_key_pem(data: bytes, trusted: bool = False) -> PrivateKey:
    """Load a PEM private key; ``trusted`` skips the slow RSA self-check for keys we made.

    :raises ValueError: if the data is not an RSA or EC private key
    """
    key = serialization.load_pem_private_key(data, password=None, unsafe_skip_rsa_key_validation=trusted)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"unsupported private key type {type(key).__name__}")
    return key


def crl_pem(crl: x509.CertificateRevocationList) -> bytes:
    """PEM of a CRL."""
    return crl.public_bytes(serialization.Encoding.PEM)


def crl_der(crl: x509.CertificateRevocationList) -> bytes:
    """DER of a CRL."""
    return crl.public_bytes(serialization.Encoding.DER)


def fingerprint(cert: x509.Certificate, algorithm: Literal["sha256", "sha1"] = "sha256") -> str:
    """Lower-case hex fingerprint of the DER certificate (sha1 is VECS's alias scheme)."""
    return hashlib.new(algorithm, cert_der(cert)).hexdigest()


def subject_key_id(cert: x509.Certificate) -> str | None:
    """Lower-case hex Subject Key Identifier, if the certificate has one (VMware Directory
    names trusted roots by it)."""
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    return ski.digest.hex()


def spki_sha256(cert: x509.Certificate) -> str:
    """Lower-case hex SHA-256 of the SubjectPublicKeyInfo: identifies a key across certs."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _name(common_name: str, organization: str | None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _base(
    subject: x509.Name,
    issuer: x509.Name,
    key_public: PublicKey,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key_public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key_public), critical=False)
    )


def _leaf(
    issuer_cert: x509.Certificate,
    issuer_key: PrivateKey,
    subject: x509.Name,
    sans: x509.SubjectAlternativeName | None,
    key_public: PublicKey,
    not_before: datetime,
    not_after: datetime,
    hash: HashName,
) -> x509.Certificate:
    # keyEncipherment only means something for RSA key transport.
    rsa_key = isinstance(key_public, rsa.RSAPublicKey)
    builder = (
        _base(subject, issuer_cert.subject, key_public, not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            key_usage(key_encipherment=rsa_key),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(_aki(issuer_cert), critical=False)
    )
    if sans is not None:
        builder = builder.add_extension(sans, critical=False)
    return _sign(builder, issuer_key, hash)


def key_usage(
    *, key_encipherment: bool = False, certificate_authority: bool = False, data_encipherment: bool = False
) -> x509.KeyUsage:
    """digitalSignature, plus keyEncipherment (RSA key transport) or keyCertSign + cRLSign (a CA);
    dataEncipherment for vCenter's data-encipherment entry (it encrypts stored passwords)."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=data_encipherment,
        key_agreement=False,
        key_cert_sign=certificate_authority,
        crl_sign=certificate_authority,
        encipher_only=False,
        decipher_only=False,
    )


def _aki(issuer_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key())


def general_name(san: str) -> x509.GeneralName:
    """A subjectAltName entry: an IP address or a DNS name (an `IP:` or `DNS:` prefix is honoured)."""
    kind, _, value = san.partition(":")
    if kind.upper() == "DNS" and value:
        return x509.DNSName(value)
    if kind.upper() == "IP" and value:
        return x509.IPAddress(ipaddress.ip_address(value))
    try:
        return x509.IPAddress(ipaddress.ip_address(san))
    except ValueError:
        return x509.DNSName(san)


def _sign(builder: x509.CertificateBuilder, key: PrivateKey, hash: HashName) -> x509.Certificate:
    if hash in _LEGACY:
        return _sign_legacy(builder, key, hash)
    if hash not in _HASHES:
        raise ValueError(f"unknown hash {hash!r}")
    return builder.sign(key, _HASHES[hash]())


def _sign_legacy(builder: x509.CertificateBuilder, key: PrivateKey, hash: HashName) -> x509.Certificate:
    """Sign with SHA-1 or MD5, which cryptography no longer does for certificates.

    The lab needs such certificates to prove the weak-signature rule fires: a SHA-256
    certificate is built, its TBS gets the legacy algorithm identifier, and the TBS is
    signed again with the legacy digest.
    """
    family = "rsa" if isinstance(key, rsa.RSAPrivateKey) else "ec"
    new_algid = _ALGIDS[(family, hash)]
    if not new_algid:
        raise ValueError(f"no {hash} signature algorithm for {family} keys")
    old_algid = _ALGIDS[(family, "sha256")]
    tbs_body = _der_content(builder.sign(key, hashes.SHA256()).tbs_certificate_bytes)
    if tbs_body.count(old_algid) != 1:
        raise ValueError("cannot locate the signature algorithm in the TBS certificate")
    tbs = _der(0x30, tbs_body.replace(old_algid, new_algid))
    digest = _LEGACY[hash]()
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(tbs, padding.PKCS1v15(), digest)
    else:
        signature = key.sign(tbs, ec.ECDSA(digest))
    body = tbs + new_algid + _der(0x03, b"\x00" + signature)
    return x509.load_der_x509_certificate(_der(0x30, body))


def _der(tag: int, content: bytes) -> bytes:
    """Encode one DER TLV (definite length)."""
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    length = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def _der_content(tlv: bytes) -> bytes:
    """The content octets of one DER TLV."""
    first = tlv[1]
    if first < 0x80:
        return tlv[2 : 2 + first]
    size = first & 0x7F
    length = int.from_bytes(tlv[2 : 2 + size], "big")
    return tlv[2 + size : 2 + size + length]
