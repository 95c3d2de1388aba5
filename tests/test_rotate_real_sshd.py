"""`rotate`, `resume` and `rollback` end to end against real sshd nodes, checked with the openssl CLI."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import run
from tests.support.fixtures import write_inventory
from tests.support.journal_watch import KILLED, Steps, journal_steps, kill_when, states
from tests.support.node_tree import LinuxNodeTree, lay_linux_node_tree
from tests.support.sshd import Sshd

pytestmark = pytest.mark.skipif(not Path("/usr/sbin/sshd").exists(), reason="needs openssh-server")
PASSPHRASE = "journal pass for tests"


@pytest.fixture(autouse=True)
def journal_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every sweeper these tests start finds the journal passphrase in its environment."""
    monkeypatch.setenv("SWEEPER_JOURNAL_PASSPHRASE", PASSPHRASE)


def rotate(
    inventory: Path,
    source: Path,
    tmp_path: Path,
    *extra: str,
    journal: str = "journal",
    out: str = "rot",
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return run.rotate(inventory, source, tmp_path / journal, tmp_path / out, *extra, env=env)


def openssl(*args: str, stdin: bytes | None = None) -> str:
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, check=True).stdout.decode()


def fleet(
    tmp_path: Path,
    sshd_factory,
    client_key,
    openssl_pki,
    count: int = 2,
    restart: str = "echo restarted >> {root}/restart.log",
    **defaults: Any,
) -> tuple[Path, list[LinuxNodeTree], list[Sshd]]:
    """`count` Linux nodes n0, n1, ... on real sshds, their trees, and their inventory; `restart`
    is each node's restart command, `{root}` its tree."""
    servers = sshd_factory(count)
    leaves = [openssl_pki.leaf_rsa, openssl_pki.leaf_ec, openssl_pki.weak_rsa1024][:count]
    trees = [lay_linux_node_tree(tmp_path / f"n{i}", openssl_pki, leaf=leaf) for i, leaf in enumerate(leaves)]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("".join(s.host_key_line + "\n" for s in servers))
    nodes = [
        {
            "name": f"n{i}",
            "host": s.host,
            "port": s.port,
            "profile": "linux",
            "root": str(t.root),
            "names": list(t.names),
            "stores": [st for st in t.stores if st["kind"] != "dir"],
            "restart": restart.format(root=t.root),
        }
        for i, (s, t) in enumerate(zip(servers, trees, strict=True))
    ]
    inventory = write_inventory(
        tmp_path / "inv.toml",
        nodes,
        {
            "user": "root",
            "known_hosts": str(known_hosts),
            "client_keys": [str(client_key.private_path)],
            **defaults,
        },
    )
    return inventory, trees, servers


def scan_report(tmp_path: Path, inventory: Path) -> Path:
    out = tmp_path / "scan"
    run.sweeper("scan", inventory, "--out", out)
    (report,) = out.glob("*.json")
    return report


def snapshot(trees: list[LinuxNodeTree]) -> dict[str, tuple[bytes, int]]:
    files = {}
    for tree in trees:
        for path in (tree.cert, tree.key, tree.trust_bundle):
            real = tree.host_path(path)
            files[str(real)] = (real.read_bytes(), real.stat().st_mode)
    return files


def subject_and_sans(cert: Path) -> tuple[str, str]:
    return (
        openssl("x509", "-in", str(cert), "-noout", "-subject"),
        openssl("x509", "-in", str(cert), "-noout", "-ext", "subjectAltName"),
    )


