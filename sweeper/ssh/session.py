"""An open connection to one node: run commands, and run scripts with privilege escalation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncssh

from sweeper.errors import AuthFailed, Transient
from sweeper.model import Node
from sweeper.shell.text import SHELL_READY, SUDO_PROMPT, run_stdin, run_stdin_sudo_password
from sweeper.ssh.faults import classify


@dataclass(frozen=True, slots=True)
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str


class Session:
    """An open, authenticated connection to one node; every read of the node goes over it."""

    def __init__(self, node: Node, conn: asyncssh.SSHClientConnection, become_password: str | None) -> None:
        self.node = node
        self._conn = conn
        self._become_password = become_password

    async def run(
        self, command: str, stdin: str | None = None, timeout: float | None = None
    ) -> CommandResult:
        """Run one command; a lost connection is Transient, anything else comes back as a result.

        A command given up on (its timeout, or the node's deadline cancelling us) is ended
        on the node where the server allows it, so that nothing keeps running there.
        """
        try:
            running = await self._conn.create_process(
                command, input=stdin, encoding="utf-8", errors="replace"
            )
            try:
                proc = await running.wait(check=False, timeout=timeout)
            finally:
                _end(running)
        except asyncssh.TimeoutError as exc:
            raise Transient(f"command timed out after {timeout:g}s") from exc
        except (asyncssh.Error, OSError) as exc:
            raise classify(exc) from exc
        if proc.exit_signal is not None:
            raise Transient(f"the command was killed by signal {proc.exit_signal[0]}")
        if proc.exit_status is None:
            raise Transient("the connection dropped while a command was running")
        status = proc.exit_status if proc.exit_status is not None else 255
        return CommandResult(status, str(proc.stdout or ""), str(proc.stderr or ""))

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

    async def run_script(self, script: str, timeout: float | None = None) -> CommandResult:
        """Run a POSIX sh script (on stdin) as the node's `become` user, or as ourselves.

        With a become password, sudo is asked to prompt with a marker and the password is
        written only when that marker appears, so it can never reach the shell as a command
        (sudo may have cached credentials or a NOPASSWD rule). It is never on a command line.
        """
        if not self.node.become:
            return await self.run(run_stdin(), stdin=script, timeout=timeout)
        if self._become_password is None:
            result = await self.run(run_stdin(self.node.become), stdin=script, timeout=timeout)
        else:
            try:
                result = await asyncio.wait_for(self._sudo_with_password(script), timeout)
            except TimeoutError as exc:
                raise Transient(f"command timed out after {timeout:g}s") from exc
        _raise_if_refused(self.node.become, result)
        return result

    async def _sudo_with_password(self, script: str) -> CommandResult:
        try:
            proc = await self._conn.create_process(
                run_stdin_sudo_password(), encoding="utf-8", errors="replace"
            )
        except (asyncssh.Error, OSError) as exc:
            raise classify(exc) from exc
        try:
            early = await self._answer_sudo(proc)
            proc.stdin.write(script)
            proc.stdin.write_eof()
            stdout, stderr = await asyncio.gather(proc.stdout.read(), proc.stderr.read())
            await proc.wait_closed()
        finally:
            proc.close()
        status = proc.exit_status if proc.exit_status is not None else 255
        return CommandResult(status, stdout, early + stderr)

    async def _answer_sudo(self, proc: asyncssh.SSHClientProcess) -> str:
        """Read stderr until the shell is ready, answering sudo's prompt once."""
        seen = ""
        answered = False
        while True:
            chunk = await proc.stderr.read(4096)
            if not chunk:
                reason = _escalation_error("sudo", seen.replace(SUDO_PROMPT, "\n")) or "sudo ended early"
                raise AuthFailed(f"privilege escalation refused: {reason}")
            seen += chunk
            if SHELL_READY in seen:
                return seen.split(SHELL_READY, 1)[1].lstrip("\n")
            if SUDO_PROMPT in seen:
                if answered:
                    proc.terminate()
                    raise AuthFailed("privilege escalation refused: sudo: incorrect password")
                proc.stdin.write(f"{self._become_password}\n")
                answered = True
                seen = seen.split(SUDO_PROMPT, 1)[1]


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
