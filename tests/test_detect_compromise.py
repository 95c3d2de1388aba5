"""compromised-issuer, ioc-match and revoked-present across a fleet."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from sweeper.detect import Context, detect
from sweeper.incident import Incident, load_incident
from sweeper.model import Severity
from tests.detect_material import (
    Material,
    Minted,
    _Minter,
    crl_record,
    material_fixture,  # noqa: F401 - the `material` fixture
    node,
    record,
)
from tests.support.openssl_pki import OpenSSLPki


def fleet(pki: OpenSSLPki, material: Material):  # type: ignore[no-untyped-def]
    """a holds the intermediate only in its trust store; b holds a leaf under it and no intermediate."""
    a = node(
        "a", record("a", pki.root, "trust"), record("a", pki.intermediate, "trust"), record("a", pki.leaf_ec)
    )
    b = node("b", record("b", pki.leaf_rsa), record("b", material["other_root"], "trust"))
    return [a, b]


def found(nodes, incident: Incident, *rule_ids: str) -> dict[tuple[str | None, str], object]:  # type: ignore[no-untyped-def]
    return {
        (f.node, f.entry.rsplit("#", 1)[-1]): f
        for f in detect(nodes, Context(incident=incident), rule_ids)
        if f.entry
    }


def test_a_compromised_root_taints_every_certificate_under_it_on_every_node(
    openssl_pki: OpenSSLPki, material: Material
) -> None:
    incident = load_incident(compromised_cas=[openssl_pki.root.cert])
    hits = found(fleet(openssl_pki, material), incident, "compromised-issuer")
    assert set(hits) == {("a", "root"), ("a", "intermediate"), ("a", "leaf_ec"), ("b", "leaf_rsa")}
    leaf = hits[("b", "leaf_rsa")]
    assert leaf.severity == Severity.CRITICAL and leaf.evidence["how"] == "issued under it"
    assert [c["sha256"] for c in leaf.evidence["chain"]] == [
        openssl_pki.intermediate.sha256,
        openssl_pki.root.sha256,
    ]
    assert leaf.evidence["compromised_ca"]["given_in"] == str(openssl_pki.root.cert)
    assert hits[("a", "root")].evidence["how"] == "is the compromised CA"


def test_a_compromised_intermediate_spares_its_parent_and_other_cas(
    openssl_pki: OpenSSLPki, material: Material
) -> None:
    incident = load_incident(compromised_cas=[openssl_pki.intermediate.cert])
    hits = found(fleet(openssl_pki, material), incident, "compromised-issuer")
    assert set(hits) == {("a", "intermediate"), ("a", "leaf_ec"), ("b", "leaf_rsa")}


def test_ioc_indicators_of_every_kind_name_their_file_and_line(
    tmp_path: Path, openssl_pki: OpenSSLPki, material: Material
) -> None:
    iocs = tmp_path / "iocs.txt"
    fingerprint = ":".join(openssl_pki.leaf_ec.sha256[i : i + 2] for i in range(0, 64, 2)).upper()
    iocs.write_text(
        "# indicators from the incident ticket\n"
        f"{fingerprint}\n"
        f"spki:{openssl_pki.root.spki_sha256}  # the root's key\n"
        f"serial:{openssl_pki.leaf_rsa.serial:x} issuer:{openssl_pki.intermediate.sha256}\n"
        f"serial:{openssl_pki.leaf_rsa.serial:x} issuer:{openssl_pki.root.sha256}\n"
    )
    hits = found(fleet(openssl_pki, material), load_incident(iocs=[iocs]), "ioc-match")
    assert set(hits) == {("a", "leaf_ec"), ("a", "root"), ("b", "leaf_rsa")}
    assert [i["source"] for i in hits[("a", "leaf_ec")].evidence["indicators"]] == [f"{iocs}:2"]
    assert [i["source"] for i in hits[("b", "leaf_rsa")].evidence["indicators"]] == [f"{iocs}:4"]
    assert hits[("a", "root")].evidence["indicators"][0]["kind"] == "spki"


def test_an_ioc_private_key_matches_its_certificate_without_the_key_leaking(
    tmp_path: Path, openssl_pki: OpenSSLPki, material: Material
) -> None:
    key_text = openssl_pki.leaf_rsa.key.read_text()
    iocs = tmp_path / "dump.txt"
    iocs.write_text(f"# found on the attacker's host:\n{key_text}\n")
    (hit,) = detect(
        fleet(openssl_pki, material), Context(incident=load_incident(iocs=[iocs])), ("ioc-match",)
    )
    assert (
        hit.sha256 == openssl_pki.leaf_rsa.sha256 and hit.evidence["indicators"][0]["source"] == f"{iocs}:2"
    )
    body = "".join(key_text.splitlines()[1:-1])
    assert body[:40] not in repr(hit)


def test_a_revoked_or_compromised_trust_anchor_is_also_revoked_present(
    openssl_pki: OpenSSLPki, material: Material
) -> None:
    incident = load_incident(compromised_cas=[openssl_pki.intermediate.cert])
    hits = found(fleet(openssl_pki, material), incident, "revoked-present")
    (only,) = hits.values()
    assert (only.node, only.severity, only.evidence["because"]) == (
        "a",
        Severity.MEDIUM,
        ["compromised-issuer"],
    )
    assert only.sha256 == openssl_pki.intermediate.sha256


def test_a_revoked_leaf_outside_trust_stores_is_not_revoked_present(openssl_pki: OpenSSLPki) -> None:
    crl = crl_record("n:/crl", openssl_pki.crl_der.read_bytes(), "n")
    trust = [record("n", openssl_pki.root, "trust"), record("n", openssl_pki.intermediate, "trust")]
    nodes = [node("n", record("n", openssl_pki.revoked), *trust, crls=(crl,))]
    rules = {f.rule for f in detect(nodes, Context(), ("revoked", "revoked-present"))}
    assert rules == {"revoked"}


@pytest.fixture(scope="module")
def cross(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Minted]:
    """Two CAs X and Y that cross-certify each other (a cycle), Y also issued by a compromised root C,
    and a leaf under X: every one of them chains to C, whichever certificate is looked at first."""
    m = _Minter(tmp_path_factory.mktemp("cross"))
    x_key, y_key = m.key("x"), m.key("y")
    m.mint("c", "/CN=Cross Compromised Root", section="ca")
    m.mint("x_root", "/CN=Cross X", key=x_key, section="ca")
    m.mint("y_c", "/CN=Cross Y", issuer="c", key=y_key, section="ca")
    m.mint("y_x", "/CN=Cross Y", issuer="x_root", key=y_key, section="ca")
    m.mint("x_y", "/CN=Cross X", issuer="y_c", key=x_key, section="ca")
    m.mint("leaf", "/CN=leaf.cross.test", issuer="x_root", san="leaf.cross.test")
    return m.certs


def test_compromise_through_a_cross_certification_cycle_is_the_same_in_every_inventory_order(
    cross: dict[str, Minted],
) -> None:
    incident = load_incident(compromised_cas=[cross["c"].cert])
    holdings = {"a": ("leaf", "x_root"), "b": ("y_x", "x_y"), "d": ("y_c", "c")}
    seen = set()
    for order in itertools.permutations(holdings):
        for flip in (False, True):
            nodes = [
                node(n, *(record(n, cross[c]) for c in (reversed(holdings[n]) if flip else holdings[n])))
                for n in order
            ]
            seen.add(frozenset(found(nodes, incident, "compromised-issuer")))
    assert seen == {frozenset((n, c) for n, certs in holdings.items() for c in certs)}
