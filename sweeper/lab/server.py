"""Serve a built lab: per node an asyncssh listener running every exec request in a real
/bin/sh, and a TLS listener serving the node's certificate (see tls.py).

One process, one event loop: 2,000 listeners cost file descriptors, not threads. Each
node has its own persistent host key; the lab's client key is accepted for any user
name and nothing else is (no passwords). Commands run with the node root as cwd and
HOME, `LANG=C`, and this process's PATH after the node's own tools (its LAB_BIN folder).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import weakref
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import asyncssh

from sweeper.lab.files import write_atomic
from sweeper.lab.inventory import render_inventory, render_known_hosts
from sweeper.lab.paths import (
    LAB_HOST,
    SSO_PASSWORD,
    SSO_PASSWORD_ENV,
    SSO_USER,
    LabError,
    LabPaths,
)
from sweeper.lab.plan import LAB_BIN, plan_fleet
from sweeper.lab.state import read_json
from sweeper.lab.tls import TlsEndpoint
from sweeper.lab.vmdir import start_directory, stop_directory
from sweeper.ssh.logs import skip_disabled_levels

LAB_SCHEMA = "sweeper.lab/1"
LOGIN = "Accepted publickey for"
"""How a lab node's var/log/auth.log records a login (sshd's words)."""
_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class _Node:
    """What a session needs to know about its node; `children` is shared by all nodes."""

    name: str
    root: Path
    children: set[asyncio.subprocess.Process]


async def serve_lab(dir: Path, stop: asyncio.Event | None = None) -> None:
    """Serve the lab built in `dir` until `stop` is set or SIGTERM/SIGINT arrives.

    Once every listener is bound, inventory.toml, known_hosts and lab.json (the ready
    marker) are written atomically; lab.json is removed again on the way out.

    :raises LabError: if `dir` holds no completed build
    """
    paths = LabPaths(Path(dir).resolve())
    build = read_json(paths.build_json)
    if build is None:
        raise LabError(f"{paths.dir} holds no lab build; build it first")
    plan = plan_fleet(int(build["nodes"]), int(build["seed"]), tuple(build.get("hostile", ())))
    _raise_fd_limit(len(plan))
    skip_disabled_levels()  # the lab's nodes are on this machine's cores too
    stop = stop or asyncio.Event()
    _stop_on_signals(stop)

    client_key = asyncssh.read_private_key(paths.client_key)
    authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())
    children: set[asyncio.subprocess.Process] = set()
    connections: weakref.WeakSet[asyncssh.SSHServerConnection] = weakref.WeakSet()
    listeners: list[asyncssh.SSHAcceptor] = []
    tls_servers: list[asyncio.Server] = []
    tls_live: set[asyncio.StreamWriter] = set()
    directory = start_directory(paths) if (paths.vmdir / "ldap").is_dir() else None
    try:
        ports: dict[str, int] = {}
        tls_ports: dict[str, int] = {}
        public_keys: dict[str, bytes] = {}
        for node in plan:
            host_key = asyncssh.read_private_key(paths.host_key(node.name))
            session = _Node(node.name, paths.node_root(node.name), children)
            listener = await asyncssh.listen(
                LAB_HOST,
                0,
                backlog=256,
                server_host_keys=[host_key],
                authorized_client_keys=authorized,
                password_auth=False,
                kbdint_auth=False,
                gss_host=None,
                agent_forwarding=False,
                x11_forwarding=False,
                allow_scp=True,
                sftp_factory=True,
                encoding=None,
                process_factory=partial(_run, session),
                acceptor=partial(_logged_in, session, connections),
            )
            listeners.append(listener)
            ports[node.name] = listener.get_port()
            public_keys[node.name] = host_key.export_public_key()
            tls_server = await TlsEndpoint(session.root, node).listen(LAB_HOST, tls_live)
            tls_servers.append(tls_server)
            tls_ports[node.name] = tls_server.sockets[0].getsockname()[1]
        write_atomic(paths.inventory, render_inventory(paths, plan, ports, tls_ports))
        write_atomic(paths.known_hosts, render_known_hosts(ports, public_keys))
        info = {
            "schema": LAB_SCHEMA,
            "pid": os.getpid(),
            "ready": True,
            "started": datetime.now(UTC).replace(microsecond=0).isoformat(),
            "nodes": len(plan),
            "seed": build["seed"],
            "inventory": str(paths.inventory),
            "known_hosts": str(paths.known_hosts),
            "client_key": str(paths.client_key),
            "ports": ports,
            "tls_ports": tls_ports,
            "sso_user": SSO_USER,
            "sso_password_env": SSO_PASSWORD_ENV,
            "sso_password": SSO_PASSWORD,
        }
        write_atomic(paths.lab_json, json.dumps(info, indent=2) + "\n", 0o600)
        await stop.wait()
    finally:
        paths.lab_json.unlink(missing_ok=True)
        for listener in listeners:
            listener.close()
        for server in tls_servers:
            server.close()
        for writer in list(tls_live):
            writer.close()
        for conn in list(connections):
            conn.close()
        for child in list(children):
            with suppress(ProcessLookupError):
                child.kill()
        await asyncio.gather(*(lst.wait_closed() for lst in listeners), return_exceptions=True)
        if directory is not None:
            stop_directory(paths, directory)


def _logged_in(
    node: _Node,
    connections: weakref.WeakSet[asyncssh.SSHServerConnection],
    conn: asyncssh.SSHServerConnection,
) -> None:
    """A login: kept to be closed on the way out, and written to the node's /var/log/auth.log as
    sshd writes it, so a test can count a node's logins as on a real one."""
    connections.add(conn)
    host, port = (conn.get_extra_info("peername") or ("?", 0))[:2]
    user = conn.get_extra_info("username") or "?"
    logs = node.root / "var/log"
    with suppress(OSError):
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / "auth.log", "a") as log:
            when = f"{datetime.now(UTC):%b %d %H:%M:%S}"
            log.write(f"{when} {node.name} sshd: {LOGIN} {user} from {host} port {port} ssh2\n")


