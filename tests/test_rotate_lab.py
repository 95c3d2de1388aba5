"""The whole story on the lab's planted incident: scan, rotate (VECS included), rescan, roll back.

Checked independently with the openssl CLI and the lab's own files, not through sweeper's parser.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from sweeper.lab import LabHandle
from tests.support import run
from tests.support.labs import own_lab, planted_scan_args

PASSPHRASE = "lab rotation test"
VECS = "var/lib/vmware/vmafd/vecs"


lab, lab_secrets = own_lab(nodes=6, passphrase=PASSPHRASE)


def scan(lab: LabHandle, out: Path, expected_roots: Path | None = None) -> dict[str, Any]:
    args = planted_scan_args(lab)
    if expected_roots is not None:
        args[args.index("--expected-roots") + 1] = str(expected_roots)
    return run.scan(lab.inventory, out, *args)[1]


def openssl_verifies(cert: Path, anchors: list[Path], tmp: Path) -> bool:
    bundle = tmp / f"anchors-{cert.parent.name}-{cert.name}.pem"
    bundle.write_bytes(b"".join(a.read_bytes() + b"\n" for a in anchors))
    done = subprocess.run(
        ["openssl", "verify", "-CAfile", str(bundle), str(cert)], capture_output=True, check=False
    )
    return done.returncode == 0


def crl_verifies(crl: Path, issuer: Path) -> bool:
    done = subprocess.run(
        ["openssl", "crl", "-in", str(crl), "-CAfile", str(issuer), "-noout"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode == 0 and "verify OK" in done.stderr + done.stdout


def crl_files(lab: LabHandle) -> dict[str, bytes]:
    """Every CRL file on every node (folders and VECS), by path."""
    nodes = lab.dir / "nodes"
    paths = [*nodes.glob("*/etc/pki/tls/crl/*"), *nodes.glob(f"*/{VECS}/TRUSTED_ROOT_CRLS/*/crl.pem")]
    return {str(p.relative_to(nodes)): p.read_bytes() for p in paths}


def fingerprint(cert: Path) -> str:
    out = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-fingerprint", "-sha256"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split("=", 1)[1].strip().replace(":", "").lower()


def x509(cert: Path, *args: str) -> str:
    command = ["openssl", "x509", "-in", str(cert), "-noout", *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def public_key(path: Path) -> str:
    """The public half of a certificate or a private key, by the openssl CLI."""
    if "CERTIFICATE" in path.read_text():
        return x509(path, "-pubkey")
    command = ["openssl", "pkey", "-in", str(path), "-pubout"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def vpx_ext(root: Path) -> str:
    """VCDB's extension rows, read through the node's psql as vCert reads them."""
    psql = root / "opt/vmware/vpostgres/current/bin/psql"
    sql = "SELECT ext_id, COALESCE(thumbprint, 'NULL') FROM vpx_ext ORDER BY ext_id"  # NULL is not ''
    command = [str(psql), "-d", "VCDB", "-U", "postgres", "-t", "-A", "-c", sql]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def sha1_colons(cert: Path) -> str:
    return x509(cert, "-fingerprint", "-sha1").split("=", 1)[1].strip().upper()


def assert_vcenter_invariants(root: Path, fqdn: str, before: dict[str, Any]) -> None:
    """What vCert would check after the rotation, read from the node's files and its own tools."""
    vecs = root / VECS
    machine = vecs / "MACHINE_SSL_CERT" / "__MACHINE_CERT"
    assert f"DNS:{fqdn}" in x509(machine / "cert.pem", "-ext", "subjectAltName"), "the PNID stays"
    data = vecs / "data-encipherment" / "data-encipherment"
    assert public_key(data / "key.pem") == before["data_key"], "data-encipherment keeps its key"
    assert x509(data / "cert.pem", "-fingerprint") != before["data_cert"]
    usage = x509(data / "cert.pem", "-ext", "keyUsage")
    assert "Key Encipherment" in usage and "Data Encipherment" in usage
    sts = vecs / "STS_INTERNAL_SSL_CERT" / "__MACHINE_CERT"
    assert (sts / "cert.pem").read_bytes() == (machine / "cert.pem").read_bytes()
    assert public_key(sts / "key.pem") == public_key(machine / "key.pem")
    sms = vecs / "SMS" / "sms_self_signed" / "cert.pem"
    assert x509(sms, "-fingerprint") != before["sms"], "vmware-sps made a new one"
    assert x509(sms, "-subject").split("=", 1)[1] == x509(sms, "-issuer").split("=", 1)[1], "self-signed"
    for anchor in (vecs / "TRUSTED_ROOTS").glob("*/cert.pem"):
        sha1 = x509(anchor, "-fingerprint", "-sha1").split("=", 1)[1].strip().replace(":", "").lower()
        assert anchor.parent.name == sha1, "TRUSTED_ROOTS aliases are the SHA-1"
    for store in ("BACKUP_STORE", "BACKUP_STORE_H5C"):
        assert not list((vecs / store).iterdir()), f"{store} cleared"
    assert not (vecs / "MACHINE_SSL_CERT" / "__MACHINE_CSR").exists()
    rows = dict(line.split("|") for line in vpx_ext(root).split())
    extension = sha1_colons(vecs / "vpxd-extension" / "vpxd-extension" / "cert.pem")
    for ext in ("com.vmware.vim.eam", "com.vmware.rbd", "com.vmware.imagebuilder", "com.vmware.vcIntegrity"):
        assert rows[ext] == extension, ext
    assert rows["com.vmware.vlcm.client"] == extension
    assert rows["com.vmware.vsan.health"] == sha1_colons(machine / "cert.pem")
    assert rows["com.vmware.vmcam"] == sha1_colons(root / "var/lib/vmware/vmcam/ssl/rui.crt")
    starts = [
        line for line in (root / "var/log/lab-services.log").read_text().splitlines() if "--start" in line
    ]
    assert starts[-1] == "service-control --start --all --vmon-profile HAActive", "vCenter HA's profile"