def test_rotation_replaces_everything_and_rollback_puts_it_back(
    tmp_path, sshd_factory, client_key, openssl_pki
):
    inventory, trees, servers = fleet(tmp_path, sshd_factory, client_key, openssl_pki)
    before_files = snapshot(trees)
    before_names = [subject_and_sans(t.host_path(t.cert)) for t in trees]
    source = scan_report(tmp_path, inventory)

    dry = run.sweeper(
        "rotate", inventory, "--from", source, "--dry-run", "--show-scripts", "--journal", tmp_path / "dry"
    )
    assert dry.returncode == 0 and "reissue" in dry.stderr and "add the new root" in dry.stderr
    assert snapshot(trees) == before_files and not (tmp_path / "dry").exists(), "--dry-run changes nothing"
    shown = dry.stdout
    assert "sw_put() {" in shown, "the helpers every script runs with, once"
    for tree in trees:  # each node's restart, and the install of its new leaf, as the node would run them
        assert f"echo restarted >> {tree.root}/restart.log" in shown
        assert f"sw_put {shlex.quote(str(tree.host_path(tree.cert)))} " in shown
    assert "<base64 of the new certificate" in shown
    refused = run.sweeper("rotate", inventory, "--from", source, "--show-scripts")
    assert refused.returncode == 2 and "--dry-run" in refused.stderr

    journal = tmp_path / "journal"
    logins = [server.connection_count() for server in servers]
    done = rotate(inventory, source, tmp_path)
    assert done.returncode == 0, done.stderr
    after_rotation = [server.connection_count() for server in servers]
    assert [n - b for n, b in zip(after_rotation, logins, strict=True)] == [2] * len(servers), (
        "a login for the preflight sweep, one for every phase and the verify sweep"
    )
    (report_path,) = (tmp_path / "rot").glob("*.json")
    report = json.loads(report_path.read_text())
    assert report["run"]["kind"] == "rotate" and report["rotation"]["complete"] is True
    new_root_sha = report["rotation"]["new_root"]["sha256"]

    assert_rotated(trees, openssl_pki)
    for tree, server, (old_subject, old_sans) in zip(trees, servers, before_names, strict=True):
        cert, key, bundle = (tree.host_path(p) for p in (tree.cert, tree.key, tree.trust_bundle))
        assert oct(key.stat().st_mode & 0o777) == "0o600"
        subject, sans = subject_and_sans(cert)
        common_name = f"CN = {tree.names[0]}\n"
        assert subject == f"subject={common_name}" and old_subject.endswith(common_name), "only the CN"
        old_names = old_sans.splitlines()[1].strip()
        assert sans.splitlines()[1].strip() == f"{old_names}, IP Address:{server.host}", "approved names kept"
        assert _shas(bundle.read_bytes()) == {new_root_sha}, "old root and intermediate purged"
        assert "restarted" in (tree.root / "restart.log").read_text()
    assert "PRIVATE KEY" not in report_path.read_text()
    assert not [f for f in report["findings"] if f["rule"] == "revoked-present"]

    rolled = run.sweeper("rollback", journal, "--out", tmp_path / "back")
    assert rolled.returncode == 0, rolled.stderr
    after_rollback = [server.connection_count() for server in servers]
    assert [n - b for n, b in zip(after_rollback, after_rotation, strict=True)] == [1] * len(servers), (
        "one login per node restores it and sweeps it after"
    )
    assert snapshot(trees) == before_files, "rollback restores every file byte for byte, mode too"
    rollback_report = run.only_report(tmp_path / "back")
    assert rollback_report["run"]["kind"] == "rollback" and rollback_report["rotation"]["complete"] is True
    assert {c["sha256"] for n in rollback_report["nodes"] for c in n["certificates"]} >= {
        openssl_pki.root.sha256
    }, "the sweep after the rollback shows the old root back"
    listed = run.sweeper("history", "--out", tmp_path / "back")
    assert "rollback" in listed.stdout, "the history's latest state is the rollback, not the rotation"


def test_rollback_restores_the_nodes_side_by_side(tmp_path, sshd_factory, client_key, openssl_pki):
    """Rollback went node after node: 190 nodes took 45 s, longer than their rotation, the fleet
    half old and half new all the while. Each node's restart (after its files are back) now
    overlaps the others'."""
    timeline = tmp_path / "restarts.log"
    restart = (
        f"echo start >> {timeline}; sleep 2; echo end >> {timeline}; echo restarted >> {{root}}/restart.log"
    )
    inventory, trees, _ = fleet(tmp_path, sshd_factory, client_key, openssl_pki, count=3, restart=restart)
    before_files = snapshot(trees)
    source = scan_report(tmp_path, inventory)
    assert rotate(inventory, source, tmp_path).returncode == 0
    timeline.write_text("")
    rolled = run.sweeper("rollback", tmp_path / "journal", "--out", tmp_path / "back")
    assert rolled.returncode == 0, rolled.stderr
    assert snapshot(trees) == before_files
    assert timeline.read_text().split() == ["start"] * 3 + ["end"] * 3, "every restart began before one ended"


def _shas(pem: bytes) -> set[str]:
    shas = set()
    for block in pem.split(b"-----END CERTIFICATE-----")[:-1]:
        der = subprocess.run(
            ["openssl", "x509", "-outform", "DER"],
            input=block + b"-----END CERTIFICATE-----\n",
            capture_output=True,
            check=True,
        ).stdout
        shas.add(hashlib.sha256(der).hexdigest())
    return shas


