"""Open connections to nodes: direct or through a shared bastion, retried on transient faults only."""

from __future__ import annotations

import asyncio
import getpass
import resource
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TypeVar

import asyncssh
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from sweeper.errors import HostKeyMismatch, HostKeyUnknown, NodeError, Transient, Unreachable
from sweeper.model import Node
from sweeper.ssh.bastion import Bastions
from sweeper.ssh.credentials import AskSecret, Credentials, CredentialSeed
from sweeper.ssh.faults import classify
from sweeper.ssh.session import MAX_NODE_BYTES, Session

T = TypeVar("T")
# AES-GCM first: one AEAD call per packet in C, where asyncssh's chacha20-poly1305 builds
# a cipher context per packet in Python (~8 µs each, thousands per sweep). All are strong.
CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)

HANDSHAKES_PER_SERVER = 5
"""Connections to one SSH server (address and port) that may be unauthenticated at once: OpenSSH's
default `MaxStartups 10:30:100` drops new ones past 10, so inventories that put many nodes behind
one server (containers, chroots, port maps) would otherwise lose nodes to retries. Well under 10:
sshd counts a login done only once its child has told the listener, which lags under load."""

KEEPALIVE_EVERY = 30.0
"""Seconds between keepalives on a connection kept between a rotation's phases (a wave may leave a
node idle for minutes): a NAT or firewall that forgets idle flows keeps it, and one dropped without
a word is known dead after three unanswered, closed, and logged into again at the next phase."""

__all__ = ["AskSecret", "Connector", "RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded attempts; transient faults only."""

    attempts: int = 4
    base: float = 0.5
    cap: float = 8.0

    def retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_random_exponential(multiplier=self.base, max=self.cap),
            retry=retry_if_exception_type(Transient),
            reraise=True,
        )


class _TrustOnFirstUse(asyncssh.SSHClient):
    """accept-new for a host known_hosts has no key for: its key is trusted on first use, unless
    it is one of the revoked keys given as `known_hosts` (asyncssh refuses those before it asks us)."""

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        return True


