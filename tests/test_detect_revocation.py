"""revoked, revocation-unknown, crl-stale, crl-unverified: CRLs count only when verified, match by issuer AND
serial, and an unusable CRL is one finding naming the nodes it was meant for.

The RFC 5280 conformance table is tests/test_revocation_conformance.py (and PKITS: test_revocation_pkits.py).
"""

from __future__ import annotations

from datetime import timedelta

from sweeper.detect import Context, detect
from sweeper.incident import Incident, SourcedCert, load_incident
from sweeper.model import Severity
from sweeper.pki.crl import crl_facts
from sweeper.pki.parse import pem_blocks
from tests.detect_material import (
    Material,
    crl_record,
    material_fixture,  # noqa: F401 - the `material` fixture
    node,
    record,
)
from tests.support.openssl_pki import OpenSSLPki

REVOCATION_RULES = ("revoked", "crl-stale", "crl-unverified")


NO_INPUTS = Incident()


def run(nodes, incident: Incident = NO_INPUTS, now=None):  # type: ignore[no-untyped-def]
    context = Context(incident=incident) if now is None else Context(incident=incident, now=now)
    return detect(nodes, context, REVOCATION_RULES)


def pki_node(pki: OpenSSLPki, *leaves, crls=()):  # type: ignore[no-untyped-def]
    trust = [record("n1", pki.root, "trust"), record("n1", pki.intermediate, "trust")]
    return node("n1", *(record("n1", leaf) for leaf in leaves), *trust, crls=crls)


def test_a_node_crl_store_revokes_the_listed_leaf_with_the_crl_as_evidence(openssl_pki: OpenSSLPki) -> None:
    crl = crl_record("n1:/etc/pki/tls/crl/intermediate.crl.pem", openssl_pki.crl_der.read_bytes(), "n1")
    found = run([pki_node(openssl_pki, openssl_pki.revoked, openssl_pki.leaf_rsa, crls=(crl,))])
    (hit,) = found
    assert (hit.rule, hit.severity, hit.sha256) == ("revoked", Severity.CRITICAL, openssl_pki.revoked.sha256)
    assert hit.evidence["crl"] == crl.source and hit.evidence["crl_number"] == 1
    assert hit.evidence["reason"] == "keyCompromise" and hit.evidence["stale"] is False
    assert hit.evidence["issuer"]["sha256"] == openssl_pki.intermediate.sha256


def test_a_crl_given_on_the_command_line_counts_in_pem_and_der(openssl_pki: OpenSSLPki) -> None:
    for path in (openssl_pki.crl, openssl_pki.crl_der):
        incident = load_incident(crls=[path])
        (hit,) = run([pki_node(openssl_pki, openssl_pki.revoked)], incident)
        assert hit.rule == "revoked" and hit.evidence["crl"] == str(path)


def test_the_same_serial_under_an_impostor_with_the_issuers_name_is_not_revoked(
    openssl_pki: OpenSSLPki, material: Material
) -> None:
    impostor_leaf = record("n1", material["impostor_leaf"])
    assert impostor_leaf.facts.serial == format(openssl_pki.revoked.serial, "x")
    assert impostor_leaf.facts.issuer == record("n1", openssl_pki.revoked).facts.issuer
    incident = load_incident(
        crls=[openssl_pki.crl], cas=[openssl_pki.intermediate.cert, material["impostor"].cert]
    )
    assert run([node("n1", impostor_leaf)], incident) == []


def test_a_forged_crl_is_ignored_and_reported_unverified(openssl_pki: OpenSSLPki, material: Material) -> None:
    forged = crl_record("/evidence/forged.crl", material.crls["forged"])
    found = run([pki_node(openssl_pki, openssl_pki.leaf_rsa)], Incident(crls=(forged,)))
    (ignored,) = found
    assert (ignored.rule, ignored.severity) == ("crl-unverified", Severity.INFO)
    assert (
        ignored.evidence["crl"] == "/evidence/forged.crl" and "does not verify" in ignored.evidence["problem"]
    )


def test_a_crl_signed_by_an_impostor_revokes_only_what_the_impostor_signed(
    openssl_pki: OpenSSLPki, material: Material
) -> None:
    forged = crl_record("/evidence/forged.crl", material.crls["forged"])
    incident = Incident(crls=(forged,), issuers=(SourcedCert(material["impostor"].der, "impostor.pem"),))
    assert run([pki_node(openssl_pki, openssl_pki.leaf_rsa)], incident) == []


def test_a_crl_with_no_known_issuer_is_reported_and_revokes_nothing(material: Material) -> None:
    full = crl_record("scope.crl", material.crls["full"])
    leaf = record("n1", material["scope_leaf"])
    (ignored,) = run([node("n1", leaf)], Incident(crls=(full,)))
    assert ignored.rule == "crl-unverified" and "--ca" in ignored.evidence["problem"]


