"""`sweeper scan --workers`: nodes read by worker processes make the one-process report, stop on
Ctrl-C, keep secrets out of the workers' argv and environment, and survive a worker's death."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sweeper.lab import LabHandle, start_lab
from sweeper.model import Node
from sweeper.workers import AUTO_MIN_NODES, worker_count
from tests.support import run
from tests.support.fixtures import write_inventory
from tests.support.node_tree import lay_linux_node_tree
from tests.support.sshd import ssh_keygen

pytestmark = pytest.mark.skipif(not Path("/usr/sbin/sshd").exists(), reason="needs openssh-server")

SECRET = "worker-secret-7f3a9c"
SECRET_ENV = {"SWEEPER_TEST_KEY_PASSPHRASE": SECRET, "SWEEPER_TEST_PASSWORD": SECRET}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with start_lab(tmp_path_factory.mktemp("lab"), nodes=12) as handle:
        yield handle


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """A report without what differs between any two runs: its id, times and command line."""
    run_info = {k: v for k, v in report["run"].items() if k not in ("id", "started", "finished", "argv")}
    nodes = [{k: v for k, v in node.items() if k != "duration"} for node in report["nodes"]]
    return {**report, "run": run_info, "nodes": nodes}


def test_two_workers_make_the_one_process_report_and_key_cache(lab: LabHandle, tmp_path: Path) -> None:
    reports, caches = {}, {}
    for workers in ("1", "2", "auto"):
        cache_home = tmp_path / f"cache-{workers}"
        done, report = run.scan(
            lab.inventory,
            tmp_path / f"out-{workers}",
            "--workers",
            workers,
            env={**lab.env, "XDG_CACHE_HOME": str(cache_home)},
        )
        assert done.returncode == 1, done.stderr  # the lab's planted incident
        reports[workers] = comparable(report)
        caches[workers] = json.loads((cache_home / "sweeper" / "key-spki.json").read_text())
    assert all(n["status"] == "ok" for n in reports["1"]["nodes"])
    assert reports["2"] == reports["1"]
    assert reports["auto"] == reports["1"]
    assert caches["2"] == caches["1"] and caches["1"]["nodes"]


def test_workers_log_in_with_the_parents_unlocked_key_and_fleet_rules_span_workers(
    tmp_path: Path, sshd_factory, openssl_pki
) -> None:
    key = tmp_path / "id_locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", SECRET, "-f", str(key)], check=True)
    (server,) = sshd_factory(1, authorized_keys=[Path(f"{key}.pub").read_text().strip()])
    (tmp_path / "known_hosts").write_text(server.host_key_line + "\n")
    nodes = []
    for name in ("a", "b", "c"):
        tree = lay_linux_node_tree(tmp_path / name, openssl_pki)
        entry = {"name": name, "host": server.host, "port": server.port, "profile": "linux"}
        nodes.append({**entry, "root": str(tree.root), "stores": tree.stores, "names": list(tree.names)})
    defaults = {
        "user": "root",
        "known_hosts": str(tmp_path / "known_hosts"),
        "client_keys": [str(key)],
        "passphrase_env": "SWEEPER_TEST_KEY_PASSPHRASE",
    }
    inventory = write_inventory(tmp_path / "inv.toml", nodes, defaults)
    done, report = run.scan(inventory, tmp_path / "out", "--workers", "3", env=SECRET_ENV)
    assert [(n["name"], n["status"]) for n in report["nodes"]] == [("a", "ok"), ("b", "ok"), ("c", "ok")]
    listed = subprocess.run(["ssh-keygen", "-lf", f"{key}.pub"], check=True, capture_output=True, text=True)
    fingerprint = listed.stdout.split()[1]
    assert all(fingerprint in n["identity"] for n in report["nodes"]), report["nodes"][0]["identity"]
    assert SECRET not in json.dumps(report) and SECRET not in done.stderr
    # the three trees hold one key: a fleet-wide rule sees it across the three workers' nodes
    reuse = sorted(f["node"] for f in report["findings"] if f["rule"] == "key-reuse")
    assert reuse == ["a", "b", "c"] and done.returncode == 1, done.stderr


def fleet(count: int, host: str = "10.0.0.1", **fields: str) -> tuple[Node, ...]:
    return tuple(Node(name=f"n{k}", host=host, **fields) for k in range(count))


def test_auto_is_one_process_for_a_small_fleet_and_one_per_core_for_a_big_one() -> None:
    cores = len(os.sched_getaffinity(0))
    assert worker_count(None, fleet(AUTO_MIN_NODES - 1), 100) == 1
    assert worker_count(None, fleet(AUTO_MIN_NODES), 100) == min(cores, 100)
    assert worker_count(8, fleet(3), 100) == 3  # never more processes than nodes
    assert worker_count(8, fleet(500), 2) == 2  # nor than concurrent slots


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.5.9", "::1", "localhost"])
def test_auto_is_one_process_for_a_fleet_on_this_machines_loopback(host: str) -> None:
    """Its SSH servers share this machine's cores: more processes would only add their start."""
    assert worker_count(None, fleet(AUTO_MIN_NODES * 4, host), 100) == 1
    assert worker_count(2, fleet(AUTO_MIN_NODES * 4, host), 100) == 2  # a number is taken as given


