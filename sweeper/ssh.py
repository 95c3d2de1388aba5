"""SSH transport: one connection per node, strict host keys, typed failures, retries on transient faults.

The only module (with `lab/`) that imports asyncssh. Callers get `Session.run()` and plain
results; failures come out as the NodeError classes in `sweeper.errors`, which decide both
the node's status in the report and whether a retry is worth it.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import asyncssh
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from sweeper.errors import AuthFailed, BadInput, HostKeyMismatch, NodeError, Transient, Unreachable
from sweeper.model import Node

T = TypeVar("T")
AskSecret = Callable[[str], str]
"""Prompts the operator for a secret (never echoed); None when there is no terminal."""

DEFAULT_KEYS = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded attempts; transient faults only."""

    attempts: int = 4
    base: float = 0.5
    cap: float = 8.0


@dataclass(frozen=True, slots=True)
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str


class Session:
    """An open, authenticated connection to one node; every read of the node goes over it."""

    def __init__(self, node: Node, conn: asyncssh.SSHClientConnection) -> None:
        self.node = node
        self._conn = conn

    async def run(
        self, command: str, stdin: str | None = None, timeout: float | None = None
    ) -> CommandResult:
        """Run one command; a lost connection is Transient, anything else comes back as a result."""
        try:
            proc = await self._conn.run(
                command, input=stdin, check=False, timeout=timeout, encoding="utf-8", errors="replace"
            )
        except asyncssh.TimeoutError as exc:
            raise Transient(f"command timed out after {timeout:g}s") from exc
        except (asyncssh.Error, OSError) as exc:
            raise classify(exc) from exc
        status = proc.exit_status if proc.exit_status is not None else 255
        return CommandResult(status, str(proc.stdout or ""), str(proc.stderr or ""))


class Connector:
    """Opens connections with credentials and known_hosts loaded once for the whole fleet."""

    def __init__(
        self, nodes: tuple[Node, ...], retry: RetryPolicy = RetryPolicy(), ask: AskSecret | None = None
    ) -> None:
        self.retry = retry
        self._ask = ask
        self._known_hosts: dict[str, asyncssh.SSHKnownHosts | None] = {}
        self._keys: dict[tuple[str, ...], list[asyncssh.SSHKey]] = {}
        self._passwords: dict[str, str] = {}
        self._tofu_lock = asyncio.Lock()
        for node in nodes:
            self._load_for(node)

    def _load_for(self, node: Node) -> None:
        if node.known_hosts and node.known_hosts not in self._known_hosts:
            self._known_hosts[node.known_hosts] = _read_known_hosts(node.known_hosts, node.accept_new)
        if node.client_keys not in self._keys:
            self._keys[node.client_keys] = self._load_keys(node.client_keys, node.passphrase_env)
        if node.password_env and node.password_env not in self._passwords:
            self._passwords[node.password_env] = self._secret(node.password_env, "password")

    def _secret(self, variable: str, what: str) -> str:
        """A secret from the variable the inventory names, or the operator's answer at a prompt."""
        value = os.environ.get(variable)
        if value is not None:
            return value
        if self._ask is not None:
            return self._ask(f"{what} ({variable} is not set): ")
        raise BadInput(f"the {what} variable {variable} named in the inventory is not set")

    def _load_keys(self, paths: tuple[str, ...], passphrase_env: str | None) -> list[asyncssh.SSHKey]:
        """Load client keys once (a passphrase costs ~150 ms of bcrypt per load)."""
        explicit = bool(paths)
        candidates = paths or tuple(os.path.expanduser(p) for p in DEFAULT_KEYS)
        passphrase = self._secret(passphrase_env, "key passphrase") if passphrase_env else None
        keys = []
        for path in candidates:
            if not os.path.exists(path):
                if explicit:
                    raise BadInput(f"{path}: client key not found")
                continue
            keys.append(self._read_key(path, passphrase))
        return keys

    def _read_key(self, path: str, passphrase: str | None) -> asyncssh.SSHKey:
        try:
            return asyncssh.read_private_key(path, passphrase)
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
            if passphrase is None and self._ask is not None and "assphrase" in str(exc):
                return self._read_key(path, self._ask(f"passphrase for {path}: "))
            raise BadInput(f"{path}: cannot load client key: {exc}") from None
        except OSError as exc:
            raise BadInput(f"{path}: cannot read client key: {exc.strerror}") from None

    async def with_session(self, node: Node, work: Callable[[Session], Awaitable[T]]) -> tuple[T, int]:
        """Connect (retrying transient faults), run `work`, close; returns its result and attempts."""
        attempts = 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=wait_random_exponential(multiplier=self.retry.base, max=self.retry.cap),
            retry=retry_if_exception_type(Transient),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    conn = await self._connect(node)
                    try:
                        return await work(Session(node, conn)), attempts
                    finally:
                        conn.close()
        except Transient as exc:
            raise Unreachable(f"{exc} (gave up after {attempts} attempts)").with_attempts(attempts) from exc
        except NodeError as exc:
            raise exc.with_attempts(attempts) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _connect(self, node: Node) -> asyncssh.SSHClientConnection:
        known_hosts = self._known_hosts.get(node.known_hosts or "")
        trust_on_first_use = node.accept_new and not _has_entry(known_hosts, node)
        try:
            conn = await asyncssh.connect(
                node.host,
                node.port or (() if node.ssh_config else 22),
                username=node.user or (() if node.ssh_config else getpass.getuser()),
                known_hosts=None if trust_on_first_use else known_hosts,
                client_keys=self._keys[node.client_keys] or (() if node.agent else None),
                password=self._passwords.get(node.password_env or ""),
                agent_path=() if node.agent else None,
                config=[node.ssh_config] if node.ssh_config else None,
                connect_timeout=node.connect_timeout,
                preferred_auth=("publickey", "keyboard-interactive", "password"),
                x509_trusted_certs=None,
            )
        except (TimeoutError, asyncssh.Error, OSError) as exc:
            raise classify(exc) from exc
        if trust_on_first_use:
            await self._remember_host_key(node, conn)
        return conn

    async def _remember_host_key(self, node: Node, conn: asyncssh.SSHClientConnection) -> None:
        """accept-new: append the key of a host we had never seen, as OpenSSH does."""
        key = conn.get_server_host_key()
        if key is None or not node.known_hosts:
            return
        port = node.port or 22
        host = node.host if port == 22 else f"[{node.host}]:{port}"
        line = f"{host} {key.export_public_key('openssh').decode().strip()}\n"
        async with self._tofu_lock:
            path = Path(node.known_hosts)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as handle:
                handle.write(line)
            self._known_hosts[node.known_hosts] = _read_known_hosts(node.known_hosts, True)


