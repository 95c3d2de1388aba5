"""An open connection to one node: run commands, and run scripts with privilege escalation.

Everything a node sends is read as it arrives and counted against one cap per command
(`max_bytes`, stdout and stderr together): a node that floods is cut off at the cap and
its channel closed, so it costs the sweep a bounded amount of memory, never all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncssh

from sweeper.errors import AnswerTooLarge, AuthFailed, Transient
from sweeper.model import Node
from sweeper.shell.text import (
    SHELL_READY,
    SUDO_PROMPT,
    node_text,
    on_stdin,
    run_inline,
    run_stdin,
    run_stdin_sudo_password,
)
from sweeper.ssh.faults import classify

MAX_NODE_BYTES = 64 * 1024 * 1024
"""Default cap on one command's output (DESIGN: `--max-node-bytes`, 64 MiB)."""
CHANNELS = 4
"""Commands one connection runs at once: callers may start more side by side, the rest wait
(OpenSSH's MaxSessions is 10 by default; a vCenter's tools are slow enough to gain from 4)."""
CHUNK = 256 * 1024
"""Bytes asked for per read: asyncssh hands over what it has, up to this."""


@dataclass(frozen=True, slots=True)
class CommandResult:
    exit_status: int
    stdout: bytes
    """As sent: a script's batched file bytes are binary (`shell.split_output` decodes the rest)."""
    stderr: str


