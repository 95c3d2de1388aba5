"""`sweeper scan` end to end against real OpenSSH sshd servers on loopback and OpenSSL-made PKI."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from sweeper.model import Node
from sweeper.ssh import Connector
from tests.support import odd_certs, run
from tests.support.fixtures import write_inventory
from tests.support.node_tree import HANGING_STORE, LinuxNodeTree, lay_hanging_vecs_cli, lay_linux_node_tree
from tests.support.openssl_pki import make_unloadable_keys
from tests.support.sshd import wrong_host_key_line

pytestmark = pytest.mark.skipif(not Path("/usr/sbin/sshd").exists(), reason="needs openssh-server")


def defaults(tmp_path: Path, client_key, known_hosts_lines: list[str], **extra: Any) -> dict[str, Any]:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("".join(f"{line}\n" for line in known_hosts_lines))
    return {
        "user": "root",
        "known_hosts": str(known_hosts),
        "client_keys": [str(client_key.private_path)],
        "connect_timeout": 5,
        **extra,
    }


def node_entry(name: str, sshd, root: Path, stores: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "host": sshd.host,
        "port": sshd.port,
        "profile": "linux",
        "root": str(root),
        "stores": stores,
        **extra,
    }


def tree_entry(name: str, sshd, tree: LinuxNodeTree, **extra: Any) -> dict[str, Any]:
    """A node holding a Linux tree, allowed the names its leaf carries."""
    return node_entry(name, sshd, tree.root, tree.stores, names=list(tree.names), **extra)


def one_node(tmp_path: Path, sshd_factory, client_key, openssl_pki):
    """One real sshd node `web1` with a Linux tree, and its inventory."""
    (server,) = sshd_factory(1)
    tree = lay_linux_node_tree(tmp_path / "n", openssl_pki)
    inventory = write_inventory(
        tmp_path / "inv.toml",
        [tree_entry("web1", server, tree)],
        defaults(tmp_path, client_key, [server.host_key_line]),
    )
    return server, tree, inventory


def let_readers_go(fifo: Path) -> None:
    """Whoever waits to read `fifo` reads end-of-file and goes on."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError as exc:
        if exc.errno != errno.ENXIO:  # ENXIO: nobody is waiting
            raise


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in report["nodes"]}


def test_healthy_nodes_are_swept_with_every_field_matching_openssl(
    tmp_path: Path, sshd_factory, client_key, openssl_pki
) -> None:
    a, b = sshd_factory(2)
    tree_a = lay_linux_node_tree(tmp_path / "a", openssl_pki)
    tree_b = lay_linux_node_tree(tmp_path / "b", openssl_pki, leaf=openssl_pki.leaf_ec)
    inventory = write_inventory(
        tmp_path / "inv.toml",
        [
            tree_entry("web1", a, tree_a),
            tree_entry("web2", b, tree_b),
        ],
        defaults(tmp_path, client_key, [a.host_key_line, b.host_key_line]),
    )

    done, report = run.scan(inventory, tmp_path / "reports")

    assert done.returncode == 0, done.stderr
    assert report["schema"] == "sweeper.report/1" and report["run"]["kind"] == "scan"
    assert report["summary"]["nodes"] == report["summary"]["nodes_swept"] == 2
    nodes = by_name(report)
    for name, leaf in (("web1", openssl_pki.leaf_rsa), ("web2", openssl_pki.leaf_ec)):
        node = nodes[name]
        assert node["status"] == "ok" and node["attempts"] == 1
        assert all(s["status"] == "ok" for s in node["stores"]), node["stores"]
        cert = next(c for c in node["certificates"] if c["role"] == "leaf")
        assert cert["sha256"] == leaf.sha256 and cert["spki_sha256"] == leaf.spki_sha256
        assert int(cert["serial"], 16) == leaf.serial
        assert cert["key"]["matches"] is True and cert["key"]["mode"] == "0600"
        trust = {c["sha256"] for c in node["certificates"] if c["role"] == "trust"}
        assert trust == {openssl_pki.root.sha256, openssl_pki.intermediate.sha256}
    assert a.connection_count() == 1 and b.connection_count() == 1, "one connection per node"
    assert "BEGIN PRIVATE KEY" not in json.dumps(report)


def test_wrong_host_key_is_reported_and_never_retried(
    tmp_path: Path, sshd_factory, client_key, openssl_pki
) -> None:
    (good,) = sshd_factory(1)
    tree = lay_linux_node_tree(tmp_path / "n", openssl_pki)
    other_key = (
        good.host_key_line.split()[0]
        + " ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKU8HGbLtULyJ0d2gUvLzfqgr0tunmL9lUsUDExkz4dG"
    )
    inventory = write_inventory(
        tmp_path / "inv.toml",
        [tree_entry("n", good, tree)],
        defaults(tmp_path, client_key, [other_key]),
    )
    done, report = run.scan(inventory, tmp_path / "reports")
    node = by_name(report)["n"]
    assert node["status"] == "host-key-mismatch" and node["attempts"] == 1
    assert done.returncode == 3
    assert good.connection_count() == 0, "no login to a server whose key we do not trust"
    assert "man-in-the-middle" in node["error"]

    unknown = write_inventory(
        tmp_path / "unknown.toml", [tree_entry("n", good, tree)], defaults(tmp_path, client_key, [])
    )
    done, report = run.scan(unknown, tmp_path / "unknown")
    node = by_name(report)["n"]
    assert node["status"] == "host-key-unknown" and "accept-new" in node["error"] and done.returncode == 3
    assert good.connection_count() == 0, "an unknown key is not trusted either"


