"""Which processes this test run started, read from /proc: for a guard that no test leaves one behind.

A process is the run's when its environment carries MARKER=<this pytest's pid> (every process
a test starts inherits it, and test sshds hand it to their sessions with SetEnv), or when its
parent is the run's (commands started with an environment of their own, as sudo does). Once
known, a process stays known by (pid, start time), so an orphan adopted by init is still found.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

MARKER = "SWEEPER_TEST_RUN"


@dataclass(frozen=True, slots=True)
class Proc:
    """A live (not zombie) process: its pid and start time name it even after the pid is reused."""

    pid: int
    started: int
    cmdline: str = field(compare=False)


class RunProcesses:
    """The processes of the test run whose pytest process is `root_pid` (this one by default)."""

    def __init__(self, root_pid: int | None = None) -> None:
        self.root_pid = root_pid or os.getpid()
        self._token = f"{MARKER}={self.root_pid}".encode()
        self._ours: dict[tuple[int, int], bool] = {}

    def alive(self) -> set[Proc]:
        """Every live process of this run, pytest itself left out."""
        table = _process_table()
        return {
            Proc(pid, started, _cmdline(pid))
            for pid, (_, started, zombie) in table.items()
            if pid != self.root_pid and not zombie and self._is_ours(pid, table)
        }

    def _is_ours(self, pid: int, table: dict[int, tuple[int, int, bool]]) -> bool:
        """Marked, or below a process of the run; the verdict is kept for `pid` and those between."""
        between: list[tuple[int, int]] = []
        verdict = False
        unread = False
        while pid in table:
            parent, started, _ = table[pid]
            if (pid, started) in self._ours:
                verdict = self._ours[pid, started]
                break
            between.append((pid, started))
            environ = _environ(pid)
            if pid == self.root_pid or self._token in environ:
                verdict = True
                break
            unread = unread or environ in ([], [b""])  # mid-exec, /proc may show no environment yet
            pid = parent
        if verdict or not unread:  # a "no" read from a moment with no environment is asked again
            self._ours.update(dict.fromkeys(between, verdict))
        return verdict


def named(text: str) -> set[Proc]:
    """Live processes, of any run, whose command line contains `text`."""
    table = _process_table()
    procs = {Proc(pid, started, _cmdline(pid)) for pid, (_, started, zombie) in table.items() if not zombie}
    return {p for p in procs if text in p.cmdline}


def left_running(procs: set[Proc], hang_guard: float = 10.0) -> set[Proc]:
    """Those of `procs` still running once the rest have ended (waiting at most `hang_guard` s)."""
    deadline = time.monotonic() + hang_guard
    while True:
        table = _process_table()
        alive = {p for p in procs if p.pid in table and table[p.pid][1:] == (p.started, False)}
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def kill(procs: set[Proc]) -> None:
    """SIGKILL each of `procs` that is still that very process."""
    table = _process_table()
    for proc in procs:
        if table.get(proc.pid, (0, 0, True))[1:] == (proc.started, False):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)


def _process_table() -> dict[int, tuple[int, int, bool]]:
    """pid -> (parent pid, start time in clock ticks, is a zombie) of every process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue  # it has just ended
        fields = stat[stat.rindex(b")") + 2 :].split()  # after "pid (comm) "
        table[int(name)] = (int(fields[1]), int(fields[19]), fields[0] in (b"Z", b"X"))
    return table


def _environ(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""
