"""Benchmark: certificates per second through every rule, for a fleet built in this process.

The fleet looks like a real one: every node holds its own leaf (with key facts) and a
copy of the same chain and trust roots, so 10,000 certificate records are ~2,000
distinct certificates. Every node's CRL store holds the same CRL of 1,000 serials, the
incident names a compromised CA, 100 IOC lines and the expected roots, so each rule does
real work. Leaf keys are EC P-256 except `--rsa-leaves` RSA-2048 ones (their generation
is slow; badkeys' RSA checks cost ~0.8 ms per distinct RSA key, printed separately).

    python bench/detect.py [--nodes 2000] [--rsa-leaves 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sweeper.detect import Context, detect
from sweeper.incident import load_incident
from sweeper.model import CrlRecord, KeyInfo, NodeResult
from sweeper.pki import issue
from sweeper.pki.keys import key_flaws, public_key_der
from sweeper.stores.records import certificate_record

NOW = datetime.now(UTC)


def _rsa_pems(count: int) -> list[bytes]:
    return [issue.key_pem(issue.generate_key("rsa2048")) for _ in range(count)]


def rsa_keys(count: int) -> list[issue.PrivateKey]:
    """RSA-2048 leaf keys, made on every core."""
    if count == 0:
        return []
    workers = 2
    with ProcessPoolExecutor(workers) as pool:
        batches = pool.map(_rsa_pems, [count // workers + (i < count % workers) for i in range(workers)])
    return [issue.load_key_pem(pem, trusted=True) for batch in batches for pem in batch]


def build(nodes: int, rsa_leaves: int, incident_dir: Path) -> tuple[list[NodeResult], Context]:
    root_key, legacy_key, partner_key = (issue.generate_key("rsa2048") for _ in range(3))
    root = issue.make_root("Bench Corp Root", root_key)
    legacy = issue.make_root("Bench Legacy Root", legacy_key)
    partner = issue.make_root("Bench Partner Root", partner_key)
    inter_key = issue.generate_key("ec-p256")
    inter = issue.make_intermediate(root, root_key, "Bench Issuing CA", inter_key.public_key())
    revoked = [(n, NOW - timedelta(days=1)) for n in range(10**6, 10**6 + 1000)]
    crl = issue.crl_der(issue.make_crl(inter, inter_key, revoked, NOW, NOW + timedelta(days=7), 1))
    shared = [issue.cert_der(c) for c in (root, legacy, partner, inter)]
    keys = rsa_keys(rsa_leaves)
    results = []
    for index in range(nodes):
        name = f"node{index:05d}"
        leaf_key = keys[index] if index < len(keys) else issue.generate_key("ec-p256")
        leaf = issue.issue_leaf(
            inter,
            inter_key,
            f"{name}.bench",
            [f"{name}.bench"],
            leaf_key.public_key(),
            NOW,
            NOW + timedelta(days=90),
        )
        leaf_record = certificate_record(name, "x", "x", "leaf", issue.cert_der(leaf))
        key = KeyInfo(f"/etc/tls/{name}.key", mode="0600", spki_sha256=leaf_record.facts.spki_sha256)
        server = "/etc/tls/server.crt"
        records = [certificate_record(name, server, server, "leaf", leaf_record.der, key=key)]
        records.append(
            certificate_record(name, "/etc/tls/server.crt", "/etc/tls/server.crt#2", "leaf", shared[3])
        )
        records += [
            certificate_record(name, "/etc/pki/trust.pem", f"/etc/pki/trust.pem#{i}", "trust", der)
            for i, der in enumerate(shared[:3], start=1)
        ]
        crls = (CrlRecord(f"{name}:/etc/pki/crl/issuing.crl", crl, name),)
        results.append(NodeResult(name, f"{name}.bench", "ok", certificates=tuple(records), crls=crls))
    compromised = incident_dir / "legacy.pem"
    compromised.write_bytes(issue.cert_pem(legacy))
    expected = incident_dir / "expected.pem"
    expected.write_bytes(issue.cert_pem(root) + issue.cert_pem(legacy))
    iocs = incident_dir / "iocs.txt"
    iocs.write_text("".join(f"spki:{i:064x}\n" for i in range(100)))
    incident = load_incident(compromised_cas=[compromised], expected_roots=expected, iocs=[iocs])
    return results, Context(incident=incident)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=2000, help="nodes of 5 certificates each")
    parser.add_argument("--rsa-leaves", type=int, default=40, help="leaves with RSA-2048 keys")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        nodes, context = build(args.nodes, args.rsa_leaves, Path(folder))
        built = time.perf_counter()
        findings = detect(nodes, context)
        done = time.perf_counter()
    records = sum(len(n.certificates) for n in nodes)
    distinct = len({r.facts.sha256 for n in nodes for r in n.certificates})
    rsa = [
        r.der
        for n in nodes
        for r in n.certificates
        if r.facts.key_type == "RSA" and r.role == "leaf" and not r.facts.is_ca
    ]
    key_flaws.cache_clear()
    probe = time.perf_counter()
    for der in rsa:
        key_flaws(public_key_der(der))
    per_rsa_key = (time.perf_counter() - probe) / max(1, len(rsa))
    by_rule: dict[str, int] = {}
    for finding in findings:
        by_rule[finding.rule] = by_rule.get(finding.rule, 0) + 1
    print(f"fleet: {len(nodes)} nodes, {records} certificate records, {distinct} distinct certificates")
    print(f"build: {built - started:.1f} s")
    print(f"detect: {done - built:.2f} s for all rules = {records / (done - built):,.0f} certificates/s")
    print(f"badkeys per distinct RSA-2048 key: {per_rsa_key * 1000:.2f} ms")
    print(
        f"findings: {len(findings)} "
        + ", ".join(f"{rule} {count}" for rule, count in sorted(by_rule.items()))
    )
    print(f"whole run: {done - started:.1f} s")


if __name__ == "__main__":
    main()
