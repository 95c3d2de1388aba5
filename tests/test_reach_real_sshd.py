"""Reaching nodes the way operators do, against real OpenSSH and real sudo: become, bastions, identities."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import run
from tests.support.fixtures import write_inventory
from tests.support.node_tree import HANGING_STORE, lay_hanging_vecs_cli, lay_linux_node_tree
from tests.support.processes import MARKER, left_running, named
from tests.support.sshd import free_port

SUDO_PASSWORD = "Sw33p-test-pw"
RUN = secrets.token_hex(3)  # users and sudoers of this run only: parallel runs must not share them
NOPW, PW, CSH = f"swp-nopw-{RUN}", f"swp-pw-{RUN}", f"swp-csh-{RUN}"
TCSH = Path("/usr/bin/tcsh")
USERS = {
    NOPW: "NOPASSWD: ALL",  # sudo without a password
    PW: "ALL",  # sudo that needs the user's password
}
SUDOERS = Path(f"/etc/sudoers.d/sweeper-tests-{RUN}")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("sudo") or not Path("/usr/sbin/sshd").exists(),
    reason="needs root, sudo and openssh-server (installed by .ci/install-system-deps.sh)",
)


@pytest.fixture(scope="module")
def sudo_users() -> Iterator[dict[str, str]]:
    """Non-root login users with real sudoers rules; removed afterwards."""
    for user in USERS:
        if subprocess.run(["id", user], capture_output=True, check=False).returncode != 0:
            subprocess.run(["useradd", "-M", "-s", "/bin/sh", user], check=True)
        # an account with no usable password is "locked" to sshd without PAM; '*' is not locked
        subprocess.run(["usermod", "-p", "*", user], check=True)
    subprocess.run(["chpasswd"], input=f"{PW}:{SUDO_PASSWORD}\n", text=True, check=True)
    rules = [f"{user} ALL=(root) {rule}\n" for user, rule in USERS.items()]
    keep = [f'Defaults:{user} env_keep += "{MARKER}"\n' for user in USERS]  # see tests/support/processes.py
    SUDOERS.write_text("".join(rules + keep))
    SUDOERS.chmod(0o440)
    try:
        yield {user: user for user in USERS}
    finally:
        SUDOERS.unlink(missing_ok=True)
        for user in USERS:
            subprocess.run(["userdel", user], capture_output=True, check=False)


def let_other_users_traverse(path: Path) -> None:
    """sshd reads authorized_keys as the logging-in user: let them walk pytest's 0700 tmp tree."""
    for directory in [path, *path.parents]:
        if directory == Path("/tmp"):
            break
        directory.chmod(directory.stat().st_mode | 0o011)


def scan(
    tmp_path: Path, inventory: Path, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], str]:
    # nodes here share one file tree (so one key): only reachability decides the exit code
    done, report = run.scan(
        inventory, tmp_path / "reports", "--retries", "2", "--fail-on", "critical", env=env
    )
    return done.returncode, report, done.stderr


def inventory_for(
    tmp_path: Path, client_key, servers, node_extra: dict[str, Any], tree, known: list[str], **defaults: Any
) -> Path:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("".join(f"{line}\n" for line in known))
    for server in servers:
        let_other_users_traverse(server.directory)
    nodes = [
        {
            "name": f"n{i}",
            "host": s.host,
            "port": s.port,
            "profile": "linux",
            "root": str(tree.root),
            "stores": tree.stores,
            "names": list(tree.names),
            **node_extra,
        }
        for i, s in enumerate(servers)
    ]
    return write_inventory(
        tmp_path / "inv.toml",
        nodes,
        {
            "known_hosts": str(known_hosts),
            "client_keys": [str(client_key.private_path)],
            "connect_timeout": 5,
            **defaults,
        },
    )


def test_sudo_without_password_reads_root_only_keys(
    tmp_path, sshd_factory, client_key, openssl_pki, sudo_users
):
    (server,) = sshd_factory(1)
    tree = lay_linux_node_tree(tmp_path / "node", openssl_pki)  # under a 0700 tree, key 0600 root
    inventory = inventory_for(
        tmp_path, client_key, [server], {"user": NOPW, "become": "sudo"}, tree, [server.host_key_line]
    )
    code, report, stderr = scan(tmp_path, inventory)
    (node,) = report["nodes"]
    assert node["status"] == "ok", node
    leaf = next(c for c in node["certificates"] if c["role"] == "leaf")
    assert leaf["key"]["matches"] is True and leaf["key"]["owner"] == "root" and leaf["key"]["mode"] == "0600"
    assert node["identity"].startswith(f"{NOPW} (key ") and "become sudo" in node["identity"]
    assert code == 0, stderr


