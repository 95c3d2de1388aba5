"""sweeper.pki.issue makes material that the openssl CLI (not only cryptography) accepts."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from sweeper.errors import CorruptInput
from sweeper.pki import issue, rotation
from tests.support import odd_certs

NOW = datetime.now(UTC).replace(microsecond=0)


def openssl(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], input=input, capture_output=True)


def text(path: Path) -> str:
    return openssl("x509", "-in", str(path), "-noout", "-text").stdout.decode()


@dataclass(frozen=True)
class Chain:
    dir: Path
    root: Path
    intermediate: Path
    leaf: Path
    leaf_cert: issue.Certificate
    inter_cert: issue.Certificate
    inter_key: issue.PrivateKey
    root_cert: issue.Certificate
    root_key: issue.PrivateKey

    def write(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        return path


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    """RSA root -> EC intermediate -> EC leaf, written as PEM files."""
    d = tmp_path_factory.mktemp("pki")
    root_key = issue.generate_key("rsa2048")
    root = issue.make_root("Test Root CA", root_key, organization="Test Org")
    inter_key = issue.generate_key("ec-p384")
    inter = issue.make_intermediate(root, root_key, "Test Issuing CA", inter_key.public_key())
    leaf = issue.issue_leaf(
        inter,
        inter_key,
        "web.test",
        ["web.test", "IP:127.0.0.1", "DNS:alt.test"],
        issue.generate_key("ec-p256").public_key(),
        NOW - timedelta(days=1),
        NOW + timedelta(days=30),
    )
    paths = {}
    for name, cert in (("root", root), ("inter", inter), ("leaf", leaf)):
        paths[name] = d / f"{name}.pem"
        paths[name].write_bytes(issue.cert_pem(cert))
    return Chain(d, paths["root"], paths["inter"], paths["leaf"], leaf, inter, inter_key, root, root_key)


def test_root_is_a_self_signed_ca_with_cert_and_crl_signing(chain: Chain) -> None:
    assert openssl("verify", "-CAfile", str(chain.root), str(chain.root)).returncode == 0
    dump = text(chain.root)
    assert "X509v3 Basic Constraints: critical\n                CA:TRUE" in dump
    assert "Certificate Sign, CRL Sign" in dump
    assert "X509v3 Subject Key Identifier" in dump


def test_leaf_chains_through_intermediate_for_server_and_client_use(chain: Chain) -> None:
    for purpose in ("sslserver", "sslclient"):
        result = openssl(
            "verify",
            "-purpose",
            purpose,
            "-CAfile",
            str(chain.root),
            "-untrusted",
            str(chain.intermediate),
            str(chain.leaf),
        )
        assert result.returncode == 0, result.stderr


def test_leaf_carries_sans_key_usage_and_key_ids(chain: Chain) -> None:
    dump = text(chain.leaf)
    assert "DNS:web.test, IP Address:127.0.0.1, DNS:alt.test" in dump
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in dump
    assert "CA:FALSE" in dump
    assert "Digital Signature" in dump
    inter_ski = issue.subject_key_id(chain.inter_cert)
    assert inter_ski and ":".join(inter_ski[i : i + 2] for i in range(0, 40, 2)).upper() in dump


def test_rsa_leaf_may_encipher_keys(chain: Chain) -> None:
    leaf = issue.issue_leaf(
        chain.root_cert,
        chain.root_key,
        "rsa.test",
        ["rsa.test"],
        issue.generate_key("rsa2048").public_key(),
        NOW,
        NOW + timedelta(days=1),
    )
    assert "Digital Signature, Key Encipherment" in text(chain.write("rsa.pem", issue.cert_pem(leaf)))


def test_crl_verifies_against_its_issuer_and_revokes_the_serial(chain: Chain) -> None:
    crl = issue.make_crl(
        chain.inter_cert,
        chain.inter_key,
        [(chain.leaf_cert.serial_number, NOW - timedelta(hours=1))],
        NOW - timedelta(hours=2),
        NOW + timedelta(days=7),
        crl_number=5,
    )
    pem = chain.write("crl.pem", issue.crl_pem(crl))
    der = chain.write("crl.der", issue.crl_der(crl))
    checked = openssl("crl", "-in", str(pem), "-CAfile", str(chain.intermediate), "-noout")
    assert b"verify OK" in checked.stdout + checked.stderr
    listing = openssl("crl", "-in", str(der), "-inform", "DER", "-noout", "-text").stdout.decode()
    serial = f"{chain.leaf_cert.serial_number:X}"
    assert f"Serial Number: {serial.zfill(len(serial) + len(serial) % 2)}" in listing
    assert "X509v3 CRL Number: \n                5" in listing
    both = chain.write("both.pem", chain.root.read_bytes() + chain.intermediate.read_bytes())
    verdict = openssl("verify", "-crl_check", "-CAfile", str(both), "-CRLfile", str(pem), str(chain.leaf))
    assert verdict.returncode != 0
    assert b"certificate revoked" in verdict.stdout + verdict.stderr


def test_crl_from_another_issuer_does_not_verify(chain: Chain) -> None:
    crl = issue.make_crl(chain.inter_cert, chain.inter_key, [], NOW, NOW + timedelta(days=1), 1)
    pem = chain.write("crl-other.pem", issue.crl_pem(crl))
    checked = openssl("crl", "-in", str(pem), "-CAfile", str(chain.root), "-noout")
    assert b"verify OK" not in checked.stdout + checked.stderr


@pytest.mark.parametrize(
    ("issuer_kind", "hash", "algorithm"),
    [
        ("rsa2048", "sha1", "sha1WithRSAEncryption"),
        ("rsa2048", "md5", "md5WithRSAEncryption"),
        ("ec-p256", "sha1", "ecdsa-with-SHA1"),
        ("ec-p384", "sha384", "ecdsa-with-SHA384"),
    ],
)
def test_legacy_and_strong_signatures_are_what_they_claim(
    tmp_path: Path, issuer_kind: str, hash: issue.HashName, algorithm: str
) -> None:
    key = issue.generate_key(issuer_kind)
    root = issue.make_root("Sig Root", key)
    leaf = issue.issue_leaf(
        root, key, "sig.test", ["sig.test"], key.public_key(), NOW, NOW + timedelta(days=1), hash
    )
    (tmp_path / "root.pem").write_bytes(issue.cert_pem(root))
    (tmp_path / "leaf.pem").write_bytes(issue.cert_pem(leaf))
    assert f"Signature Algorithm: {algorithm}" in text(tmp_path / "leaf.pem")
    verdict = openssl(
        "verify", "-auth_level", "0", "-CAfile", str(tmp_path / "root.pem"), str(tmp_path / "leaf.pem")
    )
    assert verdict.returncode == 0, verdict.stderr


def test_md5_needs_an_rsa_issuer() -> None:
    key = issue.generate_key("ec-p256")
    root = issue.make_root("EC Root", key)
    with pytest.raises(ValueError):
        issue.issue_leaf(root, key, "x", ["x"], key.public_key(), NOW, NOW, hash="md5")


def test_weak_key_is_rsa_1024(tmp_path: Path) -> None:
    path = tmp_path / "weak.key"
    path.write_bytes(issue.key_pem(issue.generate_key("rsa1024")))
    assert "Private-Key: (1024 bit" in openssl("pkey", "-in", str(path), "-noout", "-text").stdout.decode()


def test_unknown_key_kind_is_refused() -> None:
    with pytest.raises(ValueError):
        issue.generate_key("dsa1024")


def test_private_key_pem_is_unencrypted_pkcs8_and_round_trips(tmp_path: Path) -> None:
    key = issue.generate_key("ec-p256")
    pem = issue.key_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    path = tmp_path / "k.pem"
    path.write_bytes(pem)
    assert openssl("pkey", "-in", str(path), "-noout").returncode == 0
    assert issue.load_key_pem(pem).public_key() == key.public_key()


def test_reissue_keeps_subject_and_sans_under_a_new_issuer(chain: Chain) -> None:
    new_key = issue.generate_key("rsa3072")
    new_root = issue.make_root("New Root", new_key)
    again = issue.reissue_leaf(
        chain.leaf_cert,
        new_root,
        new_key,
        issue.generate_key("ec-p256").public_key(),
        NOW,
        NOW + timedelta(days=90),
    )
    assert again.subject == chain.leaf_cert.subject
    old_dump, new_dump = text(chain.leaf), text(chain.write("again.pem", issue.cert_pem(again)))
    assert "DNS:web.test, IP Address:127.0.0.1, DNS:alt.test" in new_dump
    assert again.serial_number != chain.leaf_cert.serial_number
    assert old_dump != new_dump
    root = chain.write("new-root.pem", issue.cert_pem(new_root))
    assert openssl("verify", "-CAfile", str(root), str(chain.dir / "again.pem")).returncode == 0


def test_fingerprints_match_openssl(chain: Chain) -> None:
    for algorithm in ("sha256", "sha1"):
        out = openssl("x509", "-in", str(chain.leaf), "-noout", "-fingerprint", f"-{algorithm}")
        expected = out.stdout.decode().split("=")[1].strip().replace(":", "").lower()
        assert issue.fingerprint(chain.leaf_cert, algorithm) == expected
    pub = openssl("x509", "-in", str(chain.leaf), "-noout", "-pubkey").stdout
    spki = openssl("pkey", "-pubin", "-outform", "DER", input=pub).stdout
    assert issue.spki_sha256(chain.leaf_cert) == hashlib.sha256(spki).hexdigest()


def test_a_rotation_ca_signs_with_the_key_it_loaded_once(tmp_path: Path) -> None:
    """Loading checks an RSA key (~100 ms at 3072 bits): leaves and CRLs are signed with the key
    object loaded with the CA, never by parsing its PEM again (here emptied), and openssl agrees."""
    loaded = rotation.new_root("rsa3072")
    ca = dataclasses.replace(loaded, key_pem=b"")
    leaf_key = issue.generate_key("ec-p256")
    public = leaf_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    leaf = rotation.issue_leaf(rotation.LeafProfile("web.test", ("web.test",)), public, ca, 30)
    crl = rotation.revocation_list(ca, ["1f"])
    (tmp_path / "root.pem").write_bytes(ca.cert_pem)
    (tmp_path / "leaf.pem").write_bytes(leaf)
    (tmp_path / "crl.pem").write_bytes(crl)
    verify = ["openssl", "verify", "-CAfile", tmp_path / "root.pem", tmp_path / "leaf.pem"]
    assert subprocess.run(verify, capture_output=True, check=False).returncode == 0
    checked = ["openssl", "crl", "-in", tmp_path / "crl.pem", "-CAfile", tmp_path / "root.pem", "-noout"]
    assert b"verify OK" in subprocess.run(checked, capture_output=True, check=False).stderr


def test_an_enterprise_ca_of_a_key_type_cryptography_cannot_load_is_one_line_of_bad_input(
    tmp_path: Path,
) -> None:
    """An SM2 CA (`--ca-cert/--ca-key`) raised UnsupportedAlgorithm, a CA certificate with an
    extension twice DuplicateExtension: both ended in a traceback instead of exit 2."""
    sm2_key, sm2_cert = tmp_path / "sm2.key", tmp_path / "sm2.pem"
    openssl_cli = ("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2", "-out")
    subprocess.run([*openssl_cli, sm2_key], check=True, capture_output=True)
    subject = ("-subj", "/CN=SM2 CA", "-addext", "basicConstraints=critical,CA:TRUE", "-days", "30")
    subprocess.run(["openssl", "req", "-x509", "-key", sm2_key, *subject, "-out", sm2_cert], check=True)
    with pytest.raises(CorruptInput, match="the CA key must be RSA or ECDSA"):
        rotation.load_authority(sm2_cert.read_bytes(), sm2_key.read_bytes(), None, "sm2.pem")

    key = issue.generate_key("ec-p256")
    twice = rotation.der_to_pem(odd_certs.duplicate_extension(key))
    with pytest.raises(CorruptInput, match="extensions are malformed"):
        rotation.load_authority(twice, issue.key_pem(key), None, "twice.pem")
