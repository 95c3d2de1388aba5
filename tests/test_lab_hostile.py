"""A rotation with hostile nodes in the fleet (DESIGN "Nodes are adversaries", "Lab"): nothing the new
root signs names what its node was not allowed or carries more than the fixed profile, the hostile
nodes are failed or confined, every other node is rotated, and a good CA stays trusted. And a
sweep with a flooding node stays small.

Checked on the nodes' own files with the openssl CLI, not through sweeper's parser.
"""

from __future__ import annotations

import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from sweeper.lab import LabHandle, start_lab
from sweeper.lab.plan import FLOOD, FORGED_ISSUER, GREEDY_NAMES, LYING_OPENSSL
from tests.support import run
from tests.support.labs import planted_scan_args

PASSPHRASE = "hostile lab rotation"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    hostile = (GREEDY_NAMES, FORGED_ISSUER, LYING_OPENSSL)
    with start_lab(tmp_path_factory.mktemp("lab"), nodes=5, hostile=hostile) as handle:
        yield handle


def openssl(*args: str | Path) -> str:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, check=True).stdout


def leaves(lab: LabHandle) -> dict[str, list[Path]]:
    """Every node's leaf certificate files (Linux and ESXi leaves, vCenter VECS entries with a key
    that sweeper signs)."""
    found: dict[str, list[Path]] = {}
    for node in tomllib.loads(lab.inventory.read_text())["nodes"]:
        root = Path(node["root"])
        paths = [root / s["cert"].lstrip("/") for s in node.get("stores", []) if s["kind"] == "pem"]
        if node["profile"] == "esxi":
            paths.append(root / "etc/vmware/ssl/rui.crt")
        if node["profile"] == "vcsa":
            vecs = root / "var/lib/vmware/vmafd/vecs"
            # SMS's own certificate is self-signed by design: vmware-sps makes it again (DESIGN)
            made_by_vcenter = ("BACKUP", "/SMS/")
            paths += [
                k.parent / "cert.pem"
                for k in vecs.glob("*/*/key.pem")
                if not any(part in str(k) for part in made_by_vcenter)
            ]
        found[node["name"]] = paths
    return found


def described(cert: Path) -> tuple[str, str]:
    """(issuer, the whole text dump) of a certificate file."""
    issuer = openssl("x509", "-in", cert, "-noout", "-issuer", "-nameopt", "RFC2253").split("=", 1)[1].strip()
    return issuer, openssl("x509", "-in", cert, "-noout", "-text")


def test_hostile_nodes_are_confined_or_failed_and_everyone_else_is_rotated(
    lab: LabHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {**lab.env, "SWEEPER_JOURNAL_PASSPHRASE": PASSPHRASE}.items():
        monkeypatch.setenv(name, value)
    args = planted_scan_args(lab)
    _, before = run.scan(lab.inventory, tmp_path / "before", *args)
    (source,) = (tmp_path / "before").glob("*.json")
    partner = {
        c["sha256"]
        for n in before["nodes"]
        for c in n["certificates"]
        if "Partner Federation Root" in c["subject"]
    }
    assert any(f["rule"] == "unapproved-name" and f["node"] == "hostile-01" for f in before["findings"])

    done = run.sweeper(
        "rotate", str(lab.inventory), "--from", str(source), "--yes", "--force", "--max-failures", "1",
        "--journal", str(tmp_path / "journal"), "--out", str(tmp_path / "rot"),
    )  # fmt: skip
    report = run.only_report(tmp_path / "rot")
    assert set(report["rotation"]["failed"]) == {"hostile-03"}, done.stderr
    assert "new key refused" in report["rotation"]["failed"]["hostile-03"]
    new_root = openssl("x509", "-in", tmp_path / "journal" / "new-root.pem", "-noout", "-subject", "-nameopt",
                       "RFC2253").split("=", 1)[1].strip()  # fmt: skip

    allowed = {n["name"]: {n["host"], *n["names"]} for n in tomllib.loads(lab.inventory.read_text())["nodes"]}
    for node, paths in leaves(lab).items():
        for cert in paths:
            issuer, text = described(cert)
            if node == "hostile-03":
                assert issuer != new_root, "nothing is signed for a node that did not prove its key"
                continue
            assert issuer == new_root, (node, cert)
            assert "CA:FALSE" in text and "Certificate Sign" not in text and "CRL Sign" not in text
            for refused in ("Code Signing", "OCSP Signing", "Any Extended Key Usage"):
                assert refused not in text, (node, cert)
            sans = text.split("X509v3 Subject Alternative Name:", 1)[1].split("\n", 2)[1].strip()
            names = {part.split(":", 1)[1] for part in sans.split(", ")}
            assert names <= allowed[node], (node, names - allowed[node])
    hostile_names = described(leaves(lab)["hostile-01"][0])[1]
    assert "vc-01" not in hostile_names and "*." not in hostile_names and "bank" not in hostile_names

    assert partner and not partner & set(report["plan"]["remove"]), "a good CA a forged leaf named is kept"
    bundle = lab.dir / "nodes/hostile-02/etc/pki/ca-trust/source/anchors/corp-bundle.pem"
    assert "Partner Federation Root CA" in openssl("storeutl", "-noout", "-text", bundle), "and stays trusted"


def test_a_flooding_lab_node_is_an_error_naming_the_cap_and_the_sweep_stays_small(tmp_path: Path) -> None:
    """The lab's flood node holds a 1 GiB trust bundle: its read stops at --max-node-bytes (the
    node sees the sizes and sends nothing), the rest of the fleet is swept, the sweep stays small."""
    with start_lab(tmp_path / "lab", nodes=5, hostile=(FLOOD,)) as lab:
        proc = run.start("scan", lab.inventory, "--out", tmp_path / "reports", env=lab.env)
        done, peak = run.finish_measured(proc)
    print(f"peak RSS of sweeper with the lab's flood node: {peak / 2**20:.0f} MiB")
    nodes = {n["name"]: n for n in run.only_report(tmp_path / "reports", done.stderr)["nodes"]}
    assert nodes.pop("hostile-01")["error"].endswith("past --max-node-bytes (67108864 bytes): not read")
    assert all(n["status"] == "ok" for n in nodes.values()), nodes
    assert peak < 300 * 2**20
