"""A lab vCenter with a real VMware Directory (OpenLDAP slapd): the rotation keeps what its services
need, the prechecks refuse before any change, rollback restores every directory object exactly,
and a VECS-only change breaks the lab's vCenter as it would break a real one.

Checked with the real OpenLDAP clients and openssl, not through sweeper's own readers.
"""

from __future__ import annotations

import base64
import subprocess
import threading
from pathlib import Path

from sweeper.errors import EXIT_ROTATION_STOPPED
from sweeper.health import MAX_CRLS
from sweeper.lab import LabHandle
from sweeper.lab.vcsa import VCDB
from sweeper.platforms.vcdb import PSQL
from sweeper.platforms.vcsa import SOLUTION_USERS, VMON_START_PROFILE
from tests.support import run
from tests.support.journal_watch import KILLED, Steps, journal_steps, kill_when, step_spans
from tests.support.labs import logins, own_lab, planted_scan_args
from tests.support.openssl_pki import OpenSSLPki

PASSPHRASE = "vcenter lab test"
VECS = "var/lib/vmware/vmafd/vecs"
ADMIN = "cn=administrator,cn=users,dc=vsphere,dc=local"


lab, lab_secrets = own_lab(nodes=5, passphrase=PASSPHRASE)


def vcenter(lab: LabHandle) -> Path:
    (root,) = (lab.dir / "nodes").glob("vc-*")
    return root


