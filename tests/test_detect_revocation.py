"""revoked, revocation-unknown, crl-stale, crl-unverified: CRLs count only when verified, match by issuer AND
serial, and an unusable CRL is one finding naming the nodes it was meant for.

The RFC 5280 conformance table is tests/test_revocation_conformance.py (and PKITS: test_revocation_pkits.py).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sweeper.detect import Context, detect
from sweeper.incident import Incident, SourcedCert, load_incident
from sweeper.model import CertRecord, Severity
from sweeper.pki import issue
from sweeper.pki.crl import crl_facts
from sweeper.pki.parse import pem_blocks
from sweeper.stores.records import certificate_record
from tests.detect_material import (
    Material,
    crl_record,
    material_fixture,  # noqa: F401 - the `material` fixture
    node,
    record,
)
from tests.support import odd_certs
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


def test_a_signed_crl_with_an_extension_twice_is_unverified_and_the_rule_goes_on(
    openssl_pki: OpenSSLPki,
) -> None:
    """cryptography's DuplicateExtension is no ValueError: it escaped the CRL's parse and made the
    whole revocation rule a rule-error, for every node, from one planted CRL."""
    key = serialization.load_pem_private_key(openssl_pki.intermediate.key.read_bytes(), None)
    issuer = x509.load_pem_x509_certificate(openssl_pki.intermediate.cert.read_bytes())
    planted = crl_record(
        "n1:/etc/pki/tls/crl/twice.crl", odd_certs.duplicate_crl_extension(issuer, key), "n1"
    )
    good = crl_record("n1:/etc/pki/tls/crl/intermediate.crl.pem", openssl_pki.crl_der.read_bytes(), "n1")
    found = run([pki_node(openssl_pki, openssl_pki.revoked, crls=(planted, good))])
    assert sorted(f.rule for f in found) == ["crl-unverified", "revoked"]
    (ignored,) = [f for f in found if f.rule == "crl-unverified"]
    assert "Duplicate 2.5.29.20 extension" in ignored.evidence["problem"]


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


def test_a_revoked_ca_below_a_cross_certification_cycle_is_found_in_every_inventory_order() -> None:
    """R (anchor) -> I1 (revoked by R's CRL) -> A -> B -> leaf, and B -> A' (A's name and key): every
    path of the leaf crosses I1, however the walk meets the A/B cycle; no node order hides that."""
    now = datetime.now(UTC)
    keys = {name: issue.generate_key("ec-p256") for name in ("r", "i1", "a", "b", "leaf")}
    r = issue.make_root("Cycle Root", keys["r"])
    i1 = issue.make_intermediate(r, keys["r"], "Cycle I1", keys["i1"].public_key(), path_length=None)
    a = issue.make_intermediate(i1, keys["i1"], "Cross A", keys["a"].public_key(), path_length=None)
    b = issue.make_intermediate(a, keys["a"], "Cross B", keys["b"].public_key(), path_length=None)
    a2 = issue.make_intermediate(b, keys["b"], "Cross A", keys["a"].public_key(), path_length=None)
    day = timedelta(days=1)
    leaf = issue.issue_leaf(
        b, keys["b"], "leaf.cycle.test", ["leaf.cycle.test"], keys["leaf"].public_key(), now - day, now + day
    )
    crl = issue.make_crl(r, keys["r"], [(i1.serial_number, now - day)], now - day, now + day, crl_number=1)
    incident = Incident(crls=(crl_record("cycle.crl", issue.crl_der(crl)),))
    der = {
        name: issue.cert_der(c)
        for name, c in {"r": r, "i1": i1, "a": a, "b": b, "a2": a2, "leaf": leaf}.items()
    }
    holdings = {"w": ("leaf",), "x": ("a2", "b"), "y": ("a", "i1"), "z": ("r",)}

    def located(name: str, cert: str) -> CertRecord:
        return certificate_record(
            name, f"/{cert}.pem", f"/{cert}.pem#1", "trust" if cert == "r" else "leaf", der[cert]
        )

    seen = set()
    for order in itertools.permutations(holdings):
        for flip in (False, True):
            nodes = [
                node(n, *(located(n, c) for c in (holdings[n][::-1] if flip else holdings[n]))) for n in order
            ]
            found = detect(nodes, Context(incident=incident), ["revoked", "revoked-issuer"])
            seen.add(frozenset((f.rule, f.node, f.store) for f in found))
    (only,) = seen
    assert ("revoked-issuer", "w", "/leaf.pem") in only and ("revoked", "y", "/i1.pem") in only