def vcenter_state(root: Path) -> dict[str, Any]:
    vecs = root / VECS
    assert "com.vmware.rbd|NULL" in vpx_ext(root).split(), "a NULL thumbprint, for rollback to keep"
    return {
        "data_key": public_key(vecs / "data-encipherment" / "data-encipherment" / "key.pem"),
        "data_cert": x509(vecs / "data-encipherment" / "data-encipherment" / "cert.pem", "-fingerprint"),
        "sms": x509(vecs / "SMS" / "sms_self_signed" / "cert.pem", "-fingerprint"),
        "vpx_ext": vpx_ext(root),
        "entries": sorted(str(p.relative_to(vecs)) for p in vecs.glob("*/*/cert.pem")),
    }


def inventory_nodes(lab: LabHandle) -> list[dict[str, Any]]:
    import tomllib

    return tomllib.loads(lab.inventory.read_text())["nodes"]


def test_rotation_fixes_the_incident_on_every_profile_and_rollback_restores_it(
    lab: LabHandle, tmp_path: Path
):
    before = scan(lab, tmp_path / "before")
    crls_before = crl_files(lab)
    assert {f["rule"] for f in before["findings"]} >= {"compromised-issuer", "revoked", "rogue-root"}
    (source,) = (tmp_path / "before").glob("*.json")
    vcenters = {n["name"]: Path(n["root"]) for n in inventory_nodes(lab) if n["profile"] == "vcsa"}
    assert any(n["profile"] == "esxi" and n.get("restart") for n in inventory_nodes(lab))
    vcenters_before = {name: vcenter_state(root) for name, root in vcenters.items()}
    assert all((root / VECS / "STS_INTERNAL_SSL_CERT").is_dir() for root in vcenters.values()), (
        "the lab's vCenter has every store this test checks"
    )

    rekey = run.sweeper(
        "rotate",
        lab.inventory,
        "--from",
        source,
        "--dry-run",
        "--show-scripts",
        "--new-data-encipherment-key",
        "--journal",
        tmp_path / "dry",
    )
    assert rekey.returncode == 0, rekey.stderr
    assert "WARNING" in rekey.stderr and "guest-customization passwords" in rekey.stderr
    shown = rekey.stdout  # the vCenter scripts as they would run, placeholders for what only a run knows
    assert "psql -d VCDB -U postgres -t -A -c 'UPDATE vpx_ext SET thumbprint" in shown
    assert "--stop vmware-sps; " in shown and "--store MACHINE_SSL_CERT --alias __MACHINE_CSR -y" in shown
    assert lab.env["SWEEPER_LAB_SSO_PASSWORD"] not in shown

    done = run.rotate(lab.inventory, source, tmp_path / "journal", tmp_path / "rotate")
    assert done.returncode == 0, done.stderr
    (report_path,) = (tmp_path / "rotate").glob("*.json")
    report = json.loads(report_path.read_text())
    assert report["rotation"]["complete"] and report["rotation"]["purged"]
    compromised = fingerprint(lab.dir / "incident" / "compromised-ca.pem")

    for node in inventory_nodes(lab):
        root = Path(node["root"])
        if node["profile"] == "vcsa":
            anchors = sorted((root / VECS / "TRUSTED_ROOTS").glob("*/cert.pem"))
            machine = root / VECS / "MACHINE_SSL_CERT" / "__MACHINE_CERT" / "cert.pem"
            assert openssl_verifies(machine, anchors, tmp_path), node["name"]
            assert compromised not in {fingerprint(a) for a in anchors}
            assert not list((root / VECS / "BACKUP_STORE").glob("*/key.pem")), "old keys cleared"
            published = sorted((lab.dir / "vmdir" / "certs").glob("*/cert.pem"))
            assert compromised not in {fingerprint(p) for p in published}, "unpublished from VMware Directory"
            crls = sorted((root / VECS / "TRUSTED_ROOT_CRLS").glob("*/crl.pem"))
            assert any(crl_verifies(c, tmp_path / "journal" / "new-root.pem") for c in crls), "new root's CRL"
            assert_vcenter_invariants(root, f"{node['name']}.lab.sweeper.test", vcenters_before[node["name"]])
        else:
            if (
                node.get("restart") and node["profile"] == "esxi"
            ):  # its own restart: auto-backup.sh still runs
                log = (root / "var/log/lab-services.log").read_text().splitlines()
                before_restart = log[: log.index("hostd restart")]
                assert before_restart.count("auto-backup.sh ") == 2, "after the trust phase and the re-issue"
                assert "vpxa restart" not in log, "the inventory's restart, not the profile's"
            stores = node.get("stores") or [
                {"kind": "pem", "cert": "/etc/vmware/ssl/rui.crt"},
                {"kind": "bundle", "path": "/etc/vmware/ssl/castore.pem"},
            ]
            anchors = [
                root / s["path"].lstrip("/")
                for s in stores
                if s["kind"] == "bundle" and s.get("role") != "crl"
            ]
            for crl_dir in (root / s["path"].lstrip("/") for s in stores if s.get("role") == "crl"):
                (ours,) = crl_dir.glob("sweeper-*.crl.pem")
                assert crl_verifies(ours, tmp_path / "journal" / "new-root.pem")
            for leaf in (root / s["cert"].lstrip("/") for s in stores if s["kind"] == "pem"):
                assert openssl_verifies(leaf, anchors, tmp_path), (node["name"], leaf)

    # what the fleet should trust now: the new root, and the anchors that were never in question
    expected = tmp_path / "expected-now.pem"
    expected.write_bytes(
        (tmp_path / "journal" / "new-root.pem").read_bytes()
        + (lab.dir / "incident" / "expected-roots.pem").read_bytes()
    )
    after = scan(lab, tmp_path / "after", expected_roots=expected)
    serious = [
        (f["rule"], f["node"], f["entry"], f["message"])
        for f in after["findings"]
        if f["severity"] not in ("info", "low")
    ]
    assert serious == []

    rolled = run.sweeper("rollback", tmp_path / "journal")
    assert rolled.returncode == 0, rolled.stderr
    restored = scan(lab, tmp_path / "restored")

    def certificates(doc: dict[str, Any]) -> set[tuple[str, str, str, str]]:
        return {
            (n["name"], c["store"], c["entry"], c["sha256"]) for n in doc["nodes"] for c in n["certificates"]
        }

    assert certificates(restored) == certificates(before)
    for name, root in vcenters.items():
        assert vcenter_state(root) == vcenters_before[name], "VCDB rows and every VECS entry as they were"
    assert crl_files(lab) == crls_before, "the CRL stores are as they were"