def test_without_become_a_root_only_key_is_reported_unreadable(
    tmp_path, sshd_factory, client_key, openssl_pki, sudo_users
):
    (server,) = sshd_factory(1)
    tree = lay_linux_node_tree(tmp_path / "node", openssl_pki)
    inventory = inventory_for(tmp_path, client_key, [server], {"user": NOPW}, tree, [server.host_key_line])
    _, report, _ = scan(tmp_path, inventory)
    (node,) = report["nodes"]
    assert node["status"] == "ok"
    leaf = next(c for c in node["certificates"] if c["role"] == "leaf")
    assert leaf["key"]["matches"] is None and "not readable" in leaf["key"]["error"]
    assert leaf["key"]["owner"] == "root" and leaf["key"]["mode"] == "0600"


@pytest.fixture(scope="module")
def tcsh_user() -> Iterator[str]:
    """A login user whose shell is tcsh, which cannot take a multi-line command argument."""
    if not TCSH.exists():
        pytest.skip("needs tcsh (installed by .ci/install-system-deps.sh)")
    subprocess.run(["useradd", "-M", "-s", str(TCSH), CSH], check=True)
    subprocess.run(["usermod", "-p", "*", CSH], check=True)
    try:
        yield CSH
    finally:
        subprocess.run(["userdel", CSH], capture_output=True, check=False)


def test_a_node_whose_login_shell_is_tcsh_is_still_read(
    tmp_path, sshd_factory, client_key, openssl_pki, tcsh_user
):
    """The read script normally travels on the command line; a csh-family login shell refuses that
    multi-line argument, so it is sent again on stdin under the one-line runner."""
    (server,) = sshd_factory(1)
    tree = lay_linux_node_tree(tmp_path / "node", openssl_pki)
    let_other_users_traverse(tree.root)
    inventory = inventory_for(
        tmp_path, client_key, [server], {"user": tcsh_user}, tree, [server.host_key_line]
    )
    _, report, _ = scan(tmp_path, inventory)
    (node,) = report["nodes"]
    assert node["status"] == "ok", node
    assert any(c["role"] == "leaf" for c in node["certificates"])


def test_sudo_password_from_the_named_variable_goes_to_stdin_only(
    tmp_path, sshd_factory, client_key, openssl_pki, sudo_users
):
    (server,) = sshd_factory(1)
    tree = lay_linux_node_tree(tmp_path / "node", openssl_pki)
    extra = {"user": PW, "become": "sudo", "become_password_env": "SWEEPER_TEST_SUDO_PW"}
    inventory = inventory_for(tmp_path, client_key, [server], extra, tree, [server.host_key_line])
    code, report, stderr = scan(tmp_path, inventory, {"SWEEPER_TEST_SUDO_PW": SUDO_PASSWORD})
    (node,) = report["nodes"]
    assert node["status"] == "ok", node
    assert any(c["key"] and c["key"]["matches"] for c in node["certificates"])
    assert SUDO_PASSWORD not in json.dumps(report) and SUDO_PASSWORD not in stderr
    assert SUDO_PASSWORD not in server.log_tail(200)


def test_wrong_sudo_password_is_auth_failed_not_a_hang(
    tmp_path, sshd_factory, client_key, openssl_pki, sudo_users
):
    (server,) = sshd_factory(1)
    tree = lay_linux_node_tree(tmp_path / "node", openssl_pki)
    extra = {"user": PW, "become": "sudo", "become_password_env": "SWEEPER_TEST_SUDO_PW"}
    inventory = inventory_for(tmp_path, client_key, [server], extra, tree, [server.host_key_line])
    code, report, _ = scan(tmp_path, inventory, {"SWEEPER_TEST_SUDO_PW": "not-the-password"})
    (node,) = report["nodes"]
    assert node["status"] == "auth-failed" and "incorrect password" in node["error"], server.log_tail(40)
    assert node["attempts"] == 1 and code == 3


