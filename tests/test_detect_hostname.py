"""hostname-mismatch: a node's served certificate must name the node; solution users and CAs are exempt."""

from __future__ import annotations

import pytest

from sweeper.detect import Context, detect
from sweeper.detect.hostname import names_host
from sweeper.model import Severity
from tests.detect_material import node, record
from tests.support.openssl_pki import OpenSSLPki


@pytest.mark.parametrize(
    ("san", "host", "named"),
    [
        ("web1.test", "web1.test", True),
        ("WEB1.test.", "web1.test", True),
        ("*.corp.example", "vc01.corp.example", True),
        ("*.corp.example", "a.b.corp.example", False),
        ("vc01.corp.example", "vc01", True),
        ("vc01", "vc01.corp.example", True),
        ("vc01.corp.example", "vc01.other.example", False),
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.2", False),
        ("127", "127.0.0.1", False),
    ],
)
def test_which_san_names_which_host(san: str, host: str, named: bool) -> None:
    assert names_host(san, host) is named


def mismatches(*nodes) -> list:  # type: ignore[no-untyped-def]
    return detect(list(nodes), Context(), ("hostname-mismatch",))


def test_a_leaf_naming_its_node_passes_and_one_naming_another_host_is_low(openssl_pki: OpenSSLPki) -> None:
    assert mismatches(node("web1", record("web1", openssl_pki.leaf_rsa), host="web1.test")) == []
    assert mismatches(node("srv", record("srv", openssl_pki.leaf_rsa), host="127.0.0.1")) == []
    (found,) = mismatches(node("web9", record("web9", openssl_pki.leaf_ec), host="10.9.9.9"))
    assert found.severity == Severity.LOW and found.evidence["sans"] == ["web2.test", "localhost"]


def test_vecs_solution_users_cas_and_backups_are_not_judged_but_machine_ssl_is(
    openssl_pki: OpenSSLPki,
) -> None:
    def vecs(store: str, cert=openssl_pki.leaf_ec):  # type: ignore[no-untyped-def]
        return record("vc01", cert, store=f"vecs:{store}", entry=store.lower(), entry_type="Private Key")

    exempt = [vecs(s) for s in ("vpxd", "vpxd-extension", "machine", "vsphere-webclient", "BACKUP_STORE")]
    ca = record("vc01", openssl_pki.intermediate)
    found = mismatches(node("vc01", *exempt, ca, vecs("MACHINE_SSL_CERT"), host="vc01.corp.example"))
    assert [f.store for f in found] == ["vecs:MACHINE_SSL_CERT"]
