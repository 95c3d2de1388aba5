"""Jump hosts: one shared connection per bastion carries every node behind it.

Logging in to the bastion once (not once per node) is what operators' bastions expect, and
what their MaxStartups allows; new channels through it are bounded too. A bastion that
cannot be reached fails all of its nodes at once, with the bastion named, instead of
letting every node retry it in turn.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

import asyncssh

from sweeper.errors import BadInput, NodeError
from sweeper.model import Node
from sweeper.ssh.faults import via_bastion

_SPEC = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\s]+))(?::(?P<port>\d+))?$")

HANDSHAKES_THROUGH_BASTION = 8
"""Nodes behind one bastion that may be logging in through it at once (channels it opens)."""
Connect = Callable[[Node, asyncssh.SSHClientConnection | None], Awaitable[asyncssh.SSHClientConnection]]


@dataclass(frozen=True, slots=True)
class BastionSpec:
    user: str | None
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> BastionSpec:
        """`[user@]host[:port]`, as in ssh -J."""
        match = _SPEC.match(text.strip())
        if not match:
            raise BadInput(f"jump {text!r}: expected [user@]host[:port]")
        return cls(match["user"], match["v6"] or match["host"], int(match["port"] or 22))

    def as_node(self, behind: Node) -> Node:
        """The bastion as a node: its own address, the credentials of the nodes behind it."""
        return replace(
            behind,
            name=self.label,
            host=self.host,
            port=self.port,
            user=self.user or behind.user,
            jump=None,
            stores=(),
        )

    @property
    def label(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"


@dataclass(slots=True)
class _Bastion:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(HANDSHAKES_THROUGH_BASTION))
    conn: asyncssh.SSHClientConnection | None = None
    failure: NodeError | None = None
    logins: int = 0


class Bastions:
    """The fleet's bastion connections, opened on first use and shared."""

    def __init__(self, connect_with_retries: Connect) -> None:
        self._connect = connect_with_retries
        self._open: dict[str, _Bastion] = {}

    def gate(self, node: Node) -> asyncio.Semaphore:
        """Bounds handshakes through the bastion of `node` (a node with a `jump`)."""
        assert node.jump, "a node reached directly has no bastion"
        return self._entry(node.jump).gate

    async def tunnel(self, node: Node) -> asyncssh.SSHClientConnection | None:
        """The shared connection to `node`'s bastion, opening it if needed."""
        if not node.jump:
            return None
        spec = BastionSpec.parse(node.jump)
        entry = self._entry(node.jump)
        async with entry.lock:
            if entry.failure is not None:
                raise type(entry.failure)(str(entry.failure))
            if entry.conn is None or entry.conn.is_closed():
                try:
                    entry.conn = await self._connect(spec.as_node(node), None)
                    entry.logins += 1
                except NodeError as exc:
                    entry.failure = via_bastion(spec.label, exc)
                    raise type(entry.failure)(str(entry.failure)) from None
            return entry.conn

    def logins(self, jump: str) -> int:
        """How many times we logged in to this bastion (1 in a healthy sweep)."""
        return self._entry(jump).logins

    async def close(self) -> None:
        for entry in self._open.values():
            if entry.conn is not None:
                entry.conn.close()
                await entry.conn.wait_closed()

    def _entry(self, jump: str) -> _Bastion:
        return self._open.setdefault(jump, _Bastion())
