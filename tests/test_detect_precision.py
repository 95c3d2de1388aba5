"""Precision: a healthy fleet, swept with every incident input given, yields nothing above low."""

from __future__ import annotations

from pathlib import Path

from sweeper.detect import Context, detect
from sweeper.incident import load_incident
from sweeper.model import KeyInfo, Severity
from tests.detect_material import (
    Material,
    crl_record,
    material_fixture,  # noqa: F401 - the `material` fixture
    node,
    record,
)
from tests.support.openssl_pki import OpenSSLPki


def test_a_healthy_fleet_has_no_finding_above_low_whatever_the_inputs(
    tmp_path: Path, openssl_pki: OpenSSLPki, material: Material
) -> None:
    iocs = tmp_path / "iocs.txt"
    other_root = record("x", material["other_root"]).facts.sha256
    # An unrelated key, and leaf_rsa's serial under another issuer: neither may match.
    iocs.write_text(f"spki:{'ab' * 32}\nserial:{openssl_pki.leaf_rsa.serial:x} issuer:{other_root}\n")
    incident = load_incident(
        crls=[openssl_pki.crl, openssl_pki.root_crl],
        iocs=[iocs],
        compromised_cas=[material["other_root"].cert],
        expected_roots=openssl_pki.root.cert,
    )
    nodes = []
    for name, leaf in (("web1", openssl_pki.leaf_rsa), ("web2", openssl_pki.leaf_ec)):
        key = KeyInfo(f"/etc/tls/{name}.key", mode="0600", spki_sha256=leaf.spki_sha256)
        crl = crl_record(f"{name}:/crl", openssl_pki.crl_der.read_bytes(), name)
        trust = [record(name, openssl_pki.root, "trust"), record(name, openssl_pki.intermediate, "trust")]
        nodes.append(node(name, record(name, leaf, key=key), *trust, host=f"{name}.test", crls=(crl,)))
    found = detect(nodes, Context(incident=incident))
    assert [f for f in found if f.severity > Severity.LOW] == []
