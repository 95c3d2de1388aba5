"""A compromised node must not steer what the new root signs or what the purge removes.

Certificates and requests here are made by the openssl CLI, as a hostile node would make them.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from sweeper.model import KeyInfo, Node, NodeResult, Profile, Role, StoreKind, StoreResult
from sweeper.names import policies
from sweeper.pki import rotation
from sweeper.rotate.plan import WaveOptions, make_plan
from sweeper.rotate.steps import Phase, ReissueFile, RemoveAnchors
from sweeper.stores.records import certificate_record

CERT = "/etc/pki/tls/certs/server.crt"
KEY = "/etc/pki/tls/private/server.key"
BUNDLE = "/etc/pki/tls/certs/ca-bundle.crt"


def openssl(*args: str | Path, stdin: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *map(str, args)], input=stdin, capture_output=True, check=True).stdout


def self_made(tmp_path: Path, name: str, subject: str, *extensions: str) -> bytes:
    """What a node with root can write into its own leaf file: anything, signed by itself."""
    key = tmp_path / f"{name}.key"
    args = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-days", "30", "-subj", subject]
    for extension in extensions:
        args += ["-addext", extension]
    return openssl(*args, "-outform", "DER")


def node_holding(leaf: bytes, anchors: list[bytes], name: str = "web1") -> NodeResult:
    key = KeyInfo(path=KEY, mode="0600", spki_sha256="00", matches=True)
    records = [certificate_record(name, CERT, CERT, Role.LEAF, leaf, key=key)]
    records += [
        certificate_record(name, BUNDLE, f"{BUNDLE}#{i}", Role.TRUST, der) for i, der in enumerate(anchors, 1)
    ]
    stores = (
        StoreResult(CERT, StoreKind.PEM, Role.LEAF, certificates=1),
        StoreResult(BUNDLE, StoreKind.BUNDLE, Role.TRUST, certificates=len(anchors)),
    )
    return NodeResult(name, "10.1.2.3", "ok", certificates=tuple(records), stores=stores)


FLEET = (
    Node(name="web1", host="10.1.2.3", names=("web1.corp.example",), profile=Profile.LINUX),
    Node(name="vc01", host="vc01.corp.example", profile=Profile.VCSA),
)


def plan_for(result: NodeResult):  # type: ignore[no-untyped-def]
    nodes = {FLEET[0].name: FLEET[0]}
    return make_plan(nodes, [result], {}, "ff" * 32, WaveOptions(), name_policies=policies(FLEET))


def test_a_leaf_naming_other_hosts_and_asking_for_ca_powers_gets_only_its_approved_names(
    tmp_path: Path, openssl_pki
) -> None:
    leaf = self_made(
        tmp_path,
        "greedy",
        "/CN=vc01.corp.example",
        "subjectAltName=DNS:web1.corp.example,DNS:vc01.corp.example,DNS:*.corp.example,DNS:www.bank.example",
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        "extendedKeyUsage=codeSigning,OCSPSigning,anyExtendedKeyUsage",
    )
    plan = plan_for(node_holding(leaf, [openssl_pki.root.der.read_bytes()]))
    (step,) = [s for s in plan.steps if isinstance(s, ReissueFile)]
    assert step.profile.common_name == "web1.corp.example"
    assert step.profile.names == ("web1.corp.example", "10.1.2.3")
    assert set(step.dropped) == {"vc01.corp.example", "*.corp.example", "www.bank.example"}
    assert "dropped, not allowed: vc01.corp.example" in step.describe()

    ca = rotation.new_root("rsa3072")
    public = openssl("pkey", "-pubout", "-in", tmp_path / "greedy.key")
    issued = rotation.issue_leaf(step.profile, public, ca, 30)
    text = openssl("x509", "-noout", "-text", "-nameopt", "RFC2253", stdin=issued).decode()
    assert "CA:FALSE" in text and "Certificate Sign" not in text and "CRL Sign" not in text
    assert "Code Signing" not in text and "OCSP" not in text and "Any Extended Key Usage" not in text
    assert "X509v3 Extended Key Usage: \n                TLS Web Server Authentication\n" in text
    assert "Digital Signature, Key Encipherment\n" in text
    assert "DNS:web1.corp.example, IP Address:10.1.2.3\n" in text and "vc01" not in text
    assert "Subject: CN=web1.corp.example\n" in text


def test_a_self_made_leaf_naming_a_ca_as_issuer_does_not_put_that_ca_on_the_purge_list(
    tmp_path: Path, openssl_pki
) -> None:
    root = openssl_pki.root.der.read_bytes()
    root_subject = "/O=Sweeper Test/CN=Sweeper Test Intermediate CA"  # the intermediate's name, not its key
    forged = self_made(tmp_path, "forged", root_subject, "basicConstraints=critical,CA:FALSE")
    intermediate = openssl_pki.intermediate.der.read_bytes()
    plan = plan_for(node_holding(forged, [root, intermediate]))
    assert plan.remove == {}, "nothing signed by those CAs is on the node: they are not its old chain"
    assert not [s for s in plan.for_phase(Phase.PURGE) if isinstance(s, RemoveAnchors)]


def csr(tmp_path: Path, key_args: list[str], subject: str) -> bytes:
    key = tmp_path / "k.pem"
    openssl("genpkey", *key_args, "-out", key)
    return openssl("req", "-new", "-key", key, "-subj", subject)


@pytest.mark.parametrize(
    ("key_args", "rsa_only", "refused"),
    [
        (["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], True, None),
        (["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"], False, None),
        (["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"], True, "RSA keys only"),
        (["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"], False, "2048 to 8192"),
        (["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"], False, "not an accepted key type"),
        (["-algorithm", "ED25519"], False, "not an accepted key type"),
    ],
)
def test_the_key_a_node_makes_must_be_proven_and_allowed(
    tmp_path: Path, key_args: list[str], rsa_only: bool, refused: str | None
) -> None:
    request = csr(tmp_path, key_args, "/CN=nonce-1")
    policy = rotation.KeyPolicy(rsa_only=rsa_only)
    if refused is None:
        assert b"BEGIN PUBLIC KEY" in rotation.proven_public_key(request, "nonce-1", policy)
    else:
        with pytest.raises(rotation.KeyRefused, match=refused):
            rotation.proven_public_key(request, "nonce-1", policy)


def test_a_replayed_or_tampered_request_proves_nothing(tmp_path: Path) -> None:
    request = csr(tmp_path, ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], "/CN=nonce-1")
    with pytest.raises(rotation.KeyRefused, match="nonce"):
        rotation.proven_public_key(request, "nonce-2", rotation.KeyPolicy())
    der = bytearray(openssl("req", "-in", "/dev/stdin", "-outform", "DER", stdin=request))
    der[-5] ^= 0x01  # a bit of the signature
    tampered = openssl("req", "-inform", "DER", "-in", "/dev/stdin", stdin=bytes(der))
    with pytest.raises(rotation.KeyRefused, match="signature"):
        rotation.proven_public_key(tampered, "nonce-1", rotation.KeyPolicy())
    with pytest.raises(rotation.KeyRefused, match="not a certificate request"):
        rotation.proven_public_key(
            b"-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n", "n", rotation.KeyPolicy()
        )


def test_rollback_refuses_a_backup_no_step_of_the_plan_names(tmp_path: Path, openssl_pki) -> None:
    from sweeper.rotate.journal import Journal, JournalError
    from sweeper.rotate.rollback import refuse_unplanned
    from sweeper.rotate.steps import StepContext

    node = FLEET[0]
    plan = plan_for(node_holding(openssl_pki.leaf_rsa.der.read_bytes(), [openssl_pki.root.der.read_bytes()]))
    journal = Journal.create(tmp_path / "j", "pass", {})
    ctx = StepContext(ca=rotation.new_root("ec-p384"), sso_password=lambda n: "", journal=journal, plan=plan)
    asyncio.run(journal.backup(node.name, "file", CERT, existed=True, content=b"old"))
    refuse_unplanned(ctx, [node])  # what a step backs up is fine
    asyncio.run(
        journal.backup(
            node.name, "file", "/root/.ssh/authorized_keys", existed=True, content=b"ssh-ed25519 AAAA"
        )
    )
    with pytest.raises(JournalError, match="authorized_keys"):
        refuse_unplanned(ctx, [node])
    journal.close()
