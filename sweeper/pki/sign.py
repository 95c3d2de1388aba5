"""Detached Ed25519 signatures over a report's exact bytes, so an auditor can prove it was not altered.

Keys are PEM as OpenSSL makes them (`openssl genpkey -algorithm ed25519` for the PKCS#8
private key, `openssl pkey -pubout` for the SubjectPublicKeyInfo public key), and a
signature is the raw 64 bytes, so `openssl pkeyutl -verify -rawin` checks it too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from sweeper.errors import CorruptInput, os_reason

SIGNATURE_SUFFIX = ".sig"


@dataclass(frozen=True, slots=True)
class Signer:
    """An Ed25519 private key loaded once (before a sweep starts); its repr never shows the key."""

    path: Path
    key: ed25519.Ed25519PrivateKey = field(repr=False)

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)


def load_signer(path: Path) -> Signer:
    """Read a PKCS#8 PEM Ed25519 private key; anything else is a one-line CorruptInput."""
    pem = _read(path, "signing key")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise CorruptInput(path, "encrypted private keys are not supported for signing") from None
    except (ValueError, UnsupportedAlgorithm):
        raise CorruptInput(path, "not a PEM private key (expected PKCS#8 Ed25519)") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise CorruptInput(path, f"not an Ed25519 key ({type(key).__name__.removesuffix('PrivateKey')})")
    return Signer(path, key)


def _load_public_key(path: Path) -> ed25519.Ed25519PublicKey:
    """Read a SubjectPublicKeyInfo PEM Ed25519 public key; anything else is a one-line CorruptInput."""
    pem = _read(path, "public key")
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        raise CorruptInput(path, "not a PEM public key (expected SubjectPublicKeyInfo Ed25519)") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise CorruptInput(path, f"not an Ed25519 key ({type(key).__name__.removesuffix('PublicKey')})")
    return key


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of checking one detached signature, with the fingerprint of the key used."""

    valid: bool
    signed: Path
    signature: Path
    key_sha256: str
    data: bytes = field(repr=False)
    """The signed file's bytes as checked: anything read after the check may already differ."""


def verify_file(signed: Path, public: Path, signature: Path | None = None) -> Verdict:
    """Check `signed`'s detached signature (default `<signed>.sig`) against the public key at `public`.

    :raises CorruptInput: a file cannot be read or the key is not an Ed25519 public key.
    """
    key = _load_public_key(public)
    signature = signature or signature_path(signed)
    data = _read(signed, "signed file")
    sig = _read(signature, "signature")
    try:
        key.verify(sig, data)
        valid = True
    except InvalidSignature:
        valid = False
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return Verdict(valid, signed, signature, hashlib.sha256(der).hexdigest(), data)


def signature_path(signed: Path) -> Path:
    """Where the detached signature of `signed` lives: `<name>.sig` beside it."""
    return signed.with_name(signed.name + SIGNATURE_SUFFIX)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CorruptInput(path, f"cannot read {what}: {os_reason(exc)}") from None