def test_refused_port_is_retried_then_unreachable(tmp_path: Path, refused_port, client_key) -> None:
    inventory = write_inventory(
        tmp_path / "inv.toml",
        [
            {"name": "gone", "host": refused_port.host, "port": refused_port.port, "profile": "esxi"},
        ],
        defaults(tmp_path, client_key, []),
    )
    done, report = run.scan(inventory, tmp_path / "reports", "--retries", "3")
    node = by_name(report)["gone"]
    assert node["status"] == "unreachable" and node["attempts"] == 3 and "refused" in node["error"]
    assert done.returncode == 3 and report["summary"]["nodes_swept"] == 0


def test_listener_that_never_speaks_ssh_times_out(tmp_path: Path, silent_listener, client_key) -> None:
    inventory = write_inventory(
        tmp_path / "inv.toml",
        [
            {"name": "mute", "host": silent_listener.host, "port": silent_listener.port, "profile": "esxi"},
        ],
        defaults(tmp_path, client_key, [], connect_timeout=1),
    )
    done, report = run.scan(inventory, tmp_path / "reports", "--retries", "2")
    node = by_name(report)["mute"]
    assert node["status"] == "unreachable" and "timed out" in node["error"] and node["attempts"] == 2
    assert done.returncode == 3


def test_failing_vecs_cli_is_a_store_error_on_a_swept_node(tmp_path: Path, sshd_factory, client_key) -> None:
    (server,) = sshd_factory(1)
    cli = tmp_path / "vc/usr/lib/vmware-vmafd/bin/vecs-cli"
    cli.parent.mkdir(parents=True)
    cli.write_text(
        "#!/bin/sh\necho 'vecs-cli failed. Error 87: Operation failed with error "
        "ERROR_INVALID_PARAMETER (87)' >&2\nexit 87\n"
    )
    cli.chmod(0o755)
    inventory = write_inventory(
        tmp_path / "inv.toml",
        [
            {
                "name": "vc01",
                "host": server.host,
                "port": server.port,
                "profile": "vcsa",
                "root": str(tmp_path / "vc"),
            },
        ],
        defaults(tmp_path, client_key, [server.host_key_line]),
    )
    done, report = run.scan(inventory, tmp_path / "reports")
    node = by_name(report)["vc01"]
    assert node["status"] == "ok"
    (store,) = node["stores"]
    assert store["status"] == "error" and "ERROR_INVALID_PARAMETER (87)" in store["error"]
    assert done.returncode == 0


def test_max_startups_drops_are_retried_until_every_node_is_swept(
    tmp_path: Path, sshd_factory, client_key, openssl_pki
) -> None:
    (server,) = sshd_factory(1, max_startups="2:100:2")
    tree = lay_linux_node_tree(tmp_path / "n", openssl_pki)
    nodes = [tree_entry(f"n{i:02}", server, tree) for i in range(16)]
    inventory = write_inventory(
        tmp_path / "inv.toml", nodes, defaults(tmp_path, client_key, [server.host_key_line])
    )
    # the 16 "nodes" share one tree, so one key: key-reuse is expected and not this test's business
    done, report = run.scan(
        inventory, tmp_path / "reports", "--retries", "10", "--concurrency", "16", "--fail-on", "critical"
    )
    statuses = {n["name"]: (n["status"], n["attempts"]) for n in report["nodes"]}
    assert all(status == "ok" for status, _ in statuses.values()), statuses
    assert server.dropped_count() > 0, "the test must really hit MaxStartups"
    assert max(attempts for _, attempts in statuses.values()) > 1
    assert done.returncode == 0, done.stderr


def test_a_node_that_hangs_is_cut_off_at_its_deadline(tmp_path: Path, sshd_factory, client_key) -> None:
    (server,) = sshd_factory(1)
    root = tmp_path / "hang"
    stuck = lay_hanging_vecs_cli(root)
    inventory = write_inventory(
        tmp_path / "inv.toml",
        [node_entry("stuck", server, root, [HANGING_STORE], deadline=2)],
        defaults(tmp_path, client_key, [server.host_key_line]),
    )
    try:
        done, report = run.scan(inventory, tmp_path / "reports", "--retries", "1")
    finally:  # sshd will not signal a root login's command for sweeper: the test lets its read go
        let_readers_go(stuck)
    node = by_name(report)["stuck"]
    assert node["status"] == "unreachable" and "deadline" in node["error"], node
    assert done.returncode == 3