async def _run(node: _Node, process: asyncssh.SSHServerProcess[bytes]) -> None:
    """One session: the command in `/bin/sh -c`, its stdio wired to the channel."""
    if process.subsystem:
        process.stderr.write(f"subsystem {process.subsystem} is not supported\n".encode())
        process.exit(1)
        return
    argv = ["/bin/sh", "-c", process.command] if process.command is not None else ["/bin/sh"]
    user = process.get_extra_info("username") or "lab"
    env = {
        "PATH": f"{node.root}{LAB_BIN}:{os.environ.get('PATH', os.defpath)}",
        "LANG": "C",
        "HOME": str(node.root),
        "USER": user,
        "LOGNAME": user,
        "SHELL": "/bin/sh",
        "SWEEPER_LAB_NODE": node.name,
    }
    try:
        child = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=node.root,
            env=env,
        )
    except OSError as exc:
        process.stderr.write(f"lab: cannot start /bin/sh: {exc}\n".encode())
        process.exit(255)
        return
    node.children.add(child)
    assert child.stdin and child.stdout and child.stderr
    feeder = asyncio.create_task(_feed(process.stdin, child.stdin))
    try:
        await asyncio.gather(_pump(child.stdout, process.stdout), _pump(child.stderr, process.stderr))
        status = await child.wait()
    except (OSError, asyncssh.Error):
        return  # the client went away; `finally` ends the command
    finally:
        feeder.cancel()
        node.children.discard(child)
        if child.returncode is None:
            with suppress(ProcessLookupError):
                child.kill()
            await child.wait()
    if status < 0:
        process.exit_with_signal(signal.Signals(-status).name.removeprefix("SIG"))
    else:
        process.exit(status)


async def _pump(source: asyncio.StreamReader, sink: asyncssh.SSHWriter[bytes]) -> None:
    """Copy a child's output to the channel until EOF, respecting flow control."""
    while chunk := await source.read(_CHUNK):
        sink.write(chunk)
        await sink.drain()


async def _feed(source: asyncssh.SSHReader[bytes], sink: asyncio.StreamWriter) -> None:
    """Copy the client's stdin to the child, closing the child's stdin on EOF."""
    try:
        while chunk := await source.read(_CHUNK):
            sink.write(chunk)
            await sink.drain()
    except (OSError, asyncssh.Error):
        pass
    finally:
        sink.close()


def _raise_fd_limit(nodes: int) -> None:
    """Two listeners per node plus ~4 descriptors per live session: lift the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * nodes + 4096
    if soft != resource.RLIM_INFINITY and soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < want:
            raise LabError(f"{nodes} nodes need {want} file descriptors; the hard limit is {hard}")


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
