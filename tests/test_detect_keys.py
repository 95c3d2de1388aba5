"""Key custody and broken keys: key-reuse, key-mismatch, key-exposed, known-compromised-key."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import gmpy2
from cryptography import x509

from sweeper.detect import Context, detect
from sweeper.incident import Incident
from sweeper.model import KeyInfo, Severity
from sweeper.pki.keys import shared_primes, valid_modulus
from tests.detect_material import (
    Material,
    material_fixture,  # noqa: F401 - the `material` fixture
    node,
    record,
)
from tests.support.openssl_pki import OpenSSLPki


def rules(nodes, *rule_ids: str, incident: Incident | None = None):  # type: ignore[no-untyped-def]
    return detect(nodes, Context(incident=incident or Incident()), rule_ids)


def test_one_identity_key_on_two_nodes_is_reuse_on_both_with_the_other_node_named(
    openssl_pki: OpenSSLPki,
) -> None:
    a = node("a", record("a", openssl_pki.leaf_rsa))
    b = node("b", record("b", openssl_pki.leaf_rsa, store="vecs:MACHINE_SSL_CERT", entry_type="Private Key"))
    found = rules([a, b], "key-reuse")
    assert {(f.node, f.severity) for f in found} == {("a", Severity.HIGH), ("b", Severity.HIGH)}
    by_node = {f.node: f for f in found}
    assert by_node["a"].evidence["other_nodes"] == ["b"] and by_node["a"].evidence["nodes_total"] == 2
    assert by_node["a"].evidence["spki_sha256"] == openssl_pki.leaf_rsa.spki_sha256


def test_shared_cas_trusted_certs_and_copies_on_one_node_are_not_reuse(openssl_pki: OpenSSLPki) -> None:
    trusted = [
        record(n, c, "trust") for n in ("a", "b") for c in (openssl_pki.root, openssl_pki.intermediate)
    ]
    vasa = record("b", openssl_pki.leaf_ec, store="vecs:SMS", entry_type="Trusted Cert")
    a = node(
        "a", record("a", openssl_pki.leaf_ec), record("a", openssl_pki.leaf_ec, store="/other"), *trusted[:2]
    )
    b = node("b", vasa, *trusted[2:])
    assert rules([a, b], "key-reuse") == []


def test_a_key_that_does_not_match_its_certificate_is_reported(openssl_pki: OpenSSLPki) -> None:
    wrong = KeyInfo("/etc/tls/server.key", mode="0600", spki_sha256=openssl_pki.leaf_ec.spki_sha256)
    right = KeyInfo("/etc/tls/server.key", mode="0600", spki_sha256=openssl_pki.leaf_rsa.spki_sha256)
    (found,) = rules([node("n", record("n", openssl_pki.leaf_rsa, key=wrong))], "key-mismatch")
    assert found.evidence["key_spki_sha256"] == openssl_pki.leaf_ec.spki_sha256
    assert rules([node("n", record("n", openssl_pki.leaf_rsa, key=right))], "key-mismatch") == []


def test_a_key_readable_by_group_or_others_is_exposed_and_0600_is_not(openssl_pki: OpenSSLPki) -> None:
    def exposed(mode: str) -> list:
        key = KeyInfo("/etc/tls/server.key", mode=mode, owner="root", group="ssl-cert")
        return rules([node("n", record("n", openssl_pki.leaf_rsa, key=key))], "key-exposed")

    assert [f.evidence["mode"] for f in exposed("0640")] == ["0640"]
    assert len(exposed("0604")) == 1
    assert exposed("0600") == [] and exposed("0400") == []


BADKEYS_CASES = {
    "bk_roca": "roca",
    "bk_fermat-pkcs8": "fermat",
    "bk_smallfactors-valid": "smallfactors",
    "bk_pattern": "pattern",
    "bk_sharedprimes": "sharedprimes",
}


def test_badkeys_test_keys_are_known_compromised_each_by_its_check(material: Material) -> None:
    nodes = [node("n", *(record("n", material[name]) for name in (*BADKEYS_CASES, "bk_ok")))]
    found = rules(nodes, "known-compromised-key")
    checks = {f.entry.rsplit("#", 1)[1]: {c["check"] for c in f.evidence["checks"]} for f in found if f.entry}
    assert set(checks) == set(BADKEYS_CASES)
    for name, check in BADKEYS_CASES.items():
        assert check in checks[name], (name, checks[name])
    assert all(f.severity == Severity.CRITICAL for f in found)
    assert not any(k in json.dumps([f.evidence for f in found]) for k in ('"p"', '"q"', '"d"'))


def test_two_keys_of_the_fleet_that_share_a_prime_are_both_caught(material: Material) -> None:
    nodes = [node("a", record("a", material["shared_0"])), node("b", record("b", material["shared_1"]))]
    found = rules(nodes, "known-compromised-key")
    assert {f.node for f in found} == {"a", "b"}
    for finding in found:
        (check,) = finding.evidence["checks"]
        assert check["check"] == "fleet-sharedprimes" and "spki:" in check["subtest"]


def test_healthy_openssl_keys_are_not_known_compromised(openssl_pki: OpenSSLPki) -> None:
    names = ("root", "intermediate", "leaf_rsa", "leaf_ec", "weak_rsa1024")
    nodes = [node("n", *(record("n", openssl_pki.certs[n]) for n in names))]
    assert rules(nodes, "known-compromised-key") == []


def write_blocklist(path: Path, hashes: list[bytes], list_id: int = 7) -> Path:
    path.write_bytes(b"".join(h + bytes([list_id]) for h in sorted(hashes)))
    (path.parent / "badkeysdata.json").write_text(
        json.dumps({"blocklists": [{"id": list_id, "name": "debianssl"}]})
    )
    return path


def test_a_key_in_a_local_badkeys_blocklist_is_known_compromised(tmp_path: Path, material: Material) -> None:
    weak = material["bk_debianweak"]
    filler = [hashlib.sha256(bytes([i])).digest()[:15] for i in range(50)]
    n = x509.load_der_x509_certificate(weak.der).public_key().public_numbers().n  # badkeys' BKHASH: sha256(n)
    listed = hashlib.sha256(n.to_bytes((n.bit_length() + 7) // 8, "big")).digest()[:15]
    blocklist = write_blocklist(tmp_path / "blocklist.dat", [*filler, listed])
    nodes = [node("n", record("n", weak), record("n", material["bk_ok"]))]
    assert rules(nodes, "known-compromised-key") == [], "without the blocklist badkeys cannot know it"
    for given in (blocklist, tmp_path):  # the file, or the folder badkeys keeps it in
        (found,) = rules(nodes, "known-compromised-key", incident=Incident(badkeys_blocklist=given))
        assert [c["check"] for c in found.evidence["checks"]] == ["blocklist/debianssl"]
        assert found.sha256 == record("n", weak).facts.sha256


def test_only_a_proper_common_factor_of_valid_moduli_is_a_shared_prime() -> None:
    rng = random.Random(5)

    def prime() -> int:
        return int(gmpy2.next_prime(rng.getrandbits(512) | 1 << 511))

    p, q, r, s, t = (prime() for _ in range(5))
    honest, partner, other = p * q, p * r, s * t
    assert shared_primes([honest, partner, other]) == {honest: (partner,), partner: (honest,)}
    multiple = other * prime()  # no small factor: only its gcd with `other` gives it away
    assert shared_primes([other, multiple]) == {}, "a multiple flags neither its victim nor itself"
    masked = shared_primes([honest, partner, honest * prime(), 3 * honest, honest**2])
    assert masked[honest] == (partner,) and honest in masked[partner], "a planted multiple hides no real pair"
    invalid = [2 * other, other**3, 7 * other, 15]
    assert not any(valid_modulus(n) for n in invalid) and valid_modulus(other)
