"""Real OpenSSH sshd servers on loopback addresses, plus dead and silent endpoints.

Every Sshd gets its own 127.0.0.x address (Linux routes all of 127/8 to lo), a free
port, a fresh host key and a config of its own, so many can run side by side and a
test can tell them apart by address as the inventory does by host.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

import asyncssh

from .processes import MARKER

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")
START_TIMEOUT = 10.0
_PORT_ATTEMPTS = 3
_loopback_hosts = itertools.cycle(f"127.0.0.{x}" for x in range(2, 251))
_running: set[Sshd] = set()  # stopped at exit, so a crashed test script leaves no sshd behind


class SshdError(RuntimeError):
    """sshd did not come up; the message carries the tail of its log."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A TCP address a test points a client at."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class ClientKey:
    """An Ed25519 key pair the test client logs in with."""

    private_path: Path
    public_path: Path
    public_line: str


def next_loopback_host() -> str:
    """Hand out 127.0.0.2 .. 127.0.0.250 in turn, so concurrent servers differ by host."""
    return next(_loopback_hosts)


def free_port(host: str) -> int:
    """Ask the kernel for a port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ssh_keygen(path: Path, comment: str) -> str:
    """Write an unencrypted Ed25519 key pair at ``path`` (0600) and return the public line."""
    path.unlink(missing_ok=True)
    Path(f"{path}.pub").unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    path.chmod(0o600)
    return Path(f"{path}.pub").read_text().strip()


def make_client_key(directory: Path) -> ClientKey:
    """Make the test client's key pair in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / "id_ed25519"
    public_line = ssh_keygen(private, "sweeper-test-client")
    return ClientKey(private, Path(f"{private}.pub"), public_line)


def ensure_privsep_dir() -> None:
    """Create /run/sshd: sshd refuses to start without it, and only systemd makes it."""
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)