def test_ctrl_c_stops_the_connects_in_flight_and_still_writes_an_interrupted_report(
    tmp_path: Path, silent_listener, client_key
) -> None:
    inventory = write_inventory(
        tmp_path / "inv.toml",
        [
            {
                "name": f"mute{i}",
                "host": silent_listener.host,
                "port": silent_listener.port,
                "profile": "esxi",
            }
            for i in range(3)
        ],
        # only Ctrl-C can end these connects: left alone they would time out, and the nodes be "unreachable"
        defaults(tmp_path, client_key, [], connect_timeout=3600),
    )
    out = tmp_path / "reports"
    proc = run.start("scan", inventory, "--out", out)
    silent_listener.wait_for_connections(3)  # every node is connected and waiting for a banner
    proc.send_signal(signal.SIGINT)
    done = run.finish(proc, timeout=120)
    assert done.returncode == 3
    report = run.only_report(out)
    assert report["run"]["interrupted"] is True
    assert {n["status"] for n in report["nodes"]} == {"error"}


def test_passphrase_protected_key_is_unlocked_from_the_named_variable(
    tmp_path: Path, sshd_factory, openssl_pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "id_locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "s3cret-pass", "-f", str(key)], check=True)
    (server,) = sshd_factory(1, authorized_keys=[Path(f"{key}.pub").read_text().strip()])
    tree = lay_linux_node_tree(tmp_path / "n", openssl_pki)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(server.host_key_line + "\n")
    base = {
        "user": "root",
        "known_hosts": str(known_hosts),
        "client_keys": [str(key)],
        "passphrase_env": "SWEEPER_TEST_PASSPHRASE",
    }
    inventory = write_inventory(tmp_path / "inv.toml", [tree_entry("n", server, tree)], base)

    monkeypatch.setenv("SWEEPER_TEST_PASSPHRASE", "s3cret-pass")
    done, report = run.scan(inventory, tmp_path / "reports")
    assert done.returncode == 0 and by_name(report)["n"]["status"] == "ok", done.stderr
    assert "s3cret-pass" not in json.dumps(report) and "s3cret-pass" not in done.stderr

    monkeypatch.setenv("SWEEPER_TEST_PASSPHRASE", "wrong")
    done = run.sweeper("scan", inventory, "--out", tmp_path / "r2")
    assert done.returncode == 2 and "cannot load client key" in done.stderr


def test_accept_new_trusts_on_first_use_then_checks_strictly(
    tmp_path: Path, sshd_factory, client_key, openssl_pki
) -> None:
    (server,) = sshd_factory(1)
    tree = lay_linux_node_tree(tmp_path / "n", openssl_pki)
    known_hosts = tmp_path / "fresh_known_hosts"
    base = {
        "user": "root",
        "known_hosts": str(known_hosts),
        "client_keys": [str(client_key.private_path)],
        "host_key_checking": "accept-new",
    }
    inventory = write_inventory(tmp_path / "inv.toml", [tree_entry("n", server, tree)], base)
    done, report = run.scan(inventory, tmp_path / "reports")
    assert done.returncode == 0 and by_name(report)["n"]["status"] == "ok"
    assert known_hosts.read_text().split() == server.host_key_line.split()

    # The same address now presents another key: accept-new must refuse it, as OpenSSH does.
    known_hosts.write_text(
        server.host_key_line.split()[0]
        + " ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKU8HGbLtULyJ0d2gUvLzfqgr0tunmL9lUsUDExkz4dG\n"
    )
    done, report = run.scan(inventory, tmp_path / "second")
    assert by_name(report)["n"]["status"] == "host-key-mismatch" and done.returncode == 3


def test_a_hashed_known_hosts_is_checked_as_strictly_as_a_plain_one(
    tmp_path: Path, sshd_factory, client_key, openssl_pki
) -> None:
    """`HashKnownHosts yes` files (ssh-keygen -H): the right key logs in, a changed key and a
    revoked one are refused before any login, whatever the lines' order."""
    good, changed, revoked = sshd_factory(3)
    tree = lay_linux_node_tree(tmp_path / "n", openssl_pki)
    known_hosts = tmp_path / "known_hosts"
    address, *key = revoked.host_key_line.split()
    lines = [good.host_key_line, wrong_host_key_line(changed), revoked.host_key_line]
    lines += [f"[192.0.2.77]:22 {' '.join(key)}", f"@revoked {address} {' '.join(key)}"]
    known_hosts.write_text("".join(f"{line}\n" for line in reversed(lines)))
    subprocess.run(["ssh-keygen", "-H", "-f", str(known_hosts)], check=True, capture_output=True)
    assert known_hosts.read_text().count("|1|") == 4  # ssh-keygen leaves the @revoked line plain
    inventory = write_inventory(
        tmp_path / "inv.toml",
        [
            tree_entry(name, server, tree)
            for name, server in [("good", good), ("changed", changed), ("revoked", revoked)]
        ],
        {"user": "root", "known_hosts": str(known_hosts), "client_keys": [str(client_key.private_path)]},
    )
    done, report = run.scan(inventory, tmp_path / "reports")
    nodes = by_name(report)
    assert nodes["good"]["status"] == "ok" and done.returncode == 3
    assert (
        nodes["changed"]["status"] == "host-key-mismatch" and "man-in-the-middle" in nodes["changed"]["error"]
    )
    assert nodes["revoked"]["status"] == "host-key-mismatch"
    assert changed.connection_count() == 0 and revoked.connection_count() == 0


@pytest.mark.parametrize("pattern", ["its address", "any host"])
def test_accept_new_refuses_a_host_key_that_known_hosts_marks_revoked(
    tmp_path: Path, sshd_factory, client_key, openssl_pki, pattern: str
) -> None:
    """A node never seen before is trusted on first use, unless its key is `@revoked`: before, the
    revoked key was accepted and even appended to known_hosts."""
    revoked, fresh = sshd_factory(2)
    tree = lay_linux_node_tree(tmp_path / "n", openssl_pki)
    address, *key = revoked.host_key_line.split()
    revocation = f"@revoked {address if pattern == 'its address' else '*'} {' '.join(key)}"
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(revocation + "\n")
    base = {
        "user": "root",
        "known_hosts": str(known_hosts),
        "client_keys": [str(client_key.private_path)],
        "host_key_checking": "accept-new",
    }
    inventory = write_inventory(
        tmp_path / "inv.toml", [tree_entry("revoked", revoked, tree), tree_entry("fresh", fresh, tree)], base
    )
    done, report = run.scan(inventory, tmp_path / "reports")
    nodes = by_name(report)
    assert nodes["revoked"]["status"] == "host-key-mismatch" and nodes["revoked"]["attempts"] == 1
    assert "revoked" in nodes["revoked"]["error"].lower(), nodes["revoked"]["error"]
    assert nodes["fresh"]["status"] == "ok" and done.returncode == 3
    assert revoked.connection_count() == 0
    lines = [line.split() for line in known_hosts.read_text().splitlines()]
    assert lines == [revocation.split(), fresh.host_key_line.split()], "only the fresh key is remembered"


def test_ssh_config_host_alias_supplies_address_port_and_user(
    tmp_path: Path, sshd_factory, client_key, openssl_pki
) -> None:
    (server,) = sshd_factory(1)
    tree = lay_linux_node_tree(tmp_path / "n", openssl_pki)
    config = tmp_path / "ssh_config"
    config.write_text(f"Host web-alias\n  HostName {server.host}\n  Port {server.port}\n  User root\n")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(server.host_key_line + "\n")
    inventory = write_inventory(
        tmp_path / "inv.toml",
        [
            {
                "name": "web",
                "host": "web-alias",
                "profile": "linux",
                "root": str(tree.root),
                "stores": tree.stores,
                "names": list(tree.names),
            },
        ],
        {
            "known_hosts": str(known_hosts),
            "client_keys": [str(client_key.private_path)],
            "ssh_config": str(config),
        },
    )
    done, report = run.scan(inventory, tmp_path / "reports")
    assert done.returncode == 0 and by_name(report)["web"]["status"] == "ok", done.stderr


def test_ssh_agent_keys_are_offered_when_asked_for(
    tmp_path: Path, sshd_factory, client_key, openssl_pki
) -> None:
    (server,) = sshd_factory(1)
    tree = lay_linux_node_tree(tmp_path / "n", openssl_pki)
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60  # a hang guard: the socket appears as soon as the agent runs
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        env = {**os.environ, "SSH_AUTH_SOCK": str(socket_path), "HOME": str(tmp_path)}
        subprocess.run(["ssh-add", str(client_key.private_path)], env=env, check=True, capture_output=True)
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(server.host_key_line + "\n")
        inventory = write_inventory(
            tmp_path / "inv.toml",
            [tree_entry("n", server, tree)],
            {"user": "root", "known_hosts": str(known_hosts), "agent": True},
        )
        done = run.sweeper("scan", inventory, "--out", tmp_path / "r", env=env)
        assert done.returncode == 0, done.stderr
    finally:
        agent.terminate()
        agent.wait()


def test_baseline_last_flags_an_anchor_that_appeared_since_the_previous_run(
    tmp_path: Path, sshd_factory, client_key, openssl_pki
) -> None:
    server, tree, inventory = one_node(tmp_path, sshd_factory, client_key, openssl_pki)
    out = tmp_path / "reports"

    def scan(*args: str) -> subprocess.CompletedProcess[str]:
        return run.sweeper("scan", inventory, "--out", out, *args)

    first = scan("--baseline", "last")
    assert first.returncode == 2, "no history yet: bad input"
    assert scan().returncode == 0
    rogue_pem = tmp_path / "rogue.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(tmp_path / "rogue.key"),
            "-out",
            str(rogue_pem),
            "-subj",
            "/CN=Overnight Root",
            "-days",
            "30",
        ],
        check=True,
        capture_output=True,
    )
    bundle = tree.host_path(tree.trust_bundle)
    bundle.write_bytes(bundle.read_bytes() + rogue_pem.read_bytes())  # an anchor appears overnight
    earlier = set(out.glob("*.json"))
    drifted = scan("--baseline", "last")
    (latest,) = set(out.glob("*.json")) - earlier  # names sort by the second only: runs may share one
    report = json.loads(latest.read_text())
    rogue = [f["message"] for f in report["findings"] if f["rule"] == "rogue-root"]
    assert len(rogue) == 1 and "Overnight Root" in rogue[0] and drifted.returncode == 1