def scope_fleet(material: Material):  # type: ignore[no-untyped-def]
    names = ("scope_leaf", "scope_sub", "scope_held", "scope_hold", "scope_ca")
    return [node("n1", *(record("n1", material[n], "trust" if n == "scope_ca" else "leaf") for n in names))]


def revoked_names(material: Material, *crls: str) -> set[str]:
    found = run(scope_fleet(material), Incident(crls=tuple(crl_record(c, material.crls[c]) for c in crls)))
    names = {record("x", cert).facts.sha256: name for name, cert in material.certs.items()}
    return {names[f.sha256] for f in found if f.rule == "revoked" and f.sha256}


def test_idp_scope_and_lifted_holds_decide_what_a_crl_revokes(material: Material) -> None:
    assert revoked_names(material, "full") == {"scope_leaf", "scope_sub"}  # scope_held: removeFromCRL
    assert revoked_names(material, "only_user") == {"scope_leaf"}
    assert revoked_names(material, "only_ca") == {"scope_sub"}


def test_a_hold_revokes_until_a_newer_crl_omits_it(material: Material) -> None:
    assert "scope_hold" in revoked_names(material, "hold")
    assert "scope_hold" not in revoked_names(material, "hold", "released")
    assert revoked_names(material, "full", "hold", "released") == {"scope_leaf", "scope_sub"}


def test_a_stale_crl_still_revokes_and_is_reported_as_info(openssl_pki: OpenSSLPki) -> None:
    crl = crl_record("n1:/crl/intermediate.pem", openssl_pki.crl_der.read_bytes(), "n1")
    next_update = crl_facts(crl.der).next_update
    assert next_update is not None
    found = run(
        [pki_node(openssl_pki, openssl_pki.revoked, crls=(crl,))], now=next_update + timedelta(days=1)
    )
    by_rule = {f.rule: f for f in found}
    assert set(by_rule) == {"revoked", "crl-stale"}
    assert by_rule["revoked"].evidence["stale"] is True
    assert by_rule["crl-stale"].severity == Severity.INFO and by_rule["crl-stale"].node == "n1"


def test_healthy_leaves_under_a_verified_crl_have_no_finding(openssl_pki: OpenSSLPki) -> None:
    crl = crl_record("n1:/crl/intermediate.der", openssl_pki.crl_der.read_bytes(), "n1")
    assert run([pki_node(openssl_pki, openssl_pki.leaf_rsa, openssl_pki.leaf_ec, crls=(crl,))]) == []


def test_crls_that_concern_no_swept_certificate_are_one_finding_per_cause(material: Material) -> None:
    """A folder of other CAs' CRLs: one line saying so, not one finding per CRL."""
    others = tuple(
        crl_record(f"/evidence/{name}.crl", der) for name, der in material.crls.items() if name != "forged"
    )
    (summary,) = run([node("n1", record("n1", material["other_leaf"]))], Incident(crls=others))
    assert (summary.rule, summary.node) == ("crl-unverified", None)
    assert summary.evidence["crl_count"] == len(others) and summary.evidence["kind"] == "issuer-unknown"


def test_an_unusable_crl_is_one_finding_naming_every_node_it_was_meant_for(
    openssl_pki: OpenSSLPki, material: Material
) -> None:
    forged = crl_record("/evidence/forged.crl", material.crls["forged"])
    fleet = [node(name, record(name, openssl_pki.leaf_rsa), record(name, openssl_pki.intermediate, "trust"))
             for name in ("web1", "web2", "web3")]  # fmt: skip
    (ignored,) = run(fleet, Incident(crls=(forged,)))
    assert ignored.rule == "crl-unverified" and ignored.node is None
    assert ignored.evidence["nodes"] == ["web1", "web2", "web3"]


def test_revocation_unknown_names_the_node_and_the_ca_whose_status_nothing_decides(
    openssl_pki: OpenSSLPki,
) -> None:
    """The intermediate's CRL clears the leaf; without the root's CRL the intermediate itself is unknown."""
    intermediate_crl = crl_record("n1:intermediate.crl", openssl_pki.crl_der.read_bytes(), "n1")
    rules = ("revocation-unknown",)
    unclear = pki_node(openssl_pki, openssl_pki.leaf_rsa, crls=(intermediate_crl,))
    (unknown,) = detect([unclear], Context(), rules)
    assert (unknown.node, unknown.sha256) == ("n1", openssl_pki.leaf_rsa.sha256)
    assert unknown.severity == Severity.LOW
    assert [u["sha256"] for u in unknown.evidence["unknown"]] == [openssl_pki.intermediate.sha256]
    (root_pem,) = pem_blocks(openssl_pki.root_crl.read_bytes())
    root_crl = crl_record("n1:root.crl", root_pem.der, "n1")
    healthy = pki_node(openssl_pki, openssl_pki.leaf_rsa, crls=(intermediate_crl, root_crl))
    assert detect([healthy], Context(), rules) == []
