"""Revocation conformance, end to end: each case of tests/revocation_cases.py served by its own node over
real sshd, all swept by one `sweeper scan`; and the property that a CRL which does not verify never
changes a verdict."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sweeper.detect import Context, detect
from sweeper.incident import Incident
from sweeper.model import CrlRecord, NodeResult
from sweeper.stores.records import certificate_record
from tests.revocation_cases import CASES, Built, Case, build_cases
from tests.support import run
from tests.support.fixtures import write_inventory
from tests.support.revocation_pki import Entry, Made, Partition, RevocationPki
from tests.support.sshd import Sshd

pytestmark = pytest.mark.skipif(not Path("/usr/sbin/sshd").exists(), reason="needs openssh-server")

VERDICT_RULES = ("revoked", "revoked-issuer", "revocation-unknown")
LEAF, TRUST, CRL_DIR = "/etc/tls/leaf.crt", "/etc/tls/trust.pem", "/etc/tls/crl"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    return build_cases(tmp_path_factory.mktemp("revocation-cases"))


def lay_node(root: Path, built: Built) -> None:
    """The case's leaf, its other certificates as a trust bundle, its CRLs as DER files."""
    files = {
        LEAF: built.certs["leaf"].pem.read_bytes(),
        TRUST: b"".join(made.pem.read_bytes() for made in built.served),
        **{f"{CRL_DIR}/{path.name}": path.read_bytes() for path in built.crls},
    }
    for node_path, data in files.items():
        target = root / node_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


@pytest.fixture(scope="module")
def report(
    built: dict[str, Built], tmp_path_factory: pytest.TempPathFactory, client_key: Any
) -> Iterator[dict[str, Any]]:
    """One sweep of every case, each case a node of its own behind one real sshd."""
    folder = tmp_path_factory.mktemp("revocation-sweep")
    server = Sshd(folder / "sshd", [client_key.public_line], max_startups="64:30:128").start()
    try:
        nodes = []
        for case_id, case_built in built.items():
            lay_node(folder / "nodes" / case_id, case_built)
            stores = [
                {"kind": "pem", "role": "leaf", "cert": LEAF},
                {"kind": "bundle", "role": "trust", "path": TRUST},
                {"kind": "dir", "role": "crl", "path": CRL_DIR},
            ]
            nodes.append(
                {"name": case_id, "host": server.host, "port": server.port, "profile": "linux",
                 "root": str(folder / "nodes" / case_id), "stores": stores}
            )  # fmt: skip
        known_hosts = folder / "known_hosts"
        known_hosts.write_text(server.host_key_line + "\n")
        defaults = {
            "user": "root",
            "known_hosts": str(known_hosts),
            "client_keys": [str(client_key.private_path)],
        }
        inventory = write_inventory(folder / "inventory.toml", nodes, defaults)
        done, found = run.scan(inventory, folder / "reports", "--retries", "8", "--fail-on", "critical")
    finally:
        server.stop()
    assert {n["name"]: n["status"] for n in found["nodes"]} == {case.id: "ok" for case in CASES}, done.stderr
    yield found


def on_node(report: dict[str, Any], node: str, rule: str) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["rule"] == rule and f["node"] == node]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_each_case_gets_its_verdict_on_its_own_node(
    case: Case, built: dict[str, Built], report: dict[str, Any]
) -> None:
    named = {hashlib.sha256(made.der).hexdigest(): name for name, made in built[case.id].certs.items()}
    revoked = {named[f["sha256"]] for f in on_node(report, case.id, "revoked")}
    expected_also = {name for rule, name in case.also if rule == "revoked"}
    unknown = on_node(report, case.id, "revocation-unknown")
    if case.verdict == "revoked":
        assert case.revoked in revoked, (case.clause, case.what)
        if case.reason:
            (hit,) = [f for f in on_node(report, case.id, "revoked") if named[f["sha256"]] == case.revoked]
            assert hit["evidence"]["reason"] == case.reason
            assert hit["evidence"]["hold"] is (case.reason == "certificateHold")
    elif case.verdict == "good":
        assert revoked == expected_also and unknown == [], (case.clause, case.what)
    else:
        assert revoked == expected_also, (case.clause, case.what)
        assert LEAF in {f["entry"] for f in unknown}, (case.clause, case.what)
    for rule, name in case.also:
        assert name in {named[f["sha256"]] for f in on_node(report, case.id, rule)}, (rule, name)


def test_a_leaf_under_a_revoked_ca_names_that_ca_on_its_own_node(
    built: dict[str, Built], report: dict[str, Any]
) -> None:
    (under,) = [f for f in on_node(report, "revoked-ca-above", "revoked-issuer") if f["entry"] == LEAF]
    ca = built["revoked-ca-above"].certs["ca"]
    assert under["severity"] == "high"
    assert under["evidence"]["revoked_ca"]["subject"].startswith(f"CN={ca.cn},")
    assert under["evidence"]["ca_revocation"]["reason"] == "keyCompromise"


def test_a_crl_that_cannot_be_used_is_one_finding_naming_the_nodes_it_was_meant_for(
    report: dict[str, Any],
) -> None:
    ignored = [f for f in report["findings"] if f["rule"] == "crl-unverified" and f["evidence"].get("nodes")]
    by_node = {node: f for f in ignored for node in f["evidence"]["nodes"]}
    for case_id in ("unknown-critical-extension", "no-crl-sign", "delta-alone", "separate-key-revoked"):
        assert by_node[case_id]["node"] == case_id
    assert len(ignored) == len({f["evidence"]["crl_sha256"] for f in ignored})
    (stale,) = on_node(report, "stale", "crl-stale")
    assert stale["evidence"]["nodes"] == ["stale"]