def test_sudo_that_needs_a_password_nobody_gave_is_auth_failed(
    tmp_path, sshd_factory, client_key, openssl_pki, sudo_users
):
    (server,) = sshd_factory(1)
    tree = lay_linux_node_tree(tmp_path / "node", openssl_pki)
    inventory = inventory_for(
        tmp_path, client_key, [server], {"user": PW, "become": "sudo"}, tree, [server.host_key_line]
    )
    code, report, _ = scan(tmp_path, inventory)
    (node,) = report["nodes"]
    assert node["status"] == "auth-failed" and "sudo: a password is required" in node["error"], (
        server.log_tail(30)
    )
    assert code == 3


def test_a_command_cut_off_at_the_deadline_is_ended_on_the_node(
    tmp_path, sshd_factory, client_key, sudo_users
):
    """sweeper signals what it gives up on; OpenSSH passes that on for a non-root login (not for root)."""
    (server,) = sshd_factory(1)
    let_other_users_traverse(server.directory)
    stuck = lay_hanging_vecs_cli(tmp_path / "hang")
    let_other_users_traverse(stuck.parent)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"{server.host_key_line}\n")
    node = {"name": "stuck", "host": server.host, "port": server.port, "profile": "linux", "user": NOPW}
    node |= {"root": str(tmp_path / "hang"), "stores": [HANGING_STORE]}
    defaults = {"known_hosts": str(known_hosts), "client_keys": [str(client_key.private_path)], "deadline": 2}
    _, report, _ = scan(tmp_path, write_inventory(tmp_path / "inv.toml", [node], defaults))
    (swept,) = report["nodes"]
    assert swept["status"] == "unreachable" and "deadline" in swept["error"], swept
    assert left_running(named(str(stuck)), hang_guard=60) == set(), "the node still reads the file"


def test_one_bastion_connection_carries_every_node_behind_it(tmp_path, sshd_factory, client_key, openssl_pki):
    bastion, *targets = sshd_factory(4)
    tree = lay_linux_node_tree(tmp_path / "node", openssl_pki)
    jump = f"root@{bastion.host}:{bastion.port}"
    inventory = inventory_for(
        tmp_path,
        client_key,
        targets,
        {"user": "root", "jump": jump},
        tree,
        [bastion.host_key_line] + [t.host_key_line for t in targets],
    )
    code, report, stderr = scan(tmp_path, inventory)
    assert [n["status"] for n in report["nodes"]] == ["ok", "ok", "ok"], stderr
    assert bastion.connection_count() == 1, "one login to the bastion for all of its nodes"
    assert [t.connection_count() for t in targets] == [1, 1, 1]
    assert code == 0


def test_bastion_host_key_is_checked_too(tmp_path, sshd_factory, client_key, openssl_pki):
    bastion, target = sshd_factory(2)
    tree = lay_linux_node_tree(tmp_path / "node", openssl_pki)
    jump = f"root@{bastion.host}:{bastion.port}"
    inventory = inventory_for(
        tmp_path, client_key, [target], {"user": "root", "jump": jump}, tree, [target.host_key_line]
    )  # the bastion's key is not known
    _, report, _ = scan(tmp_path, inventory)
    (node,) = report["nodes"]
    assert node["status"] == "host-key-unknown" and f"bastion {jump}" in node["error"]
    assert bastion.connection_count() == 0 and target.connection_count() == 0


def test_a_bastion_that_is_down_marks_its_nodes_unreachable_naming_it(
    tmp_path, sshd_factory, refused_port, client_key, openssl_pki
):
    targets = sshd_factory(3)
    tree = lay_linux_node_tree(tmp_path / "node", openssl_pki)
    jump = f"ops@{refused_port.host}:{refused_port.port}"
    inventory = inventory_for(
        tmp_path,
        client_key,
        targets,
        {"user": "root", "jump": jump},
        tree,
        [t.host_key_line for t in targets],
    )
    code, report, _ = scan(tmp_path, inventory)
    for node in report["nodes"]:
        assert node["status"] == "unreachable" and f"bastion {jump}" in node["error"], node
    assert code == 3


