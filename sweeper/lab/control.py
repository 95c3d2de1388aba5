"""Start a lab in the background and stop it again: the API behind `sweeper lab up|down`.

The lab runs as `python -m sweeper.lab serve` in its own session, so a terminal's
Ctrl-C or the caller's exit does not take it down, and stopping it can address its
whole process group (the shells it runs for clients included).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from sweeper.lab.paths import LabError, LabPaths
from sweeper.lab.state import lab_pid_alive, read_json, serving_pid

_POLL = 0.05


@dataclass(frozen=True, slots=True)
class LabHandle:
    """A running lab. Use `stop()`, or `with start_lab(...) as lab:`."""

    dir: Path
    pid: int
    nodes: int
    inventory: Path
    known_hosts: Path
    client_key: Path
    ports: dict[str, int]
    tls_ports: dict[str, int]
    sso_password_env: str
    sso_password: str = field(repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def env(self) -> dict[str, str]:
        """Environment additions a client needs (the SSO password variable for vcsa nodes)."""
        return {self.sso_password_env: self.sso_password}

    def stop(self, timeout: float = 10.0) -> None:
        """Stop this lab and wait until its processes are gone."""
        if lab_pid_alive(self.pid):
            _end(self.pid, timeout)
        _forget(LabPaths(self.dir), self.pid)
        if self.process is not None:
            self.process.poll()

    def __enter__(self) -> LabHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_lab(
    dir: Path,
    nodes: int,
    seed: int = 0,
    timeout: float | None = None,
    rebuild: bool = False,
    hostile: tuple[str, ...] = (),
) -> LabHandle:
    """Build (if needed) and serve a lab in the background; return once it is ready.

    :param timeout: seconds to wait for ready; default grows with the node count
    :raises LabError: a lab is already served from `dir`, or the server died or was slow
        (the message carries the tail of its log)
    """
    paths = LabPaths(Path(dir).resolve())
    paths.dir.mkdir(parents=True, exist_ok=True)
    pid = serving_pid(paths)
    if pid is not None:
        raise LabError(f"a lab is already served from {paths.dir} (pid {pid})")
    paths.lab_json.unlink(missing_ok=True)
    # -P: a folder named "sweeper" where the operator stands (a clone's parent) must not shadow us.
    argv = [sys.executable, "-P", "-m", "sweeper.lab", "serve", "--dir", str(paths.dir)]
    argv += ["--nodes", str(nodes), "--seed", str(seed)] + (["--rebuild"] if rebuild else [])
    argv += ["--hostile", ",".join(hostile)] if hostile else []
    with open(paths.log, "wb") as log:
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    deadline = time.monotonic() + (timeout if timeout is not None else 30 + nodes * 0.1)
    while True:
        info = read_json(paths.lab_json)
        if info and info.get("ready") and info.get("pid") == child.pid:
            return LabHandle(
                dir=paths.dir,
                pid=child.pid,
                nodes=int(info["nodes"]),
                inventory=Path(info["inventory"]),
                known_hosts=Path(info["known_hosts"]),
                client_key=Path(info["client_key"]),
                ports=dict(info["ports"]),
                tls_ports=dict(info["tls_ports"]),
                sso_password_env=str(info["sso_password_env"]),
                sso_password=str(info["sso_password"]),
                process=child,
            )
        status = child.poll()
        if status is not None:
            raise LabError(f"the lab exited with status {status}: {_tail(paths.log)}")
        if time.monotonic() > deadline:
            _end(child.pid, timeout=5)
            child.poll()
            raise LabError(f"the lab was not ready in time: {_tail(paths.log)}")
        time.sleep(_POLL)


def stop_lab(dir: Path, timeout: float = 10.0) -> bool:
    """Stop the lab served from `dir` (SIGTERM, then SIGKILL after `timeout`).

    :returns: False if no lab was running there
    """
    paths = LabPaths(Path(dir).resolve())
    pid = serving_pid(paths)
    if pid is None:
        paths.lab_json.unlink(missing_ok=True)
        return False
    _end(pid, timeout)
    _forget(paths, pid)
    return True


def _forget(paths: LabPaths, pid: int) -> None:
    """Remove lab.json if it still names `pid` (a lab killed hard cannot remove it itself)."""
    info = read_json(paths.lab_json)
    if info is not None and info.get("pid") == pid:
        paths.lab_json.unlink(missing_ok=True)


def _end(pid: int, timeout: float) -> None:
    """SIGTERM the lab, wait, SIGKILL its process group if it lingers, reap if it is ours."""
    _signal_group(pid, signal.SIGTERM, leader_only=True)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(_POLL)
    # Whatever is left in the lab's own process group (it runs in its own session).
    _signal_group(pid, signal.SIGKILL, leader_only=False)
    deadline = time.monotonic() + timeout
    while (_alive(pid) or group_members(pid)) and time.monotonic() < deadline:
        time.sleep(_POLL)


def _signal_group(pid: int, sig: signal.Signals, leader_only: bool) -> None:
    try:
        if leader_only:
            os.kill(pid, sig)
        else:
            os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass  # not our child: someone else reaps it
    return lab_pid_alive(pid)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, _ppid, group = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        if int(group) == pgid and state not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"