def records(built: Built, node: str) -> NodeResult:
    """The case's node as a sweep reads it, without the sweep."""
    made = built.certs
    certs = [certificate_record(node, LEAF, LEAF, "leaf", made["leaf"].der)]
    certs += [certificate_record(node, TRUST, f"{TRUST}#{m.name}", "trust", m.der) for m in built.served]
    crls = tuple(CrlRecord(f"{node}:{p.name}", p.read_bytes(), node) for p in built.crls)
    return NodeResult(name=node, host=node, status="ok", certificates=tuple(certs), crls=crls)


Verdicts = set[tuple[str, str, str | None]]


def verdicts(nodes: list[NodeResult], extra: CrlRecord | None = None) -> Verdicts:
    """(rule, node, certificate) of every revoked, revoked-issuer and revocation-unknown finding."""
    context = Context(incident=Incident(crls=(extra,)) if extra else Incident())
    return {(f.rule, f.node or "", f.sha256) for f in detect(nodes, context, VERDICT_RULES)}


PROPERTY_CASES = ("listed", "separate-key", "indirect", "indirect-inherited", "hold-removed-by-delta",
                  "dp-relative-name", "revoked-ca", "some-reasons-all", "no-crl",
                  "delta-revokes")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Forgery:
    """What the property needs: the nodes and their verdicts, CRLs to tamper with, names to forge in."""

    nodes: list[NodeResult]
    before: Verdicts
    crls: list[bytes]
    issuers: list[Made]
    serials: list[int]
    pki: RevocationPki
    impostor: Made


@pytest.fixture(scope="module")
def forgery(built: dict[str, Built], tmp_path_factory: pytest.TempPathFactory) -> Forgery:
    nodes = [records(built[c], c) for c in PROPERTY_CASES]
    cases = [built[c] for c in PROPERTY_CASES]
    pki = RevocationPki(tmp_path_factory.mktemp("forged"))
    impostor = pki.certificate("impostor", "impostor", issuer=None, key=0, serial=1, usage="ca")
    return Forgery(
        nodes=nodes,
        before=verdicts(nodes),
        crls=[crl.der for node in nodes for crl in node.crls],
        issuers=[made for case in cases for made in case.certs.values() if made.name != "leaf"],
        serials=sorted({made.serial for case in cases for made in case.certs.values()}),
        pki=pki,
        impostor=impostor,
    )


def _verifies_under_any(der: bytes, nodes: list[NodeResult]) -> bool:
    """Whether a fleet certificate named as the CRL's issuer verifies it (by cryptography, not sweeper)."""
    try:
        crl = x509.load_der_x509_crl(der)
        issuer = crl.issuer
    except (ValueError, x509.InvalidVersion):
        return False
    for record in (r for node in nodes for r in node.certificates):
        cert = x509.load_der_x509_certificate(record.der)
        try:
            if cert.subject == issuer and crl.is_signature_valid(cert.public_key()):  # type: ignore[arg-type]
                return True
        except (TypeError, ValueError):
            continue
    return False


def _forged(forgery: Forgery, data: st.DataObject, name: str) -> bytes:
    """A CRL in a fleet CA's name that says something else (entries, hold, delta, scope), never verifiable."""
    issuer = data.draw(st.sampled_from(forgery.issuers), label="in the name of")
    serials = data.draw(st.lists(st.sampled_from(forgery.serials), max_size=4, unique=True), label="serials")
    reasons = st.sampled_from(["keyCompromise", "certificateHold", "removeFromCRL", None])
    others = [m.cn for m in forgery.issuers]
    entries = [
        Entry(
            serial, data.draw(reasons), data.draw(st.sampled_from([None, *others]), label="certificateIssuer")
        )
        for serial in serials
    ]
    delta = data.draw(st.sampled_from([None, 1]), label="delta base")
    partition = data.draw(st.sampled_from([None, Partition(indirect=True), Partition(only_user=True)]))
    broken = data.draw(st.booleans(), label="the issuer's own key, signature broken")
    path = forgery.pki.crl(
        name,
        issuer_cn=issuer.cn,
        signer=issuer if broken else forgery.impostor,
        number=data.draw(st.integers(1, 9), label="number"),
        entries=entries,
        partition=partition,
        delta_base=delta,
        stale=data.draw(st.booleans(), label="stale"),
    )
    der = bytearray(path.read_bytes())
    if broken:
        der[-1] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    return bytes(der)


def _tampered(forgery: Forgery, data: st.DataObject) -> bytes:
    """One of the fleet's own CRLs with a bit flipped or cut short."""
    original = data.draw(st.sampled_from(forgery.crls), label="CRL")
    if data.draw(st.booleans(), label="cut short"):
        return original[: data.draw(st.integers(0, len(original) - 1), label="length")]
    bit = data.draw(st.integers(0, len(original) * 8 - 1), label="bit")
    changed = bytearray(original)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_crl_that_does_not_verify_never_changes_a_verdict(forgery: Forgery, data: st.DataObject) -> None:
    forged = data.draw(st.booleans(), label="forged (else tampered)")
    crl = _forged(forgery, data, f"forged-{next(_FORGED)}") if forged else _tampered(forgery, data)
    assume(not _verifies_under_any(crl, forgery.nodes))
    where = data.draw(st.sampled_from([None, *PROPERTY_CASES]), label="found on (None: --crl)")
    nodes = forgery.nodes
    if where is None:
        after = verdicts(nodes, CrlRecord("--crl forged.crl", crl))
    else:
        added = CrlRecord(f"{where}:forged.crl", crl, where)
        after = verdicts([replace(n, crls=(*n.crls, added)) if n.name == where else n for n in nodes])
    assert after == forgery.before


_FORGED = itertools.count()