def ldapsearch(lab: LabHandle, base: str = "dc=vsphere,dc=local", *args: str) -> str:
    uri = (lab.dir / "vmdir" / "ldap.uri").read_text().strip()
    done = subprocess.run(
        ["ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-x", "-H", uri, "-D", ADMIN, "-w", lab.sso_password]
        + ["-b", base, *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def ldap(lab: LabHandle, tool: str, *args: str, input: str | None = None) -> None:
    uri = (lab.dir / "vmdir" / "ldap.uri").read_text().strip()
    command = [tool, "-x", "-H", uri, "-D", ADMIN, "-w", lab.sso_password, *args]
    subprocess.run(command, input=input, capture_output=True, text=True, check=True)


def objects(ldif: str) -> list[str]:
    """Each object's LDIF exactly as printed, by DN: the server's order of objects is its own."""
    return sorted(block.strip() for block in ldif.split("\n\n") if block.strip())


def values(ldif: str, attribute: str) -> list[bytes]:
    found = []
    for line in ldif.splitlines():
        if line.startswith(f"{attribute}:: "):
            found.append(base64.b64decode(line.split(":: ", 1)[1]))
        elif line.startswith(f"{attribute}: "):
            found.append(base64.b64decode(line.split(": ", 1)[1]))
    return found


def der(path: Path) -> bytes:
    return subprocess.run(
        ["openssl", "x509", "-in", str(path), "-outform", "DER"], capture_output=True, check=True
    ).stdout


def source_report(lab: LabHandle, out: Path) -> Path:
    args = planted_scan_args(lab)
    run.scan(lab.inventory, out, "--limit", vcenter(lab).name, *args)
    (report,) = out.glob("*.json")
    return report


def service_control_start(root: Path) -> subprocess.CompletedProcess[str]:
    """`service-control --start --all` as sweeper runs it (HAActive on a vCenter HA node)."""
    start_profile = root / VMON_START_PROFILE.lstrip("/")
    ha = start_profile.exists() and "HACore" in start_profile.read_text()
    profile = ["--vmon-profile", "HAActive"] if ha else []
    return subprocess.run(
        [str(root / "usr/bin/service-control"), "--start", "--all", *profile], capture_output=True, text=True
    )


def test_prechecks_refuse_before_any_change(lab: LabHandle, tmp_path: Path):
    root = vcenter(lab)
    source = source_report(lab, tmp_path / "before")
    directory = ldapsearch(lab)
    state = root / "var/lib/vmware/vmdir/state"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text("ReadOnly\n")
    try:
        done = run.rotate(lab.inventory, source, tmp_path / "j1", tmp_path / "r1", "--limit", root.name)
    finally:
        state.unlink()
    assert done.returncode == 2
    assert f"node '{root.name}': VMware Directory is not Normal (ReadOnly)" in done.stderr

    wrong = {**lab.env, lab.sso_password_env: "not-the-password"}
    done = run.rotate(
        lab.inventory, source, tmp_path / "j2", tmp_path / "r2", "--limit", root.name, env=wrong
    )
    assert done.returncode == 2 and "SSO credentials do not bind" in done.stderr, done.stderr

    machine_id = (root / "var/lib/vmware/vmafd/machine-id").read_text().strip()
    principal = f"cn=wcp-{machine_id},cn=ServicePrincipals,dc=vsphere,dc=local"
    saved = ldapsearch(lab, principal)
    ldap(lab, "ldapdelete", principal)
    try:
        done = run.rotate(lab.inventory, source, tmp_path / "j3", tmp_path / "r3", "--limit", root.name)
    finally:
        ldap(lab, "ldapadd", input=saved)
    assert done.returncode == 2
    assert f"ServicePrincipal wcp-{machine_id} is missing from dir-cli service list" in done.stderr
    assert not [j for j in ("j1", "j2", "j3") if (tmp_path / j).exists()]
    assert objects(ldapsearch(lab)) == objects(directory)


def test_an_unreachable_vcdb_refuses_the_rotation_before_any_change(lab: LabHandle, tmp_path: Path):
    root = vcenter(lab)
    source = source_report(lab, tmp_path / "before")
    directory = ldapsearch(lab)
    vecs = sorted((p, p.read_bytes()) for p in (root / VECS).rglob("*") if p.is_file())
    database = root / VCDB.lstrip("/")
    aside = database.with_name("VCDB.sqlite.aside")
    database.rename(aside)  # as a stopped vPostgres: psql cannot connect to VCDB
    try:
        done = run.rotate(lab.inventory, source, tmp_path / "j", tmp_path / "r", "--limit", root.name)
    finally:
        aside.rename(database)
    assert done.returncode == 2, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("sweeper: ")]
    assert line.startswith(f"sweeper: node '{root.name}': VCDB is not reachable with {PSQL}: "), line
    assert 'database "VCDB" does not exist' in line and "nothing was changed" in line
    assert not (tmp_path / "j").exists()
    assert objects(ldapsearch(lab)) == objects(directory)
    assert sorted((p, p.read_bytes()) for p in (root / VECS).rglob("*") if p.is_file()) == vecs


def test_rotation_keeps_the_vcenter_invariants_and_rollback_restores_the_directory_exactly(
    lab: LabHandle, tmp_path: Path
):
    root = vcenter(lab)
    vecs = root / VECS
    machine_id = (root / "var/lib/vmware/vmafd/machine-id").read_text().strip()
    source = source_report(lab, tmp_path / "before")
    directory = ldapsearch(lab)

    seen: set[str] = set()
    stop = threading.Event()

    def watch_ps() -> None:  # the lab's nodes run on this machine: their argv is ps's
        while not stop.is_set():
            seen.update(
                subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()
            )
            stop.wait(0.1)

    watcher = threading.Thread(target=watch_ps)
    watcher.start()
    try:
        done = run.rotate(
            lab.inventory, source, tmp_path / "journal", tmp_path / "rotate", "--limit", root.name
        )
    finally:
        stop.set()
        watcher.join()
    assert done.returncode == 0, done.stderr
    assert not [line for line in seen if lab.sso_password in line], "the SSO password showed in ps"
    spans = step_spans(tmp_path / "journal", "reissue-vecs:")
    first_end = min(end for _, end in spans)
    assert len([start for start, _ in spans if start < first_end]) > 1, (
        f"the VECS entries ran one by one: {spans}"
    )

    new_root = der(tmp_path / "journal" / "new-root.pem")
    for su in SOLUTION_USERS:
        principal = ldapsearch(lab, f"cn={su}-{machine_id},cn=ServicePrincipals,dc=vsphere,dc=local")
        assert values(principal, "userCertificate") == [der(vecs / su / su / "cert.pem")], su
    sts = ldapsearch(
        lab, "cn=Tenants,cn=IdentityManager,cn=Services,dc=vsphere,dc=local", "(cn=TenantCredential-*)"
    )
    assert sts.count("dn: ") == 1 and values(sts, "userCertificate")[1] == new_root
    machine_ssl = der(vecs / "MACHINE_SSL_CERT" / "__MACHINE_CERT" / "cert.pem")
    registrations = ldapsearch(lab, "cn=Sites,cn=Configuration,dc=vsphere,dc=local")
    pins = values(registrations, "vmwLKUPEndpointSslTrust") + values(registrations, "vmwLKUPSslTrustAnchor")
    assert len(pins) == 3 and set(pins) == {machine_ssl}  # current, legacy and the vmon ghost
    assert service_control_start(root).returncode == 0
    check = run.sweeper("check", lab.inventory, "--out", tmp_path / "check")
    assert check.returncode == 0, check.stdout
    assert run.only_report(tmp_path / "check")["run"]["kind"] == "check"

    done = run.sweeper("rollback", tmp_path / "journal")
    assert done.returncode == 0, done.stderr
    assert objects(ldapsearch(lab)) == objects(directory), "VMware Directory not restored byte for byte"
    assert service_control_start(root).returncode == 0


def test_the_verify_checks_each_rotated_vcenter_over_the_rotations_own_login(
    lab: LabHandle, tmp_path: Path, openssl_pki: OpenSSLPki
):
    """A vCenter holding more CRLs than its services start with in good time: the rotation's steps
    all pass, the verify's vCenter check (as `sweeper check`) says so and fails the node. The
    precheck runs over the preflight sweep's login, the check over the rotation's."""
    root = vcenter(lab)
    source = source_report(lab, tmp_path / "before")
    planted = [root / VECS / "TRUSTED_ROOT_CRLS" / f"planted-{n}" for n in range(MAX_CRLS + 1)]
    for entry in planted:  # as the lab's vecs-cli keeps a CRL entry
        entry.mkdir()
        (entry / "crl.pem").write_bytes(openssl_pki.root_crl.read_bytes())
    try:
        before = logins(lab, root.name)
        done = run.rotate(
            lab.inventory, source, tmp_path / "journal", tmp_path / "rotate", "--limit", root.name
        )
        during = logins(lab, root.name) - before
        rolled = run.sweeper("rollback", tmp_path / "journal")
    finally:
        for entry in planted:
            (entry / "crl.pem").unlink()
            entry.rmdir()
    assert done.returncode == EXIT_ROTATION_STOPPED, done.stderr
    report = run.only_report(tmp_path / "rotate")
    (failure,) = report["rotation"]["failed"].items()
    assert failure[0] == root.name and failure[1].startswith("vCenter check: ")
    assert f"CRLs in TRUSTED_ROOT_CRLS (more than {MAX_CRLS})" in failure[1]
    assert [f["rule"] for f in report["findings"] if f["rule"].startswith("vcenter-")] == [
        "vcenter-crl-count"
    ]
    assert during == 2, "logins: the preflight sweep and its vCenter precheck, the rotation and its check"
    assert rolled.returncode == 0, rolled.stderr


def test_a_vecs_only_change_breaks_the_lab_vcenter_and_check_reports_the_mismatch(
    lab: LabHandle, tmp_path: Path
):
    root = vcenter(lab)
    vpxd = root / VECS / "vpxd" / "vpxd" / "cert.pem"
    kept = vpxd.read_bytes()
    vpxd.write_bytes((root / VECS / "machine" / "machine" / "cert.pem").read_bytes())  # VMDir not updated
    try:
        started = service_control_start(root)
        check = run.sweeper("check", lab.inventory, "--out", tmp_path / "check")
    finally:
        vpxd.write_bytes(kept)
    assert started.returncode != 0
    assert (
        "Failed to start vmware-vpxd services" in started.stderr and "solution user vpxd-" in started.stderr
    )
    assert check.returncode == 1
    findings = run.only_report(tmp_path / "check")["findings"]
    assert [(f["rule"], f["store"]) for f in findings] == [("vcenter-solution-user-mismatch", "vpxd")]
    assert "MISMATCH" in findings[0]["message"]


def test_an_sts_chain_to_an_unpublished_root_breaks_the_lab_vcenter_and_check_says_so(
    lab: LabHandle, tmp_path: Path
):
    root = vcenter(lab)
    dir_cli = root / "usr/lib/vmware-vmafd/bin/dir-cli"
    old_root = lab.dir / "incident" / "compromised-ca.pem"  # it signed the lab's STS certificate

    def trustedcert(verb: str) -> None:
        subprocess.run(
            [str(dir_cli), "trustedcert", verb, "--cert", str(old_root)],
            input=lab.sso_password + "\n",
            capture_output=True,
            text=True,
            check=True,
        )

    trustedcert("unpublish")
    try:
        started = service_control_start(root)
        check = run.sweeper("check", lab.inventory, "--out", tmp_path / "check")
    finally:
        trustedcert("publish")
    assert started.returncode != 0 and "Failed to start vmware-stsd services" in started.stderr
    assert check.returncode == 1
    rules = {f["rule"] for f in run.only_report(tmp_path / "check")["findings"]}
    assert "vcenter-sts-unpublished-root" in rules
    assert service_control_start(root).returncode == 0


def test_a_rotation_killed_in_the_vcenter_steps_resumes_to_the_same_end(lab: LabHandle, tmp_path: Path):
    root = vcenter(lab)
    source = source_report(lab, tmp_path / "before")
    directory = ldapsearch(lab)
    journal = tmp_path / "journal"
    sts = ("trust", "replace-sts:STS vsphere.local")
    vpxd = ("reissue", "reissue-vecs:vpxd/vpxd")  # a solution user: VMware Directory, then VECS

    def sts_begun(steps: Steps) -> bool:
        return steps[(root.name, *sts)] != "pending"

    def solution_user_begun(steps: Steps) -> bool:
        return steps[(root.name, *vpxd)] != "pending"

    rotation = (
        "rotate",
        lab.inventory,
        "--from",
        source,
        "--yes",
        "--journal",
        journal,
        "--limit",
        root.name,
    )
    assert kill_when(run.start(*rotation, "--out", tmp_path / "r0"), journal, sts_begun) == KILLED
    resume = run.start("resume", journal, "--out", tmp_path / "r1")
    assert kill_when(resume, journal, solution_user_begun) == KILLED
    assert journal_steps(journal)[(root.name, *sts)] == "done"

    final = run.sweeper("resume", journal, "--out", tmp_path / "final")
    assert final.returncode == 0, final.stderr
    report = run.only_report(tmp_path / "final")
    assert report["rotation"]["complete"] is True
    assert all(s["state"] == "done" for s in report["steps"])
    assert service_control_start(root).returncode == 0
    check = run.sweeper("check", lab.inventory, "--out", tmp_path / "check")
    assert check.returncode == 0, check.stdout

    done = run.sweeper("rollback", journal)
    assert done.returncode == 0, done.stderr
    assert objects(ldapsearch(lab)) == objects(directory), "VMware Directory not restored byte for byte"
    assert service_control_start(root).returncode == 0