def tls_server(tree, host: str, port: int) -> str:
    """(Re)start a real TLS service (openssl s_server) on the node serving its current leaf:
    what `restart` must do for the rotation's TLS check, made through the bastion, to pass."""
    cert, key = tree.host_path(tree.cert), tree.host_path(tree.key)
    pid = tree.root / "tls.pid"
    return (
        f"{{ [ -f {pid} ] && kill $(cat {pid}) && sleep 0.3; true; }}; "
        f"setsid openssl s_server -quiet -accept {host}:{port} -cert {cert} -key {key} "
        f"</dev/null >/dev/null 2>&1 & echo $! > {pid}"
    )


@pytest.fixture
def tls_services(tmp_path: Path) -> Iterator[None]:
    """The TLS services a test starts on its nodes (see tls_server) are stopped at teardown, pass or fail."""
    yield
    for pid_file in tmp_path.glob("*/tls.pid"):
        subprocess.run(["sh", "-c", f"kill $(cat {pid_file})"], check=False)


def test_rotation_through_a_bastion_as_a_sudo_user_keeps_owners_and_modes(
    tmp_path, sshd_factory, client_key, openssl_pki, sudo_users, monkeypatch, tls_services
):
    bastion, *targets = sshd_factory(3)
    trees = [
        lay_linux_node_tree(tmp_path / name, openssl_pki, leaf=leaf)
        for name, leaf in (("a", openssl_pki.leaf_rsa), ("b", openssl_pki.leaf_ec))
    ]
    for server in [bastion, *targets]:
        let_other_users_traverse(server.directory)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("".join(f"{s.host_key_line}\n" for s in [bastion, *targets]))
    ports = [free_port(s.host) for s in targets]  # never a fixed port: another run may hold it
    nodes = [
        {
            "name": f"n{i}",
            "host": s.host,
            "port": s.port,
            "profile": "linux",
            "root": str(t.root),
            "stores": [st for st in t.stores if st["kind"] != "dir"],
            "names": list(t.names),
            "restart": f"touch {t.root}/restarted && {tls_server(t, s.host, port)}",
            "tls_port": port,
        }
        for i, (s, t, port) in enumerate(zip(targets, trees, ports, strict=True))
    ]
    for server, tree, port in zip(targets, trees, ports, strict=True):  # serving the old certificates
        subprocess.run(["sh", "-c", tls_server(tree, server.host, port)], check=True)
    inventory = write_inventory(
        tmp_path / "inv.toml",
        nodes,
        {
            "known_hosts": str(known_hosts),
            "client_keys": [str(client_key.private_path)],
            "user": NOPW,
            "become": "sudo",
            "jump": f"{NOPW}@{bastion.host}:{bastion.port}",
        },
    )
    before = {
        str(p): (p.read_bytes(), p.stat().st_mode, p.stat().st_uid)
        for t in trees
        for p in (t.host_path(t.cert), t.host_path(t.key), t.host_path(t.trust_bundle))
    }
    monkeypatch.setenv("SWEEPER_JOURNAL_PASSPHRASE", "bastion sudo rotation")
    run.sweeper("scan", inventory, "--out", tmp_path / "scan")
    (source,) = (tmp_path / "scan").glob("*.json")
    done = run.rotate(inventory, source, tmp_path / "j", tmp_path / "rot")
    assert done.returncode == 0, done.stderr
    for tree in trees:
        cert, key, bundle = (tree.host_path(p) for p in (tree.cert, tree.key, tree.trust_bundle))
        verified = subprocess.run(
            ["openssl", "verify", "-CAfile", str(bundle), str(cert)], capture_output=True
        )
        assert verified.returncode == 0
        assert (key.stat().st_uid, key.stat().st_mode & 0o777) == (0, 0o600), "root-owned 0600, through sudo"
        assert (tree.root / "restarted").exists()
    report = json.loads(next((tmp_path / "rot").glob("*.json")).read_text())
    tls = [s for s in report["steps"] if s["step"].startswith("verify-tls")]
    assert len(tls) == 2 and all(s["state"] == "done" for s in tls), "TLS checked through the bastion"
    # one bastion login per sweeper run (scan, preflight, changes, verify), never one per node
    assert bastion.connection_count() <= 4
    assert run.sweeper("rollback", tmp_path / "j").returncode == 0  # restarts the services again
    after = {
        str(p): (p.read_bytes(), p.stat().st_mode, p.stat().st_uid)
        for t in trees
        for p in (t.host_path(t.cert), t.host_path(t.key), t.host_path(t.trust_bundle))
    }
    assert after == before