def test_the_verify_sweep_judges_by_the_scans_inputs_and_fails_on_a_root_planted_after_it(
    lab: LabHandle, tmp_path: Path
):
    """The rotation's own verify sweep re-reads the --from scan's incident files (recorded with their
    SHA-256) and expects its roots plus the new one: a root planted after that scan stays rogue."""
    before = scan(lab, tmp_path / "before")
    recorded = {(item["kind"], Path(item["path"]).name) for item in before["run"]["inputs"]}
    assert {kind for kind, _ in recorded} == {"crl", "ioc", "compromised-ca", "expected-roots"}
    for item in before["run"]["inputs"]:
        digest = subprocess.run(["sha256sum", item["path"]], capture_output=True, text=True, check=True)
        assert digest.stdout.split()[0] == item["sha256"]
    (source,) = (tmp_path / "before").glob("*.json")

    esx = next(n for n in inventory_nodes(lab) if n["profile"] == "esxi")
    castore = Path(esx["root"]) / "etc/vmware/ssl/castore.pem"
    planted = tmp_path / "planted.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "planted.key"),
         "-out", str(planted), "-subj", "/CN=Planted After The Scan", "-days", "30"],
        capture_output=True, check=True,
    )  # fmt: skip
    castore.write_bytes(castore.read_bytes() + planted.read_bytes())

    done = run.rotate(lab.inventory, source, tmp_path / "journal", tmp_path / "rotate")
    try:
        assert done.returncode == 1, done.stderr
        assert "its verify sweep finds high or worse: rogue-root" in done.stderr
        report = run.only_report(tmp_path / "rotate")
        assert report["rotation"]["complete"]
        assert report["run"]["inputs"] == before["run"]["inputs"]
        rogue = [f for f in report["findings"] if f["rule"] == "rogue-root"]
        assert [(f["node"], f["sha256"]) for f in rogue] == [(esx["name"], fingerprint(planted))]
    finally:
        rolled = run.sweeper("rollback", tmp_path / "journal")
        assert rolled.returncode == 0, rolled.stderr
        castore.write_bytes(castore.read_bytes().replace(planted.read_bytes(), b""))


def test_a_rotation_refuses_an_input_changed_since_its_scan(lab: LabHandle, tmp_path: Path):
    """The verify sweep must judge by what the scan judged by: an edited IOC file stops the rotation
    before any change (exit 2, one line naming the file)."""
    scan(lab, tmp_path / "before")
    (source,) = (tmp_path / "before").glob("*.json")
    report = json.loads(source.read_text())
    ioc = Path(next(item["path"] for item in report["run"]["inputs"] if item["kind"] == "ioc"))
    original = ioc.read_bytes()
    ioc.write_bytes(original + b"\n# edited after the scan\n")
    try:
        done = run.rotate(lab.inventory, source, tmp_path / "journal", tmp_path / "rotate")
    finally:
        ioc.write_bytes(original)
    assert done.returncode == 2
    assert (
        done.stderr.splitlines()[-1]
        == f"sweeper: {ioc}: changed since the run that recorded it as its --ioc input"
    )
    assert "[1/" not in done.stderr, "refused before any node was swept"
    assert not (tmp_path / "journal").exists()
