"""untrusted-chain against each node's own anchors, and rogue-root against the expected roots."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sweeper.detect import Context, detect
from sweeper.incident import Incident, load_incident
from sweeper.model import InventoryRef, Report, RunInfo, Severity
from sweeper.report import schema
from tests.detect_material import (
    Material,
    material_fixture,  # noqa: F401 - the `material` fixture
    node,
    record,
)
from tests.support.openssl_pki import OpenSSLPki


def untrusted(*nodes) -> list:  # type: ignore[no-untyped-def]
    return detect(list(nodes), Context(), ("untrusted-chain",))


def test_leaves_chaining_to_their_nodes_anchors_are_trusted(openssl_pki: OpenSSLPki) -> None:
    bundle = [record("n", openssl_pki.root, "trust"), record("n", openssl_pki.intermediate, "trust")]
    leaves = [record("n", c) for c in (openssl_pki.leaf_rsa, openssl_pki.leaf_ec)]
    assert untrusted(node("n", *leaves, *bundle)) == []


def test_the_chain_in_a_leaf_file_supplies_the_intermediate(openssl_pki: OpenSSLPki) -> None:
    leaf = record("n", openssl_pki.leaf_rsa, store="/etc/tls/server.crt", entry="/etc/tls/server.crt")
    chain = record("n", openssl_pki.intermediate, store="/etc/tls/server.crt", entry="/etc/tls/server.crt#2")
    assert untrusted(node("n", leaf, chain, record("n", openssl_pki.root, "trust"))) == []
    (missing,) = untrusted(node("n", leaf, record("n", openssl_pki.root, "trust")))
    assert missing.evidence["issuer_on_node"] is False and missing.evidence["lenient_path"] is None


def test_a_leaf_from_a_ca_the_node_does_not_trust_is_untrusted(
    openssl_pki: OpenSSLPki, material: Material
) -> None:
    bundle = [record("n", openssl_pki.root, "trust"), record("n", openssl_pki.intermediate, "trust")]
    (found,) = untrusted(node("n", record("n", material["other_leaf"]), *bundle))
    assert found.severity == Severity.HIGH and found.evidence["issuer"] == "CN=Other Root CA"
    assert "CN=Sweeper Test Root CA,O=Sweeper Test" in found.evidence["anchors"]


def test_a_leaf_outside_its_roots_name_constraints_is_untrusted(material: Material) -> None:
    anchor = record("n", material["nc_root"], "trust")
    assert untrusted(node("n", record("n", material["nc_good"]), anchor)) == []
    (found,) = untrusted(node("n", record("n", material["nc_evil"]), anchor))
    assert found.evidence["lenient_path"] is not None, "a path exists, but the constraint forbids it"


def test_weak_or_expired_but_otherwise_sound_chains_are_left_to_their_own_rules(
    openssl_pki: OpenSSLPki,
) -> None:
    bundle = [record("n", openssl_pki.root, "trust"), record("n", openssl_pki.intermediate, "trust")]
    leaves = [
        record("n", c) for c in (openssl_pki.sha1_signed, openssl_pki.expired, openssl_pki.weak_rsa1024)
    ]
    assert untrusted(node("n", *leaves, *bundle)) == []


def test_a_node_without_any_trust_store_is_not_judged(material: Material) -> None:
    assert untrusted(node("n", record("n", material["other_leaf"]))) == []


def test_a_leaf_pinned_in_its_own_trust_store_is_trusted(openssl_pki: OpenSSLPki) -> None:
    pinned = [record("n", openssl_pki.leaf_ec), record("n", openssl_pki.leaf_ec, "trust")]
    assert untrusted(node("n", *pinned)) == []


def rogue(nodes, incident: Incident) -> list:  # type: ignore[no-untyped-def]
    return detect(nodes, Context(incident=incident), ("rogue-root",))


def trust_fleet(openssl_pki: OpenSSLPki, material: Material):  # type: ignore[no-untyped-def]
    a = node("a", record("a", openssl_pki.root, "trust"), record("a", openssl_pki.intermediate, "trust"))
    b = node("b", record("b", openssl_pki.root, "trust"), record("b", material["other_root"], "trust"))
    return [a, b]


def test_an_anchor_outside_the_expected_bundle_is_rogue_and_an_issued_intermediate_is_not(
    openssl_pki: OpenSSLPki, material: Material
) -> None:
    incident = load_incident(expected_roots=openssl_pki.root.cert)
    (found,) = rogue(trust_fleet(openssl_pki, material), incident)
    assert (found.rule, found.node, found.severity) == ("rogue-root", "b", Severity.HIGH)
    assert found.evidence["nodes"] == ["b"] and found.evidence["expected_roots"] == str(openssl_pki.root.cert)


def test_a_baseline_reports_trust_certificates_are_the_expected_roots(
    tmp_path: Path, openssl_pki: OpenSSLPki, material: Material
) -> None:
    earlier = node("a", record("a", openssl_pki.root, "trust"), record("a", openssl_pki.leaf_rsa))
    moment = datetime(2026, 1, 2, tzinfo=UTC)
    run = RunInfo("r1", "scan", moment, moment, "0.1.0", InventoryRef("inv.toml", "ef" * 32), ("sweeper",))
    baseline = tmp_path / "before.json"
    baseline.write_bytes(schema.encode(Report(run, (earlier,), ())))
    (found,) = rogue(trust_fleet(openssl_pki, material), load_incident(baseline=baseline))
    assert found.sha256 == record("b", material["other_root"]).facts.sha256


def test_without_expected_roots_nothing_is_rogue(openssl_pki: OpenSSLPki, material: Material) -> None:
    assert rogue(trust_fleet(openssl_pki, material), Incident()) == []