def test_a_node_that_fails_for_good_stops_the_wave_and_resume_finishes(
    tmp_path, sshd_factory, client_key, openssl_pki
):
    inventory, trees, _ = fleet(tmp_path, sshd_factory, client_key, openssl_pki, count=3)
    source = scan_report(tmp_path, inventory)
    broken = trees[1]
    # n1's restart fails until the operator fixes it: the canary (n0) passes, n1 fails, budget 0 stops.
    text = inventory.read_text().replace(
        f"echo restarted >> {broken.root}/restart.log",
        f"test -e {broken.root}/fixed && echo restarted >> {broken.root}/restart.log",
    )
    inventory.write_text(text)
    journal = tmp_path / "journal"
    done = rotate(inventory, source, tmp_path, "--canary", "1", "--wave", "1")
    assert done.returncode == 4, done.stderr
    assert "stopped at reissue" in done.stderr and "sweeper resume" in done.stderr
    assert "sweeper rollback" in done.stderr, "the way back is named too"
    bundle_before_purge = trees[0].host_path(trees[0].trust_bundle).read_bytes()
    assert openssl_pki.root.sha256 in _shas(bundle_before_purge), "no purge while a node is not re-issued"
    untouched = trees[2].host_path(trees[2].cert).read_bytes()
    assert untouched == openssl_pki.weak_rsa1024.cert.read_bytes(), "no new wave after the budget is spent"

    (broken.root / "fixed").touch()
    resumed = run.sweeper("resume", journal, "--out", tmp_path / "resumed")
    assert resumed.returncode == 0, resumed.stderr
    (path,) = (tmp_path / "resumed").glob("*.json")
    steps: list[dict[str, Any]] = json.loads(path.read_text())["steps"]
    canary_steps = [s for s in steps if s["node"] == "n0" and s["phase"] == "reissue"]
    assert canary_steps and all(s["attempts"] == 1 for s in canary_steps), "finished steps are not redone"
    for tree in trees:
        assert openssl_pki.root.sha256 not in _shas(tree.host_path(tree.trust_bundle).read_bytes())


def assert_rotated(trees: list[LinuxNodeTree], openssl_pki) -> None:
    """The end state of a good rotation, checked with openssl only."""
    for tree in trees:
        cert, key, bundle = (tree.host_path(p) for p in (tree.cert, tree.key, tree.trust_bundle))
        assert "OK" in openssl("verify", "-CAfile", str(bundle), str(cert))
        assert openssl("x509", "-in", str(cert), "-noout", "-pubkey") == openssl(
            "pkey", "-in", str(key), "-pubout"
        )
        assert openssl_pki.root.sha256 not in _shas(bundle.read_bytes())
        assert not list(cert.parent.glob(".sweeper*")) and not list(key.parent.glob(".sweeper*"))


def test_a_node_that_drops_mid_reissue_is_retried_and_finishes(
    tmp_path, sshd_factory, client_key, openssl_pki
):
    inventory, trees, _ = fleet(tmp_path, sshd_factory, client_key, openssl_pki)
    source = scan_report(tmp_path, inventory)
    victim = trees[0]
    # The first restart kills its own SSH session: the sshd process above the script's shells.
    drop_once = (
        f"if [ ! -e {victim.root}/dropped ]; then touch {victim.root}/dropped; "
        "p=$PPID; while ! grep -qx sshd /proc/$p/comm; do p=$(awk '{print $4}' /proc/$p/stat); done; "
        "kill -9 $p; exit 1; fi; "
        f"echo restarted >> {victim.root}/restart.log"
    )
    inventory.write_text(
        inventory.read_text().replace(f"echo restarted >> {victim.root}/restart.log", drop_once)
    )
    done = rotate(inventory, source, tmp_path, journal="j")
    assert done.returncode == 0, done.stderr
    assert (victim.root / "dropped").exists(), "the connection really dropped"
    (path,) = (tmp_path / "rot").glob("*.json")
    restart = next(
        s
        for s in json.loads(path.read_text())["steps"]
        if s["node"] == "n0" and s["step"].startswith("restart")
    )
    assert restart["state"] == "done" and restart["attempts"] == 2
    assert_rotated(trees, openssl_pki)