class Connector:
    """Opens connections with credentials and known_hosts loaded once for the whole fleet."""

    def __init__(
        self,
        nodes: tuple[Node, ...],
        retry: RetryPolicy = RetryPolicy(),
        ask: AskSecret | None = None,
        env: Mapping[str, str] | None = None,
        max_node_bytes: int = MAX_NODE_BYTES,
        seed: CredentialSeed | None = None,
        handshakes_per_server: int = HANDSHAKES_PER_SERVER,
        keep_open: bool | Collection[str] = False,
    ):
        """`env`: where the variables the inventory names are read (default: this process's environment);
        `max_node_bytes`: the most one command on a node may print before it is cut off;
        `seed`: secrets and keys another process already loaded (a worker's);
        `handshakes_per_server`: this process's share of HANDSHAKES_PER_SERVER (a worker's is smaller);
        `keep_open`: keep each node's connection (True), or only these nodes' (their names), for its
        next `with_session` (a rotation's phases: one login per node instead of one per phase), as
        many as half this process's file limit."""
        self.retry = retry
        self.max_node_bytes = max_node_bytes
        self.credentials = Credentials(nodes, ask, env, seed)
        self.bastions = Bastions(self._connect_with_retries)
        self._handshakes = max(1, handshakes_per_server)
        self._servers: dict[tuple[str, int | None], asyncio.Semaphore] = {}
        self._kept: dict[str, asyncssh.SSHClientConnection] = {}
        self._keep_at_most = resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 2 if keep_open else 0
        self._keep_only = None if isinstance(keep_open, bool) else frozenset(keep_open)

    async def with_session(self, node: Node, work: Callable[[Session], Awaitable[T]]) -> tuple[T, int]:
        """Connect (retrying transient faults), run `work`, close (or keep: `keep_open`); returns its
        result and attempts. A kept connection the node has dropped since fails like any lost one:
        the retry connects again."""

        async def attempt() -> T:
            conn = self._kept.pop(node.name, None)
            if conn is None or conn.is_closed():
                conn = await self._connect(node, await self.bastions.tunnel(node))
            keep = False
            try:
                become_password = self.credentials.become_password(node)
                result = await work(Session(node, conn, become_password, self.max_node_bytes))
                keep = (
                    len(self._kept) < self._keep_at_most
                    and node.name not in self._kept
                    and (self._keep_only is None or node.name in self._keep_only)
                )
                return result
            finally:
                if keep:
                    self._kept[node.name] = conn
                else:
                    conn.close()

        return await self._retried(attempt)

    def identity(self, node: Node) -> str:
        return self.credentials.identity(node, node.user or getpass.getuser())

    async def close(self) -> None:
        for conn in self._kept.values():
            conn.close()
        self._kept.clear()
        await self.bastions.close()

    async def _connect_with_retries(
        self, node: Node, tunnel: asyncssh.SSHClientConnection | None
    ) -> asyncssh.SSHClientConnection:
        conn, _ = await self._retried(lambda: self._connect(node, tunnel))
        return conn

    async def _retried(self, action: Callable[[], Awaitable[T]]) -> tuple[T, int]:
        """Run `action` under the retry policy; a fault that outlasts it is Unreachable.
        Every failure carries the number of attempts made."""
        attempts = 0
        try:
            async for attempt in self.retry.retrying():
                with attempt:
                    attempts += 1
                    return await action(), attempts
        except Transient as exc:
            raise Unreachable(f"{exc} (gave up after {attempts} attempts)").with_attempts(attempts) from exc
        except NodeError as exc:
            raise exc.with_attempts(attempts) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _server_gate(self, node: Node) -> asyncio.Semaphore:
        """Bounds the handshakes in flight to a directly reached node's server."""
        server = (node.host, node.port)
        if server not in self._servers:
            self._servers[server] = asyncio.Semaphore(self._handshakes)
        return self._servers[server]

    def _host_key_failure(self, node: Node, port: int, trust_on_first_use: bool) -> NodeError:
        """An unknown node (add its key) is told apart from a changed key (possibly an attacker),
        and from a revoked key, the only one trust on first use refuses."""
        if trust_on_first_use:
            return HostKeyMismatch(f"the host key of {node.host}:{port} is marked @revoked in known_hosts")
        if not self.credentials.has_host(node, node.host, port):
            return HostKeyUnknown(
                f"known_hosts has no key for {node.host}:{port}: add it, or set "
                'host_key_checking = "accept-new" to trust it on first use'
            )
        return HostKeyMismatch(
            f"the host key of {node.host}:{port} is not the one known_hosts holds: possibly a "
            "man-in-the-middle; check the node before you trust its new key"
        )

    async def _connect(
        self, node: Node, tunnel: asyncssh.SSHClientConnection | None
    ) -> asyncssh.SSHClientConnection:
        port = node.port or 22
        trust_on_first_use = node.accept_new and not self.credentials.has_host(node, node.host, port)
        known: asyncssh.SSHKnownHosts | tuple[list[asyncssh.SSHKey], ...] | None
        if trust_on_first_use:  # nothing is trusted yet, but what is revoked stays refused
            known = ([], [], self.credentials.revoked_host_keys(node, node.host, port))
        else:
            known = self.credentials.known_hosts(node)
            if known is None:  # asyncssh would take None as "do not check"
                raise HostKeyUnknown("no known_hosts to check the host key against")
        gate = self.bastions.gate(node) if node.jump else self._server_gate(node)
        try:
            async with gate:
                conn = await asyncssh.connect(
                    node.host,
                    node.port or (() if node.ssh_config else 22),
                    tunnel=tunnel if tunnel is not None else (),
                    username=node.user or (() if node.ssh_config else getpass.getuser()),
                    known_hosts=known,
                    client_factory=_TrustOnFirstUse if trust_on_first_use else None,
                    client_keys=self.credentials.keys(node) or (() if node.agent else None),
                    password=self.credentials.password(node),
                    agent_path=() if node.agent else None,
                    config=[node.ssh_config] if node.ssh_config else None,
                    connect_timeout=node.connect_timeout,
                    preferred_auth=("publickey", "keyboard-interactive", "password"),
                    x509_trusted_certs=None,
                    encryption_algs=CIPHERS,
                    keepalive_interval=KEEPALIVE_EVERY if self._keep_at_most else (),
                    keepalive_count_max=3 if self._keep_at_most else (),
                )
        except (TimeoutError, asyncssh.Error, OSError) as exc:
            failure = classify(exc)
            if isinstance(failure, HostKeyMismatch):
                raise self._host_key_failure(node, port, trust_on_first_use) from exc
            raise failure from exc
        if trust_on_first_use:
            await self.credentials.remember_host_key(node, node.host, port, conn.get_server_host_key())
        return conn