def test_the_key_cache_skips_openssl_but_never_hides_a_changed_key(
    tmp_path: Path, sshd_factory, client_key, openssl_pki
) -> None:
    server, tree, inventory = one_node(tmp_path, sshd_factory, client_key, openssl_pki)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}

    def leaf_key(out: str) -> dict[str, Any]:
        _, report = run.scan(inventory, tmp_path / out, env=env)
        return next(c["key"] for c in report["nodes"][0]["certificates"] if c["role"] == "leaf")

    assert leaf_key("cold")["matches"] is True
    cache = tmp_path / "cache" / "sweeper" / "key-spki.json"
    assert oct(cache.stat().st_mode & 0o777) == "0o600" and "PRIVATE" not in cache.read_text()
    assert leaf_key("warm")["matches"] is True
    tree.host_path(tree.key).write_bytes(openssl_pki.leaf_ec.key.read_bytes())  # the key is swapped
    swapped = leaf_key("swapped")
    assert swapped["matches"] is False and swapped["spki_sha256"] == openssl_pki.leaf_ec.spki_sha256


def test_a_node_lying_about_a_shared_key_file_cannot_poison_another_nodes_cache_entry(
    tmp_path: Path, sshd_factory, client_key, openssl_pki
) -> None:
    """A hostile node holding a copy of the victim's key file (the same bytes, and an identity it
    could report as the victim's) has its own openssl say the file holds another public key. Once
    the cache was one table for the fleet, the victim's next sweep took that lie for its own key
    (a false key-mismatch, or a real one hidden)."""
    (victim,) = sshd_factory(1)
    (hostile,) = sshd_factory(1, session_path=lying_openssl(tmp_path, openssl_pki))
    victim_tree = lay_linux_node_tree(tmp_path / "victim", openssl_pki)
    hostile_tree = lay_linux_node_tree(tmp_path / "hostile", openssl_pki)  # the same key file bytes
    inventory = write_inventory(
        tmp_path / "inv.toml",
        [tree_entry("victim", victim, victim_tree), tree_entry("hostile", hostile, hostile_tree)],
        defaults(tmp_path, client_key, [victim.host_key_line, hostile.host_key_line]),
    )
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}

    def leaf_key(node: str, out: str) -> dict[str, Any]:
        _, report = run.scan(inventory, tmp_path / out, "--limit", node, env=env)
        return next(c["key"] for c in report["nodes"][0]["certificates"] if c["role"] == "leaf")

    assert leaf_key("victim", "first")["matches"] is True
    lie = leaf_key("hostile", "lie")
    assert lie["matches"] is False and lie["spki_sha256"] == openssl_pki.leaf_ec.spki_sha256
    again = leaf_key("victim", "again")
    assert again["matches"] is True and again["spki_sha256"] == openssl_pki.leaf_rsa.spki_sha256
    cached = json.loads((tmp_path / "cache" / "sweeper" / "key-spki.json").read_text())["nodes"]
    assert openssl_pki.leaf_rsa.spki_sha256 in cached["victim"].values()
    assert openssl_pki.leaf_ec.spki_sha256 not in cached["victim"].values()
    assert openssl_pki.leaf_ec.spki_sha256 in cached["hostile"].values()