def test_kill_9_at_several_points_then_resume_reaches_the_same_end(
    tmp_path, sshd_factory, client_key, openssl_pki
):
    # connects wait as long as it takes (n2 is frozen below): no timer decides where a kill lands
    inventory, trees, servers = fleet(
        tmp_path, sshd_factory, client_key, openssl_pki, 3, connect_timeout=3600
    )
    source = scan_report(tmp_path, inventory)
    gate = tmp_path / "go"
    # n1's restart waits for the gate: a kill -9 lands while a step is journaled as running.
    blocked = f"while [ ! -e {gate} ]; do sleep 0.1; done; echo restarted >> {trees[1].root}/restart.log"
    inventory.write_text(
        inventory.read_text().replace(f"echo restarted >> {trees[1].root}/restart.log", blocked)
    )
    journal = tmp_path / "journal"
    rotation = ("rotate", inventory, "--from", source, "--yes", "--journal", journal, "--wave", "2")

    def mid_step(s: Steps) -> bool:  # n1's restart waits at the gate, the rest of its wave is done
        return s["n1", "reissue", "restart:services"] == "running" and states(s, "n2", "reissue") == {"done"}

    def mid_purge(s: Steps) -> bool:  # n0 and n1 purged; n2 frozen (below), so its purge waits
        return states(s, "n0", "purge") == states(s, "n1", "purge") == {"done"}

    def last_purge_begun(s: Steps) -> bool:
        return states(s, "n2", "purge") != {"pending"}

    first = run.start(*rotation, "--out", tmp_path / "r0")
    assert kill_when(first, journal, mid_step) == KILLED
    gate.touch()

    os.kill(servers[2].pid, signal.SIGSTOP)
    try:
        resume = run.start("resume", journal, "--out", tmp_path / "r1")
        assert kill_when(resume, journal, mid_purge) == KILLED
    finally:
        os.kill(servers[2].pid, signal.SIGCONT)
    assert states(journal_steps(journal), "n2", "purge") == {"pending"}

    resume = run.start("resume", journal, "--out", tmp_path / "r2")
    # killed at once, or done already: that this resume got there first is no failure
    assert kill_when(resume, journal, last_purge_begun) in (KILLED, 0)

    final = run.sweeper("resume", journal, "--out", tmp_path / "final")
    assert final.returncode == 0, final.stderr
    (path,) = (tmp_path / "final").glob("*.json")
    report = json.loads(path.read_text())
    assert report["rotation"]["complete"] is True
    assert all(s["state"] == "done" for s in report["steps"])
    assert_rotated(trees, openssl_pki)
    rolled = run.sweeper("rollback", journal)
    assert rolled.returncode == 0, rolled.stderr
    for tree, leaf in zip(
        trees, [openssl_pki.leaf_rsa, openssl_pki.leaf_ec, openssl_pki.weak_rsa1024], strict=True
    ):
        assert tree.host_path(tree.cert).read_bytes() == leaf.cert.read_bytes()
        assert tree.host_path(tree.key).read_bytes() == leaf.key.read_bytes()


def test_a_resume_redoes_a_step_only_once_the_killed_runs_command_has_ended_on_the_node(
    tmp_path, sshd_factory, client_key, openssl_pki
):
    """kill -9 while a node's restart command runs: sshd lets that command run on without its
    client, and the resume does the step again after it, not beside it."""
    log = "{root}/restart.log"
    restart = f"echo start >> {log}; sleep 3; echo end >> {log}"
    inventory, trees, _ = fleet(tmp_path, sshd_factory, client_key, openssl_pki, 1, restart=restart)
    source = scan_report(tmp_path, inventory)
    journal = tmp_path / "journal"
    restart_log = trees[0].root / "restart.log"

    def restarting(s: Steps) -> bool:
        return s["n0", "reissue", "restart:services"] == "running" and restart_log.exists()

    first = run.start(
        *("rotate", inventory, "--from", source, "--yes", "--journal", journal), "--out", tmp_path / "r0"
    )
    assert kill_when(first, journal, restarting) == KILLED
    resumed = run.sweeper("resume", journal, "--out", tmp_path / "r1")
    assert resumed.returncode == 0, resumed.stderr
    assert restart_log.read_text().split() == ["start", "end", "start", "end"]
    assert "n0: waiting up to 300s for an earlier script still running there (process " in resumed.stderr