def classify(exc: BaseException) -> NodeError:
    """Map a transport exception to the NodeError class that decides status and retry."""
    if isinstance(exc, NodeError):
        return exc
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return HostKeyMismatch(f"host key not verifiable: {exc.reason}")
    if isinstance(exc, asyncssh.PermissionDenied):
        return AuthFailed(f"authentication refused: {exc.reason}")
    if isinstance(exc, asyncssh.ConnectionLost):
        return Transient(f"connection dropped before the session was set up: {exc.reason}")
    if isinstance(exc, asyncssh.DisconnectError):
        return Unreachable(f"SSH protocol failure: {exc.reason}")
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return Transient("timed out connecting")
    if isinstance(exc, ConnectionRefusedError):
        return Transient("connection refused")
    if isinstance(exc, ConnectionResetError):
        return Transient("connection reset")
    if isinstance(exc, socket.gaierror):
        return Unreachable(f"cannot resolve host name: {exc.strerror}")
    if isinstance(exc, OSError):
        return Transient(exc.strerror or str(exc))
    return NodeError(f"{type(exc).__name__}: {exc}")


def _has_entry(known_hosts: asyncssh.SSHKnownHosts | None, node: Node) -> bool:
    if known_hosts is None:
        return False
    host_keys, ca_keys, *_ = known_hosts.match(node.host, "", node.port or 22)
    return bool(host_keys or ca_keys)


def _read_known_hosts(path: str, accept_new: bool) -> asyncssh.SSHKnownHosts | None:
    if not os.path.exists(path):
        if accept_new:
            return None
        raise BadInput(
            f"{path}: known_hosts file not found; host keys are checked strictly "
            '(set host_key_checking = "accept-new" to trust nodes on first connection)'
        )
    try:
        return asyncssh.read_known_hosts(path)
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: cannot read known_hosts: {exc}") from None