def lying_openssl(tmp_path: Path, openssl_pki) -> str:
    """A PATH whose `openssl` answers `pkey -pubout`, whatever the key, with another key's public half."""
    directory = tmp_path / "lying-bin"
    directory.mkdir()
    other = tmp_path / "other.pub"
    subprocess.run(
        ["openssl", "pkey", "-in", str(openssl_pki.leaf_ec.key), "-pubout", "-out", str(other)], check=True
    )
    tool = directory / "openssl"
    tool.write_text(f"#!/bin/sh\ncat >/dev/null\nexec cat {other}\n")
    tool.chmod(0o755)
    return f"{directory}:/usr/bin:/bin"


def test_one_connection_runs_at_most_four_commands_at_once_whatever_its_callers_start(
    tmp_path: Path, sshd_factory, client_key, openssl_pki
) -> None:
    import asyncio

    from sweeper.inventory import load_inventory
    from sweeper.ssh import Connector

    _, _, inventory = one_node(tmp_path, sshd_factory, client_key, openssl_pki)
    (node,) = load_inventory(inventory).nodes
    seen = tmp_path / "seen"
    seen.mkdir()

    def command(index: int) -> str:  # how many commands run beside this one, counted on the node
        return (
            f"cd {seen} && touch running.{index} && sleep 0.4 && "
            f"ls | grep -c running > count.{index}; rm running.{index}"
        )

    async def ten_at_once() -> list[int]:
        async def all_ten(session) -> list[int]:
            done = await asyncio.gather(*(session.run(command(i)) for i in range(10)))
            return [result.exit_status for result in done]

        connector = Connector((node,))
        try:
            return (await connector.with_session(node, all_ten))[0]
        finally:
            await connector.close()

    assert asyncio.run(ten_at_once()) == [0] * 10
    counts = [int((seen / f"count.{i}").read_text()) for i in range(10)]
    assert 2 <= max(counts) <= 4, counts