def test_a_step_whose_command_timed_out_is_done_again_only_once_that_command_has_ended(
    tmp_path, sshd_factory, client_key, openssl_pki
):
    """A restart that outlives the node's deadline runs on (sshd signals no root login's command),
    and the retried attempt waits for it before it restarts again."""
    log, once = "{root}/restart.log", "{root}/restarted-once"
    restart = (
        f"if [ -e {once} ]; then echo start >> {log}; echo end >> {log}; "
        f"else : > {once}; echo start >> {log}; sleep 6; echo end >> {log}; fi"
    )
    inventory, trees, _ = fleet(
        tmp_path, sshd_factory, client_key, openssl_pki, 1, restart=restart, deadline=3
    )
    source = scan_report(tmp_path, inventory)
    done = rotate(inventory, source, tmp_path)
    assert done.returncode == 0, done.stderr
    assert (trees[0].root / "restart.log").read_text().split() == ["start", "end", "start", "end"]


def test_a_node_where_an_earlier_script_outlasts_the_wait_fails_in_one_line_naming_it(
    tmp_path, sshd_factory, client_key, openssl_pki, monkeypatch
):
    import asyncio

    from sweeper.errors import CommandFailed
    from sweeper.inventory import load_inventory
    from sweeper.rotate import node as on_node
    from sweeper.rotate import remote
    from sweeper.ssh import Connector

    inventory, _, _ = fleet(tmp_path, sshd_factory, client_key, openssl_pki, 1, deadline=1)
    (node,) = load_inventory(inventory).nodes
    monkeypatch.setattr(on_node, "WAIT_AT_LEAST", 1)
    killed_runs = f"{remote.CHANGE_LABEL}{'0' * 16}-{'0' * 8}"
    leftover = subprocess.Popen(["sh", "-c", "sleep 60; :", killed_runs], start_new_session=True)

    async def wait() -> None:
        connector = Connector((node,))
        try:
            await connector.with_session(node, on_node.wait_for_earlier_scripts)
        finally:
            await connector.close()

    try:
        with pytest.raises(
            CommandFailed, match=rf"still running on the node after 1s \(process {leftover.pid}\)"
        ):
            asyncio.run(wait())
    finally:
        os.killpg(leftover.pid, signal.SIGKILL)
        leftover.wait()


def test_an_ecdsa_root_can_be_asked_for_and_the_rotation_report_signed(
    tmp_path, sshd_factory, client_key, openssl_pki
):
    inventory, trees, _ = fleet(tmp_path, sshd_factory, client_key, openssl_pki, count=1)
    source = scan_report(tmp_path, inventory)
    openssl("genpkey", "-algorithm", "ed25519", "-out", str(tmp_path / "sign.pem"))
    openssl("pkey", "-in", str(tmp_path / "sign.pem"), "-pubout", "-out", str(tmp_path / "sign.pub"))
    done = rotate(
        inventory,
        source,
        tmp_path,
        "--key-type",
        "ec-p384",
        "--sign",
        str(tmp_path / "sign.pem"),
        journal="j",
    )
    assert done.returncode == 0, done.stderr
    assert "ASN1 OID: secp384r1" in openssl(
        "x509", "-in", str(tmp_path / "j" / "new-root.pem"), "-noout", "-text"
    )
    assert_rotated(trees, openssl_pki)
    (report,) = (tmp_path / "rot").glob("*.json")
    assert run.sweeper("verify-report", report, "--pub", tmp_path / "sign.pub").returncode == 0


def test_an_enterprise_ca_with_an_encrypted_key_signs_the_new_leaves(
    tmp_path, sshd_factory, client_key, openssl_pki
):
    inventory, trees, _ = fleet(tmp_path, sshd_factory, client_key, openssl_pki, count=1)
    source = scan_report(tmp_path, inventory)
    ca_key, ca_cert = tmp_path / "ca.key", tmp_path / "ca.pem"
    openssl(
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:3072",
        "-aes256",
        "-pass",
        "pass:ca-secret",
        "-out",
        str(ca_key),
    )
    openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        str(ca_key),
        "-passin",
        "pass:ca-secret",
        "-subj",
        "/CN=Enterprise Issuing CA",
        "-days",
        "365",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-out",
        str(ca_cert),
    )
    ca = ("--ca-cert", str(ca_cert), "--ca-key", str(ca_key))
    wrong = rotate(inventory, source, tmp_path, *ca, journal="j", env={"SWEEPER_CA_PASSPHRASE": "nope"})
    assert wrong.returncode == 2 and "wrong passphrase" in wrong.stderr and not (tmp_path / "j").exists()
    done = rotate(inventory, source, tmp_path, *ca, journal="j", env={"SWEEPER_CA_PASSPHRASE": "ca-secret"})
    assert done.returncode == 0, done.stderr
    cert = trees[0].host_path(trees[0].cert)
    assert "Enterprise Issuing CA" in openssl("x509", "-in", str(cert), "-noout", "-issuer")
    assert_rotated(trees, openssl_pki)
    assert "ca-secret" not in done.stderr and "ca-secret" not in "".join(
        p.read_text() for p in (tmp_path / "rot").glob("*.json")
    )