class _Budget:
    """What one command may still send before it is cut off."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.taken = 0

    def take(self, size: int) -> None:
        self.taken += size
        if self.taken > self.limit:
            raise AnswerTooLarge(self.limit)

    async def drain(self, stream: asyncssh.SSHReader[bytes]) -> bytes:
        """Read one stream to its end, chunk by chunk, counting every byte.

        The chunks are joined once at the end: nothing is reallocated as the answer grows, and
        an answer of one chunk (most nodes') is returned as it came, without a copy."""
        chunks = []
        while chunk := await stream.read(CHUNK):
            self.take(len(chunk))
            chunks.append(chunk)
        return b"".join(chunks)

    async def drain_both(self, process: asyncssh.SSHClientProcess[bytes]) -> tuple[bytes, str]:
        """stdout and stderr read side by side (they share the channel's window, so reading only
        one could stall the other); the first to pass the cap stops both."""
        readers = [asyncio.ensure_future(self.drain(s)) for s in (process.stdout, process.stderr)]
        try:
            await asyncio.wait(readers, return_when=asyncio.FIRST_EXCEPTION)
            failures = [r.exception() for r in readers if r.done() and not r.cancelled() and r.exception()]
            if failures:
                raise failures[0]
            stdout, stderr = (r.result() for r in readers)
        finally:
            for reader in readers:
                reader.cancel()
        return stdout, node_text(stderr)


class Session:
    """An open, authenticated connection to one node; every read of the node goes over it."""

    def __init__(
        self,
        node: Node,
        conn: asyncssh.SSHClientConnection,
        become_password: str | None,
        max_bytes: int = MAX_NODE_BYTES,
    ) -> None:
        self.node = node
        self._conn = conn
        self._become_password = become_password
        self.max_bytes = max_bytes
        """The most one command may print before it is cut off."""
        self._channels = asyncio.Semaphore(CHANNELS)

    async def run(
        self, command: str, stdin: str | None = None, timeout: float | None = None
    ) -> CommandResult:
        """Run one command; a lost connection is Transient, anything else comes back as a result.

        Its output is read incrementally up to the session's cap (AnswerTooLarge past it). A
        command given up on (the cap, its timeout, or the node's deadline cancelling us) is
        ended on the node where the server allows it, so that nothing keeps running there.
        """
        async with self._channels:
            return await self._run(command, stdin, timeout)

    async def _run(self, command: str, stdin: str | None, timeout: float | None) -> CommandResult:
        try:
            running = await self._conn.create_process(
                command, input=stdin.encode() if stdin is not None else None, encoding=None
            )
        except (asyncssh.Error, OSError) as exc:
            raise classify(exc) from exc
        try:
            async with asyncio.timeout(timeout):
                stdout, stderr = await _Budget(self.max_bytes).drain_both(running)
                await running.wait_closed()
        except TimeoutError as exc:
            raise Transient(f"command timed out after {timeout:g}s") from exc
        except (asyncssh.Error, OSError) as exc:
            raise classify(exc) from exc
        finally:
            _end(running)
        if running.exit_signal is not None:
            raise Transient(f"the command was killed by signal {running.exit_signal[0]}")
        if running.exit_status is None:
            raise Transient("the connection dropped while a command was running")
        return CommandResult(running.exit_status, stdout, stderr)

    @contextlib.asynccontextmanager
    async def forward(self, host: str, port: int) -> AsyncIterator[int]:
        """A local port that reaches host:port from the node's side (for nodes behind a bastion)."""
        try:
            listener = await self._conn.forward_local_port("127.0.0.1", 0, host, port)
        except (asyncssh.Error, OSError) as exc:
            raise classify(exc) from exc
        try:
            yield listener.get_port()
        finally:
            listener.close()

    async def run_script(
        self, script: str, timeout: float | None = None, inline: bool = False, label: str | None = None
    ) -> CommandResult:
        """Run a POSIX sh script (on stdin) as the node's `become` user, or as ourselves.

        `inline`: the script holds no secret, so as ourselves it may go on the command line (see
        `shell.run_inline`): nothing is sent on stdin. `label`: the argument of the shell that runs
        a script given on stdin, which the node's process list shows (`shell.run_stdin`).

        With a become password, sudo is asked to prompt with a marker and the password is
        written only when that marker appears, so it can never reach the shell as a command
        (sudo may have cached credentials or a NOPASSWD rule). It is never on a command line.
        """
        command = run_inline(script) if inline and not self.node.become else None
        if command is not None:
            result = await self.run(command, timeout=timeout)
            if result.stdout or result.exit_status == 0:
                return result
            # nothing printed: a login shell that is not POSIX (csh, tcsh) cannot take a
            # multi-line argument, but it can start the one-line stdin runner
        sent = on_stdin(script)
        if not self.node.become:
            return await self.run(run_stdin(label=label), stdin=sent, timeout=timeout)
        if self._become_password is None:
            result = await self.run(run_stdin(self.node.become, label), stdin=sent, timeout=timeout)
        else:
            try:
                async with self._channels:
                    result = await asyncio.wait_for(self._sudo_with_password(sent, label), timeout)
            except TimeoutError as exc:
                raise Transient(f"command timed out after {timeout:g}s") from exc
        _raise_if_refused(self.node.become, result)
        return result

    async def _sudo_with_password(self, sent: str, label: str | None) -> CommandResult:
        """`sent`: the script as `on_stdin` wraps it, written once sudo's shell is ready."""
        try:
            proc = await self._conn.create_process(run_stdin_sudo_password(label), encoding=None)
        except (asyncssh.Error, OSError) as exc:
            raise classify(exc) from exc
        budget = _Budget(self.max_bytes)
        try:
            early = await self._answer_sudo(proc, budget)
            proc.stdin.write(sent.encode())
            proc.stdin.write_eof()
            stdout, stderr = await budget.drain_both(proc)
            await proc.wait_closed()
        finally:
            _end(proc)
        status = proc.exit_status if proc.exit_status is not None else 255
        return CommandResult(status, stdout, early + stderr)

    async def _answer_sudo(self, proc: asyncssh.SSHClientProcess[bytes], budget: _Budget) -> str:
        """Read stderr until the shell is ready, answering sudo's prompt once.

        Each marker is looked for only where it could newly end, so a node that floods stderr
        costs linear time (and its budget), never quadratic."""
        ready, prompt = SHELL_READY.encode(), SUDO_PROMPT.encode()
        seen = bytearray()
        answered = False
        while True:
            chunk = await proc.stderr.read(CHUNK)
            if not chunk:
                text = node_text(seen).replace(SUDO_PROMPT, "\n")
                reason = _escalation_error("sudo", text) or "sudo ended early"
                raise AuthFailed(f"privilege escalation refused: {reason}")
            budget.take(len(chunk))
            start = max(0, len(seen) - max(len(ready), len(prompt)))
            seen += chunk
            if (at := seen.find(ready, start)) >= 0:
                return node_text(seen[at + len(ready) :]).lstrip("\n")
            if (at := seen.find(prompt, start)) >= 0:
                if answered:
                    proc.terminate()
                    raise AuthFailed("privilege escalation refused: sudo: incorrect password")
                proc.stdin.write(f"{self._become_password}\n".encode())
                answered = True
                del seen[: at + len(prompt)]


def _end(process: asyncssh.SSHClientProcess) -> None:
    """Close a command's channel; one still running is first sent SIGTERM (an SSH "signal"
    request: OpenSSH >= 7.9 signals the command's process group, but not for root logins)."""
    if process.exit_status is None and process.exit_signal is None:
        with contextlib.suppress(asyncssh.Error, OSError):  # the channel or connection is gone already
            process.terminate()
    process.close()


def _raise_if_refused(become: str, result: CommandResult) -> None:
    """sudo/doas refusing (no password given, command not allowed) is an auth failure, not a crash."""
    if result.exit_status == 0 or result.stdout.strip():
        return
    reason = _escalation_error(become, result.stderr)
    if reason:
        raise AuthFailed(f"privilege escalation refused: {reason}")


def _escalation_error(become: str, stderr: str) -> str | None:
    """sudo's own complaint, if it made one (sshd may print other lines first, like a missing home)."""
    return next((line.strip() for line in stderr.splitlines() if line.strip().startswith(f"{become}:")), None)
