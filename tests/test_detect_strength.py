"""weak-key and weak-signature on openssl-made certificates and real vectors from cryptography-vectors."""

from __future__ import annotations

from pathlib import Path

import cryptography_vectors
import pytest

from sweeper.detect import Context, detect
from sweeper.pki.parse import split_certificates
from sweeper.stores.records import certificate_record
from tests.detect_material import (
    Material,
    material_fixture,  # noqa: F401 - the `material` fixture
    node,
    record,
)
from tests.support.openssl_pki import OpenSSLPki

VECTORS = Path(cryptography_vectors.__file__).parent / "x509"


def hits(*records) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    found = detect([node("n", *records)], Context(), ("weak-key", "weak-signature"))
    return {(f.rule, f.entry.rsplit("#", 1)[-1]) for f in found if f.entry}


def vector(relative: str):  # type: ignore[no-untyped-def]
    (der,) = split_certificates((VECTORS / relative).read_bytes())
    return certificate_record("n", "/vectors", f"/vectors#{relative}", "trust", der)


def test_openssl_weak_material_is_flagged_and_healthy_material_is_not(
    openssl_pki: OpenSSLPki, material: Material
) -> None:
    names = ("root", "intermediate", "leaf_rsa", "leaf_ec", "weak_rsa1024", "sha1_signed")
    records = [record("n", openssl_pki.certs[n]) for n in names]
    records += [record("n", material[n]) for n in ("md5_leaf", "p224_leaf", "other_root")]
    assert hits(*records) == {
        ("weak-key", "weak_rsa1024"),
        ("weak-signature", "sha1_signed"),
        ("weak-signature", "md5_leaf"),
        ("weak-key", "p224_leaf"),
    }


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        # RSA-PSS with SHA-1 under the signature: weak, whatever the algorithm OID says.
        ("ee-pss-sha1-cert.pem", {("weak-signature", "ee-pss-sha1-cert.pem")}),
        # A self-signed DSA CA: the key is weak; its own SHA-1 self-signature is exempt.
        ("custom/dsa_selfsigned_ca.pem", {("weak-key", "custom/dsa_selfsigned_ca.pem")}),
        # VeriSign's MD2 root: its MD2 self-signature is exempt, its 1024-bit key is not.
        ("verisign_md2_root.pem", {("weak-key", "verisign_md2_root.pem")}),
        # A modern ECDSA root.
        ("ecdsa_root.pem", set()),
    ],
)
def test_real_certificates_from_cryptography_vectors(relative: str, expected: set) -> None:
    assert hits(vector(relative)) == expected


def test_the_finding_names_the_hash_and_the_issuer(openssl_pki: OpenSSLPki) -> None:
    (found,) = detect([node("n", record("n", openssl_pki.sha1_signed))], Context(), ("weak-signature",))
    assert found.evidence["hash"] == "sha1" and "Intermediate" in found.evidence["issuer"]