NODE_TOOLS = (
    "sh",
    "cat",
    "stat",
    "base64",
    "sha256sum",
    "mktemp",
    "chmod",
    "chown",
    "mv",
    "rm",
    "mkdir",
    "dirname",
    "sync",
    "touch",
    "sleep",
    "grep",
    "awk",
    "kill",
    "setsid",
)


def test_a_node_without_openssl_gets_a_key_made_here_and_pushed(
    tmp_path, sshd_factory, client_key, openssl_pki
):
    bin_dir = tmp_path / "node-bin"  # the node's whole PATH: everyday tools, and no openssl
    bin_dir.mkdir()
    for tool in NODE_TOOLS:
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    (server,) = sshd_factory(1, session_path=str(bin_dir))
    tree = lay_linux_node_tree(tmp_path / "n0", openssl_pki)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(server.host_key_line + "\n")
    inventory = write_inventory(
        tmp_path / "inv.toml",
        [
            {
                "name": "n0",
                "host": server.host,
                "port": server.port,
                "profile": "linux",
                "root": str(tree.root),
                "stores": [st for st in tree.stores if st["kind"] != "dir"],
            },
        ],
        {"user": "root", "known_hosts": str(known_hosts), "client_keys": [str(client_key.private_path)]},
    )
    probe = subprocess.run(
        [
            "ssh",
            "-F",
            "none",  # not the user's ~/.ssh/config (ssh finds it by the password database, not HOME)
            "-i",
            str(client_key.private_path),
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-p",
            str(server.port),
            f"root@{server.host}",
            "command -v openssl || echo no-openssl",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "no-openssl", "the node really has no openssl"
    source = scan_report(tmp_path, inventory)
    leaf = next(
        c for c in run.only_report(tmp_path / "scan")["nodes"][0]["certificates"] if c["role"] == "leaf"
    )
    assert leaf["key"]["matches"] is True, "the key was read into memory to compare it"
    done = rotate(inventory, source, tmp_path)
    assert done.returncode == 0, done.stderr
    assert_rotated([tree], openssl_pki)
    assert oct(tree.host_path(tree.key).stat().st_mode & 0o777) == "0o600"
    assert "PRIVATE KEY" not in "".join(p.read_text() for p in (tmp_path / "rot").glob("*.json"))


def test_force_purges_despite_a_failed_node_and_says_so(tmp_path, sshd_factory, client_key, openssl_pki):
    inventory, trees, _ = fleet(tmp_path, sshd_factory, client_key, openssl_pki)
    source = scan_report(tmp_path, inventory)
    broken = trees[1]
    inventory.write_text(
        inventory.read_text().replace(f"echo restarted >> {broken.root}/restart.log", "false")
    )
    done = rotate(inventory, source, tmp_path, "--max-failures", "1", "--force")
    assert done.returncode == 4, done.stderr
    assert "--force: the purge ran although some nodes were not re-issued" in " ".join(done.stderr.split())
    report = run.only_report(tmp_path / "rot")
    assert report["rotation"]["purged"] is True and list(report["rotation"]["failed"]) == ["n1"]
    assert openssl_pki.root.sha256 not in _shas(trees[0].host_path(trees[0].trust_bundle).read_bytes())


def test_rotate_holds_nodes_to_max_node_bytes_and_its_journal_keeps_the_cap_for_resume(
    tmp_path, sshd_factory, client_key, openssl_pki
):
    inventory, trees, _ = fleet(tmp_path, sshd_factory, client_key, openssl_pki, count=1)
    source = scan_report(tmp_path, inventory)
    capped = rotate(inventory, source, tmp_path, "--dry-run", "--max-node-bytes", "1KiB", journal="dry")
    assert capped.returncode == 3 and "preflight: 1 node(s) could not be swept" in capped.stderr
    assert "--max-node-bytes (1024 bytes)" in capped.stderr

    done = rotate(inventory, source, tmp_path, "--max-node-bytes", "32MiB", journal="j")
    assert done.returncode == 0, done.stderr
    assert_rotated(trees, openssl_pki)
    with sqlite3.connect(tmp_path / "j" / "journal.sqlite") as db:
        (options,) = db.execute("SELECT value FROM meta WHERE key = 'options'").fetchone()
    assert json.loads(options)["max_node_bytes"] == 32 * 2**20
