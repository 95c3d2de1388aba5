"""Secrets at rest: AES-256-GCM under a key derived from a passphrase with scrypt.

The rotation journal keeps private keys (backups of the old ones, the new root's) so that
a crash can be resumed and a rollback can put everything back; they are only ever written
sealed. A wrong passphrase is detected, never silently decrypted to garbage.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

NONCE_BYTES = 12


class VaultError(ValueError):
    """The passphrase is wrong or the sealed data was tampered with."""


def new_salt() -> bytes:
    return os.urandom(16)


def derive_key(passphrase: str, salt: bytes) -> bytes:
    """scrypt (N=2^15, r=8, p=1): ~50 ms, once per journal open."""
    return Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(passphrase.encode())


def seal(key: bytes, plaintext: bytes, context: bytes) -> bytes:
    """Encrypt and authenticate; `context` binds the blob to where it belongs (e.g. node/path)."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, context)


def unseal(key: bytes, blob: bytes, context: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context)
    except (InvalidTag, ValueError):
        raise VaultError("wrong passphrase, or the journal was tampered with") from None


def mac_key(key: bytes) -> bytes:
    """A key for authenticating records, kept apart from the sealing key by its own label."""
    return hmac.new(key, b"sweeper-journal/mac", hashlib.sha256).digest()


def authenticate(key: bytes, message: bytes) -> str:
    """HMAC-SHA256 of `message` (hex): whoever lacks the passphrase cannot forge or alter a record."""
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def authentic(key: bytes, message: bytes, tag: str) -> bool:
    return hmac.compare_digest(authenticate(key, message), tag)