def test_a_connector_that_keeps_connections_logs_in_once_per_node_and_again_after_the_node_drops_it(
    tmp_path: Path, sshd_factory, client_key, openssl_pki
) -> None:
    import asyncio

    from sweeper.inventory import load_inventory
    from sweeper.ssh import Connector

    _, _, inventory = one_node(tmp_path, sshd_factory, client_key, openssl_pki)
    (node,) = load_inventory(inventory).nodes

    async def local_port(session) -> int:  # which TCP connection this session rides on, as sshd saw it
        return int((await session.run("echo $SSH_CLIENT")).stdout.split()[1])

    async def drop_from_the_node(session) -> None:  # the node's sshd session ends under us
        await session.run("(sleep 0.2; kill -9 $PPID) >/dev/null 2>&1 &")

    async def phases(keep_open: bool) -> list[int]:
        connector = Connector((node,), keep_open=keep_open)
        try:
            ports = [(await connector.with_session(node, local_port))[0] for _ in range(3)]
            await connector.with_session(node, drop_from_the_node)
            await asyncio.sleep(0.5)
            ports.append((await connector.with_session(node, local_port))[0])
            return ports
        finally:
            await connector.close()

    kept = asyncio.run(phases(keep_open=True))
    assert kept[0] == kept[1] == kept[2], "one login for three phases"
    assert kept[3] != kept[0], "a connection the node dropped is replaced, not reused"
    assert len(set(asyncio.run(phases(keep_open=False)))) == 4, "without keep_open, a login each time"


def test_a_node_script_that_exits_7_is_reported_with_exit_status_7(
    tmp_path: Path, sshd_factory, client_key, openssl_pki
) -> None:
    import asyncio

    from sweeper.errors import CommandFailed
    from sweeper.inventory import load_inventory
    from sweeper.shell import run_node_script
    from sweeper.ssh import Connector, RetryPolicy

    _, _, inventory = one_node(tmp_path, sshd_factory, client_key, openssl_pki)
    (node,) = load_inventory(inventory).nodes

    async def probe() -> str:
        connector = Connector((node,), RetryPolicy(attempts=1))
        try:
            await connector.with_session(node, lambda s: run_node_script(s, "echo half; exit 7", "probe"))
        except CommandFailed as exc:
            return str(exc)
        finally:
            await connector.close()
        return "no failure"

    assert "exit status 7" in asyncio.run(probe())


def test_node_text_reaches_the_terminal_as_plain_text_never_markup_or_escapes(
    tmp_path: Path, sshd_factory, client_key, openssl_pki
) -> None:
    """A certificate whose subject is rich markup and terminal escapes is shown, escaped, not obeyed."""
    _, tree, inventory = one_node(tmp_path, sshd_factory, client_key, openssl_pki)
    hostile = tmp_path / "hostile.pem"
    subject = "/CN=[\\/][bold red]x\x1b[2J\x1b]0;owned\x07"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-utf8",
         "-keyout", str(tmp_path / "hostile.key"), "-out", str(hostile), "-days", "3", "-subj", subject],
        check=True, capture_output=True,
    )  # fmt: skip
    bundle = tree.host_path(tree.trust_bundle)
    bundle.write_bytes(bundle.read_bytes() + hostile.read_bytes())
    done, report = run.scan(inventory, tmp_path / "reports", "--fail-on", "critical")
    stderr = done.stderr
    assert done.returncode == 0, stderr
    assert any("expires in" in f["message"] and "\x1b[2J" in f["message"] for f in report["findings"])
    assert "\x1b" not in stderr and "\x07" not in stderr, "escapes are shown escaped, never sent raw"
    unfolded = "".join(c for c in stderr if c not in "│ \n")  # table cells fold long messages
    assert "\\x1b[2J" in unfolded and "[/][boldred]x" in unfolded, "markup is shown as the text it is"


def flooding_path(directory: Path) -> str:
    """A PATH whose `sh` answers any script with an endless stream of zero bytes: a hostile node's
    own shell (sweeper runs its scripts through `sh` on the node, as it must)."""
    directory.mkdir()
    shell = directory / "sh"
    shell.write_text("#!/bin/dash\nexec cat /dev/zero\n")
    shell.chmod(0o755)
    return f"{directory}:/usr/bin:/bin"


def test_a_flooding_node_is_cut_off_at_the_cap_and_the_sweep_stays_small(
    tmp_path: Path, sshd_factory, client_key, openssl_pki
) -> None:
    """Without a cap the client grew by gigabytes in seconds; now the flood stops at --max-node-bytes
    (64 MiB by default), that node is an error naming the cap, and the others are swept."""
    (healthy,) = sshd_factory(1)
    (flooding,) = sshd_factory(1, session_path=flooding_path(tmp_path / "hostile-bin"))
    tree = lay_linux_node_tree(tmp_path / "n", openssl_pki)
    inventory = write_inventory(
        tmp_path / "inv.toml",
        [tree_entry("web1", healthy, tree), tree_entry("flood", flooding, tree)],
        defaults(tmp_path, client_key, [healthy.host_key_line, flooding.host_key_line]),
    )
    done, peak = run.finish_measured(run.start("scan", inventory, "--out", tmp_path / "reports"))
    print(f"peak RSS of sweeper with a flooding node: {peak / 2**20:.0f} MiB")
    nodes = by_name(run.only_report(tmp_path / "reports", done.stderr))
    assert nodes["web1"]["status"] == "ok"
    flood = nodes["flood"]
    assert flood["status"] == "error" and flood["attempts"] == 1, "a flood is never retried"
    assert flood["error"] == (
        "the node's answer passed --max-node-bytes (67108864 bytes): stopped reading, channel closed"
    )
    assert done.returncode == 3, done.stderr
    assert peak < 300 * 2**20


