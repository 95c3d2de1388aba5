"""A fleet of real OpenSSH servers for the benches: the lab's Linux and ESXi node trees, each node
served by an `sshd` of its own on loopback (its own port and lab host key), as an outside check
would build one. vCenter nodes are left out: their tools are the lab's stand-ins, which only the
lab's own server puts on a session's PATH.

Where the lab's asyncssh server is Python on this machine's cores, sshd is C: the nodes' side of
a run costs what it costs on a real fleet (a fork, a key exchange, a shell), so the client's share
is what is measured. `FleetHandle.cpu()` is the CPU the servers spent: every listener and its
sessions, running or ended, from a cgroup of their own where this machine allows one (root),
else each listener and the sessions it has reaped (a session kept open counts when it ends).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
from cputime import CpuGroup, cpu_group, process_cpu  # bench/cputime.py

from sweeper.lab.build import build_lab
from sweeper.lab.inventory import render_inventory, render_known_hosts
from sweeper.lab.paths import LAB_HOST, LabPaths

SSHD = Path("/usr/sbin/sshd")
START_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class FleetHandle:
    inventory: Path
    pids: tuple[int, ...]
    nodes: int
    group: CpuGroup | None

    def cpu(self) -> float:
        """CPU seconds every sshd listener and its sessions have spent so far."""
        if self.group is not None:
            return self.group.cpu()
        total = 0.0
        for pid in self.pids:
            with contextlib.suppress(OSError):  # a listener that has ended counts no more
                total += process_cpu(pid)
        return total


def _free_ports(count: int) -> list[int]:
    """`count` distinct free ports: each socket stays bound until all are picked, since a port
    given back is free to be handed out again."""
    held = []
    try:
        for _ in range(count):
            sock = socket.socket()
            held.append(sock)
            sock.bind((LAB_HOST, 0))
        return [int(sock.getsockname()[1]) for sock in held]
    finally:
        for sock in held:
            sock.close()


def _config(directory: Path, port: int, host_key: Path, authorized: Path) -> Path:
    config = directory / f"sshd-{port}.conf"
    config.write_text(
        "\n".join(
            [
                f"ListenAddress {LAB_HOST}:{port}",
                f"HostKey {host_key}",
                f"PidFile {directory / f'sshd-{port}.pid'}",
                f"AuthorizedKeysFile {authorized}",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "UseDNS no",
                "PrintMotd no",
                "LogLevel ERROR",
                "MaxStartups 100:30:200",
                # root's bash here sources an rc file (pyenv) for every command, which a node's doesn't
                "SetEnv SHLVL=1",
            ]
        )
        + "\n"
    )
    return config


def _banner(port: int) -> bool:
    try:
        with socket.create_connection((LAB_HOST, port), timeout=1) as sock:
            return sock.recv(8).startswith(b"SSH-2.0")
    except OSError:
        return False


@contextlib.contextmanager
def sshd_fleet(lab_dir: Path, nodes: int, rebuild: bool = False) -> Iterator[FleetHandle]:
    """Build (or reuse, unless `rebuild`) a lab of `nodes` nodes in `lab_dir` and serve its Linux
    and ESXi nodes with real sshd."""
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    build = build_lab(lab_dir, nodes, rebuild=rebuild)
    paths = LabPaths(build.dir)
    plan = tuple(n for n in build.nodes if n.profile in ("linux", "esxi"))
    directory = paths.dir / "sshd"
    directory.mkdir(exist_ok=True)
    authorized = directory / "authorized_keys"
    authorized.write_text(paths.client_key.with_suffix(".pub").read_text())
    ports = dict(zip((n.name for n in plan), _free_ports(len(plan)), strict=True))
    processes: list[subprocess.Popen[bytes]] = []
    with cpu_group(f"sweeper-bench-{os.getpid()}") as group:
        try:
            for node in plan:
                config = _config(directory, ports[node.name], paths.host_key(node.name), authorized)
                processes.append(
                    subprocess.Popen(
                        [str(SSHD), "-D", "-f", str(config)],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
                if group is not None:  # before it serves anyone: its sessions are born inside
                    group.add(processes[-1].pid)
            deadline = time.monotonic() + START_TIMEOUT
            for node, process in zip(plan, processes, strict=True):
                while not _banner(ports[node.name]):
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"sshd for {node.name} did not come up (status {process.poll()})")
                    time.sleep(0.01)
            public = {
                n.name: asyncssh.read_private_key(paths.host_key(n.name)).export_public_key() for n in plan
            }
            paths.known_hosts.write_text(render_known_hosts(ports, public))
            inventory = directory / "inventory.toml"
            text = render_inventory(paths, plan, ports, dict.fromkeys(ports, 0))
            inventory.write_text(text.replace("tls_port = 0\n", ""))  # no TLS endpoints here
            yield FleetHandle(inventory, tuple(p.pid for p in processes), len(plan), group)
        finally:
            for process in processes:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
            for process in processes:
                process.wait()