def test_auto_is_one_process_for_a_fleet_on_one_of_this_machines_own_addresses() -> None:
    """sshd listeners (or host-networked containers) on this machine's interface address share its
    cores as much as loopback ones do."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("198.51.100.1", 9))  # no packet leaves: it only picks the outgoing address
        except OSError:
            pytest.skip("no route off this machine, so no address of its own but loopback")
        own = probe.getsockname()[0]
    assert worker_count(None, fleet(AUTO_MIN_NODES * 4, own), 100) == 1
    assert worker_count(None, fleet(AUTO_MIN_NODES * 4, "0.0.0.0"), 100) == 1


def test_auto_counts_a_fleet_as_remote_if_any_node_is_reached_elsewhere() -> None:
    cores = len(os.sched_getaffinity(0))
    mixed = fleet(AUTO_MIN_NODES, "127.0.0.1") + fleet(1, "192.0.2.7")
    assert worker_count(None, mixed, 100) == min(cores, 100)
    behind_a_bastion = fleet(AUTO_MIN_NODES, "127.0.0.1", jump="bastion")
    assert worker_count(None, behind_a_bastion, 100) == min(cores, 100)
    by_ssh_config_alias = fleet(AUTO_MIN_NODES, "localhost", ssh_config="~/.ssh/config")
    assert worker_count(None, by_ssh_config_alias, 100) == min(cores, 100)


@pytest.mark.parametrize("value", ["0", "x", "-1", ""])
def test_a_bad_workers_value_is_a_one_line_usage_error(tmp_path: Path, value: str) -> None:
    (tmp_path / "inv.toml").write_text('[[nodes]]\nname = "n1"\nhost = "127.0.0.1"\nport = 1\n')
    done = run.sweeper("scan", "inv.toml", "--workers", value)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and "number of processes" in lines[0], done.stderr


def silent_fleet(tmp_path: Path, listener, count: int, connect_timeout: float) -> Path:
    """`count` nodes at a listener that never speaks SSH, logging in with a passphrase-protected
    key and a password, both from variables: secrets the workers must get without the environment."""
    key = tmp_path / "id_locked"
    ssh_keygen(key, "locked")
    subprocess.run(["ssh-keygen", "-q", "-p", "-N", SECRET, "-f", str(key)], check=True, capture_output=True)
    (tmp_path / "known_hosts").write_text("")
    nodes = [
        {"name": f"mute{i}", "host": listener.host, "port": listener.port, "profile": "esxi"}
        for i in range(count)
    ]
    defaults = {
        "user": "root",
        "known_hosts": str(tmp_path / "known_hosts"),
        "client_keys": [str(key)],
        "passphrase_env": "SWEEPER_TEST_KEY_PASSPHRASE",
        "password_env": "SWEEPER_TEST_PASSWORD",
        "connect_timeout": connect_timeout,
    }
    return write_inventory(tmp_path / "inv.toml", nodes, defaults)


def workers_of(pid: int) -> list[int]:
    """The worker processes a sweeper started."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and b"sweeper.workers" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def test_ctrl_c_stops_every_worker_within_seconds_and_the_report_is_interrupted(
    tmp_path: Path, silent_listener
) -> None:
    inventory = silent_fleet(tmp_path, silent_listener, 4, connect_timeout=3600)
    proc = run.start("scan", inventory, "--out", tmp_path / "out", "--workers", "2", env=SECRET_ENV)
    silent_listener.wait_for_connections(4)  # both workers are connected and waiting for a banner
    workers = workers_of(proc.pid)
    assert len(workers) == 2
    for pid in workers:
        for place in ("cmdline", "environ"):
            assert SECRET.encode() not in Path(f"/proc/{pid}/{place}").read_bytes(), place
    signalled = time.monotonic()
    proc.send_signal(signal.SIGINT)
    done = run.finish(proc, timeout=60)
    assert time.monotonic() - signalled < 10
    assert done.returncode == 3, done.stderr
    report = run.only_report(tmp_path / "out")
    assert report["run"]["interrupted"] is True
    assert [n["error"] for n in report["nodes"]] == ["interrupted before this node was swept"] * 4
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_a_worker_that_dies_leaves_its_nodes_in_error_and_the_sweep_goes_on(
    tmp_path: Path, silent_listener
) -> None:
    inventory = silent_fleet(tmp_path, silent_listener, 4, connect_timeout=4)
    proc = run.start(
        "scan", inventory, "--out", tmp_path / "out", "--workers", "2", "--retries", "1", env=SECRET_ENV
    )
    silent_listener.wait_for_connections(4)
    first, _ = workers_of(proc.pid)
    os.kill(first, signal.SIGKILL)
    done = run.finish(proc, timeout=60)
    assert done.returncode == 3, done.stderr
    report = run.only_report(tmp_path / "out")
    assert report["run"]["interrupted"] is False
    statuses = [(n["status"], n["error"]) for n in report["nodes"]]
    died = ("error", "worker process ended unexpectedly (exit status -9)")
    assert statuses.count(died) == 2, statuses  # the dead worker's share, dealt round-robin
    assert [s for s, _ in statuses if (s, _) != died] == ["unreachable", "unreachable"], statuses