class Sshd:
    """One OpenSSH sshd child process (``sshd -D -e``) with its own key, config and log.

    Logs in ``root`` with the given authorized keys only; the log is LogLevel VERBOSE
    so tests can count authenticated connections and MaxStartups drops.

    :param directory: where the config, host key, authorized_keys, pid file and log go.
    :param authorized_keys: OpenSSH public key lines allowed to log in.
    :param host: a 127.0.0.x address; by default the next one of 127.0.0.2 .. .250.
    :param max_startups: sshd's ``start:rate:full``; None keeps OpenSSH's 10:30:100.
    :param max_sessions: channels per connection; None keeps OpenSSH's 10.
    :param login_grace_time: seconds a connection may stay unauthenticated.
    :param session_path: PATH for the commands sessions run (SetEnv), e.g. one without openssl.
    """

    def __init__(
        self,
        directory: Path,
        authorized_keys: Sequence[str],
        *,
        host: str | None = None,
        max_startups: str | None = None,
        max_sessions: int | None = None,
        login_grace_time: int = 30,
        session_path: str | None = None,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._session_path = session_path
        self.directory = directory
        self.host = host or next_loopback_host()
        self.port = 0
        self.log_path = directory / "sshd.log"
        self.config_path = directory / "sshd_config"
        self._max_startups = max_startups
        self._max_sessions = max_sessions
        self._login_grace_time = login_grace_time
        self._host_key_path = directory / "ssh_host_ed25519_key"
        self._host_public = ssh_keygen(self._host_key_path, "").split()[:2]
        self._authorized_keys_path = directory / "authorized_keys"
        self._authorized_keys_path.write_text("".join(f"{line}\n" for line in authorized_keys))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def host_key_line(self) -> str:
        """This server's known_hosts line, ``[host]:port ssh-ed25519 AAAA...`` (once started)."""
        return f"[{self.host}]:{self.port} {' '.join(self._host_public)}"

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.host, self.port)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> Self:
        """Start sshd and return once it serves its SSH banner."""
        self._spawn()
        self._wait_ready()
        return self

    def stop(self) -> None:
        """Stop sshd and the per-connection processes it forked; idempotent."""
        process, self._process = self._process, None
        _running.discard(self)
        if process is None or process.poll() is not None:
            return
        # sshd -D does not take its per-connection children down with it.
        for child in _children(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def connection_count(self) -> int:
        """How many connections logged in (publickey) so far, read from the log."""
        return self._count("Accepted publickey for ")

    def dropped_count(self) -> int:
        """How many connections sshd dropped before auth because of MaxStartups."""
        return self._count(" past MaxStartups")

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Sshd({self.host}:{self.port}, pid={self.pid})"

    def _count(self, needle: str) -> int:
        try:
            with self.log_path.open(errors="replace") as log:
                return sum(needle in line for line in log)
        except FileNotFoundError:
            return 0

    def _write_config(self) -> None:
        lines = [
            f"ListenAddress {self.host}:{self.port}",
            f"HostKey {self._host_key_path}",
            f"PidFile {self.directory / 'sshd.pid'}",
            f"AuthorizedKeysFile {self._authorized_keys_path}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "UseDNS no",
            "PrintMotd no",
            "LogLevel VERBOSE",
            f"LoginGraceTime {self._login_grace_time}",
            # bash sources ~/.bashrc for commands run by sshd unless it thinks it is nested;
            # root's rc file here (pyenv init) costs ~150 ms per command, which real nodes
            # don't pay and which would swamp every timing and concurrency test.
            "SetEnv SHLVL=1"
            + (f" PATH={self._session_path}" if self._session_path else "")
            # the test run's marker: what a session leaves running is found (tests/support/processes.py)
            + (f" {MARKER}={os.environ[MARKER]}" if MARKER in os.environ else ""),
        ]
        if self._max_startups is not None:
            lines.append(f"MaxStartups {self._max_startups}")
        if self._max_sessions is not None:
            lines.append(f"MaxSessions {self._max_sessions}")
        self.config_path.write_text("\n".join(lines) + "\n")

    def _spawn(self) -> None:
        ensure_privsep_dir()
        self.port = free_port(self.host)
        self._write_config()
        self.log_path.unlink(missing_ok=True)
        self._process = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(self.config_path), "-E", str(self.log_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _running.add(self)

    def _wait_ready(self) -> None:
        """Wait for the banner; on a port lost to a race, try another port."""
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            try:
                self._wait_banner()
                return
            except SshdError:
                if attempt == _PORT_ATTEMPTS or "Address already in use" not in self.log_tail():
                    self.stop()
                    raise
                self._spawn()

    def _wait_banner(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            returncode = self._process.poll()
            if returncode is not None:
                raise SshdError(f"sshd exited with status {returncode}:\n{self.log_tail()}")
            if _read_banner(self.host, self.port).startswith(b"SSH-2.0-"):
                self._wait_probe_gone(deadline)
                return
            time.sleep(0.01)
        raise SshdError(f"sshd gave no banner in {START_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def _wait_probe_gone(self, deadline: float) -> None:
        """Wait until the banner probe's child has exited, so it no longer holds a
        MaxStartups slot that the test's first connection would be dropped for."""
        assert self._process is not None
        while _children(self._process.pid) and time.monotonic() < deadline:
            time.sleep(0.005)


class SshdFactory(Protocol):
    """Starts ``count`` sshds (stopped at teardown); the session client key logs in."""

    def __call__(
        self,
        count: int = 1,
        *,
        max_startups: str | None = None,
        max_sessions: int | None = None,
        login_grace_time: int = 30,
        authorized_keys: Sequence[str] | None = None,
        session_path: str | None = None,
    ) -> list[Sshd]: ...


def start_all(sshds: Iterable[Sshd]) -> list[Sshd]:
    """Start several sshds at once: launch all, then wait for each."""
    started = list(sshds)
    for sshd in started:
        sshd._spawn()
    try:
        for sshd in started:
            sshd._wait_ready()
    except BaseException:
        for sshd in started:
            sshd.stop()
        raise
    return started


@atexit.register
def _stop_running() -> None:
    for sshd in list(_running):
        sshd.stop()


def _read_banner(host: str, port: int) -> bytes:
    """The server's first line, or b"" if nothing listens (yet)."""
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            data = b""
            while b"\n" not in data:
                chunk = sock.recv(256)
                if not chunk:
                    break
                data += chunk
            return data
    except OSError:
        return b""


def _children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (sshd forks one per connection)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(child) for child in text.split()]


def write_known_hosts(path: Path, lines: Iterable[str]) -> Path:
    """Write known_hosts lines (e.g. ``Sshd.host_key_line``) to ``path``."""
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def wrong_host_key_line(sshd: Sshd) -> str:
    """A known_hosts line for ``sshd``'s address with some other Ed25519 key: a MITM."""
    other = asyncssh.generate_private_key("ssh-ed25519")
    public = other.export_public_key("openssh").decode().split()[:2]
    return f"[{sshd.host}]:{sshd.port} {' '.join(public)}"


class SilentListener:
    """A port that completes the TCP handshake and then never says anything.

    The kernel finishes the handshake and queues the connection, so an SSH client waits
    for a banner until it times out. A test can wait until clients have connected
    (:meth:`wait_for_connections`): they are accepted then, and kept open, still silent.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._accepted: list[socket.socket] = []
        self.host, self.port = sock.getsockname()[:2]

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.host, self.port)

    def wait_for_connections(self, count: int, hang_guard: float = 120.0) -> None:
        """Return once ``count`` clients have connected in all; fail after ``hang_guard`` seconds."""
        deadline = time.monotonic() + hang_guard
        while len(self._accepted) < count:
            self._sock.settimeout(max(0.0, deadline - time.monotonic()))
            try:
                self._accepted.append(self._sock.accept()[0])
            except TimeoutError:
                raise AssertionError(f"{len(self._accepted)} of {count} clients connected") from None

    def close(self) -> None:
        for conn in self._accepted:
            conn.close()
        self._sock.close()


@contextlib.contextmanager
def silent_listener(host: str | None = None) -> Iterator[SilentListener]:
    """A :class:`SilentListener` on ``host`` (by default the next loopback address), closed on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host or next_loopback_host(), 0))
    sock.listen(128)
    listener = SilentListener(sock)
    try:
        yield listener
    finally:
        listener.close()


@contextlib.contextmanager
def refused_port(host: str | None = None) -> Iterator[Endpoint]:
    """A port where connections are refused (RST).

    The port is held by a bound socket that never listens, so nothing else can take
    it while the test runs and every connect gets ECONNREFUSED.
    """
    host = host or next_loopback_host()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        yield Endpoint(host, int(sock.getsockname()[1]))