def test_a_huge_file_in_a_store_is_read_under_the_default_cap_and_refused_under_a_smaller_one(
    tmp_path: Path, sshd_factory, client_key, openssl_pki
) -> None:
    _, tree, inventory = one_node(tmp_path, sshd_factory, client_key, openssl_pki)
    bundle = tree.host_path(tree.trust_bundle)
    os.truncate(bundle, 8 * 2**20)  # the certificates, then zero bytes: 11 MB of base64 on the wire

    done, report = run.scan(inventory, tmp_path / "default")
    assert report["nodes"][0]["status"] == "ok", done.stderr

    done, report = run.scan(inventory, tmp_path / "capped", "--max-node-bytes", "1MiB")
    (node,) = report["nodes"]
    assert node["status"] == "error" and node["attempts"] == 1
    assert node["error"].startswith("the files to read add up to 8"), "the node saw it and sent none"
    assert node["error"].endswith("past --max-node-bytes (1048576 bytes): not read")
    assert done.returncode == 3


def test_a_file_name_with_a_line_break_is_reported_and_the_other_files_are_read(
    tmp_path: Path, sshd_factory, client_key, openssl_pki
) -> None:
    """Planted beside a folder's files, `intermediate.crl.pem<newline>root.crl.pem` once made the
    batched read fetch the wrong bytes and fail every store of the node."""
    _, tree, inventory = one_node(tmp_path, sshd_factory, client_key, openssl_pki)
    crl_dir = tree.host_path(tree.crl_dir)
    (crl_dir / "intermediate.crl.pem\nroot.crl.pem").write_bytes(openssl_pki.leaf_ec.cert.read_bytes())
    (crl_dir / "back\\slash\rcr.pem").write_bytes(openssl_pki.root_crl.read_bytes())
    done, report = run.scan(inventory, tmp_path / "reports")
    (node,) = report["nodes"]
    assert node["status"] == "ok", done.stderr
    stores = {s["store"]: s for s in node["stores"]}
    assert all(s["status"] == "ok" for name, s in stores.items() if name != tree.crl_dir), stores
    assert stores[tree.crl_dir]["status"] == "error"
    assert stores[tree.crl_dir]["error"] == (
        f"{tree.crl_dir}/intermediate.crl.pem\nroot.crl.pem: a file name with a line break is not read"
    )
    assert openssl_pki.leaf_ec.sha256 not in {c["sha256"] for c in node["certificates"]}


def test_a_certificate_valid_from_year_1_is_reported_and_its_report_reads_back(
    tmp_path: Path, sshd_factory, client_key, openssl_pki
) -> None:
    """X.509 allows validity from year 1 to 9999; strftime wrote year 1 as `1-01-01T…`, a report
    that neither `sweeper report` nor `merge` could read again: one node's certificate made the
    whole run's report unreadable."""
    (server,) = sshd_factory(1)
    tree = lay_linux_node_tree(tmp_path / "n", openssl_pki, leaf=openssl_pki.ancient)
    inventory = write_inventory(
        tmp_path / "inv.toml",
        [tree_entry("old", server, tree)],
        defaults(tmp_path, client_key, [server.host_key_line]),
    )
    done, report = run.scan(inventory, tmp_path / "reports")
    (leaf,) = [c for c in report["nodes"][0]["certificates"] if c["sha256"] == openssl_pki.ancient.sha256]
    assert (leaf["not_before"], leaf["not_after"]) == ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z")
    (source,) = (tmp_path / "reports").glob("*.json")
    rendered = run.sweeper("report", source, "--format", "html", "--out", tmp_path / "again")
    assert rendered.returncode == 0, rendered.stderr
    assert "9999-12-31" in next((tmp_path / "again").glob("*.html")).read_text()


def test_keys_cryptography_cannot_load_are_inventoried_and_sink_neither_the_node_nor_a_rule(
    tmp_path: Path, sshd_factory, client_key, openssl_pki
) -> None:
    """An SM2 or brainpool-t key made `public_key()` raise UnsupportedAlgorithm (no ValueError): one
    such certificate turned its whole node into an error, every other certificate unseen, and an
    SM2 impostor named as a CA reached the chain and CRL checks' key loads too."""
    odd = make_unloadable_keys(openssl_pki, tmp_path / "odd")
    (server,) = sshd_factory(1)
    tree = lay_linux_node_tree(tmp_path / "n", openssl_pki, leaf=odd.sm2_leaf)
    with tree.host_path(tree.trust_bundle).open("ab") as bundle:
        bundle.write(odd.sm2_impostor.read_bytes() + odd.brainpool_leaf.cert.read_bytes())
    inventory = write_inventory(
        tmp_path / "inv.toml",
        [tree_entry("odd", server, tree)],
        defaults(tmp_path, client_key, [server.host_key_line]),
    )
    done, report = run.scan(inventory, tmp_path / "reports")
    (node,) = report["nodes"]
    assert node["status"] == "ok" and all(s["status"] == "ok" for s in node["stores"]), node
    certs = {c["sha256"]: c for c in node["certificates"]}
    sm2, brainpool = certs[odd.sm2_leaf.sha256], certs[odd.brainpool_leaf.sha256]
    assert (sm2["key_type"], sm2["key_bits"]) == ("EC-1.2.156.10197.1.301", 256)
    assert (brainpool["key_type"], brainpool["key_bits"]) == ("EC-1.3.36.3.3.2.8.1.1.14", 512)
    assert sm2["spki_sha256"] == odd.sm2_leaf.spki_sha256 and sm2["key"]["matches"] is True
    assert {openssl_pki.root.sha256, openssl_pki.intermediate.sha256} <= set(certs)
    rules = {f["rule"] for f in report["findings"]}
    assert "rule-error" not in rules and "key-mismatch" not in rules, report["findings"]
    assert done.returncode in (0, 1), done.stderr


def test_certificates_with_parts_cryptography_refuses_are_one_stores_problems_not_the_nodes(
    tmp_path: Path, sshd_factory, client_key, openssl_pki
) -> None:
    """An extension twice or an x400Address name made cryptography raise neither ValueError nor
    anything sweeper caught: one such planted file turned its node into an error, every other
    certificate unseen. Now each is a named problem of its store, counted, and the rest is read."""
    (server,) = sshd_factory(1)
    tree = lay_linux_node_tree(tmp_path / "n", openssl_pki)
    folder = tree.host_path("/usr/local/share/ca-certificates")
    folder.mkdir(parents=True)
    planted = {"a-twice.der": odd_certs.duplicate_extension(), "b-x400.der": odd_certs.x400_address_name()}
    planted["c-negative.der"] = odd_certs.negative_serial()
    for name, der in planted.items():
        (folder / name).write_bytes(der)
    shutil.copyfile(openssl_pki.root.der, folder / "d-root.der")
    stores = [*tree.stores, {"kind": "dir", "role": "trust", "path": "/usr/local/share/ca-certificates"}]
    inventory = write_inventory(
        tmp_path / "inv.toml",
        [node_entry("odd", server, tree.root, stores, names=list(tree.names))],
        defaults(tmp_path, client_key, [server.host_key_line]),
    )
    done, report = run.scan(inventory, tmp_path / "reports")
    (node,) = report["nodes"]
    assert node["status"] == "ok", node["error"]
    store = next(s for s in node["stores"] if s["store"] == "/usr/local/share/ca-certificates")
    assert store["status"] == "corrupt" and store["certificates"] == 2
    assert store["error"].startswith("/usr/local/share/ca-certificates/a-twice.der: malformed certificate")
    assert store["error"].endswith("(and 1 more problem(s) in this store)")
    serials = {c["sha256"]: c["serial"] for c in node["certificates"]}
    assert serials[hashlib.sha256(planted["c-negative.der"]).hexdigest()] == "-dcc"
    assert openssl_pki.root.sha256 in serials and openssl_pki.leaf_rsa.sha256 in serials
    assert "Warning" not in done.stderr, "no library warning reaches the operator's terminal"


def test_the_read_script_travels_on_the_command_line_and_other_scripts_on_stdin(
    tmp_path: Path, sshd_factory, client_key
) -> None:
    """A script with no secret in it goes on the command line (the node spares a process reading
    it); any other is sent on stdin, never where the node's process list shows it."""
    (server,) = sshd_factory(1)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"{server.host_key_line}\n")
    node = Node(
        name="n",
        host=server.host,
        port=server.port,
        user="root",
        known_hosts=str(known_hosts),
        client_keys=(str(client_key.private_path),),
    )
    own_command_line = "tr '\\0' ' ' < /proc/$$/cmdline; echo  # marker-4711"

    async def command_lines() -> list[str]:
        async def both(session) -> list[str]:
            return [
                (await session.run_script(own_command_line, inline=inline)).stdout.decode()
                for inline in (True, False)
            ]

        return (await Connector((node,)).with_session(node, both))[0]

    inline, on_stdin = asyncio.run(command_lines())
    assert "marker-4711" in inline
    assert "marker-4711" not in on_stdin and on_stdin.split() == ["sh", "-s"]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_many_nodes_behind_one_server_are_all_swept_within_its_default_maxstartups(
    tmp_path: Path, sshd_factory, client_key, openssl_pki, workers: str
) -> None:
    """60 nodes on one sshd with OpenSSH's default MaxStartups (10:30:100), swept 100 at a time with
    one retry at most: the handshakes in flight to one server stay well under 10, so sshd drops
    none, or (under load) too few for a retry not to pick them up."""
    (server,) = sshd_factory(1)
    tree = lay_linux_node_tree(tmp_path / "n", openssl_pki)
    nodes = [tree_entry(f"web{i:02}", server, tree) for i in range(60)]
    inventory = write_inventory(
        tmp_path / "inv.toml", nodes, defaults(tmp_path, client_key, [server.host_key_line])
    )
    args = ("--concurrency", "100", "--retries", "2", "--workers", workers, "--fail-on", "critical")
    done, report = run.scan(inventory, tmp_path / "reports", *args)
    assert done.returncode == 0, done.stderr
    assert {n["status"] for n in report["nodes"]} == {"ok"}
    assert server.connection_count() == 60
