"""CPU time and peak memory of this process, its children and another one (the lab), for the
benches' side-by-side numbers."""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SAMPLE_EVERY = 0.02
"""Seconds between two reads of a running process's peak memory."""


def own_cpu() -> float:
    """User + system CPU seconds of this process and of its children that have ended (its workers)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime + children_cpu()


def children_cpu() -> float:
    """User + system CPU seconds of this process's children that have ended and been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    """CPU seconds of process `pid` and of the children it has reaped (for the lab: its SSH server,
    and the shells and commands it ran for clients), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int | str = "self") -> float:
    """A process's own peak resident memory (VmHWM) in MB; 0 once it has ended.

    Not ru_maxrss: at exec, Linux seeds a process's maxrss with the high-water mark of the process
    that forked it, so a run started by a big process (this bench, after building its fleet)
    would report at least that one's size."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run_sampled(argv: list[str], **popen: object) -> tuple[subprocess.CompletedProcess[str], float]:
    """`subprocess.run(argv, capture_output=True, text=True)`, and the command's own peak RSS in MB,
    sampled while it runs (it only grows, so the last sample holds all but the last moments)."""
    peak = 0.0
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen) as proc:  # type: ignore[call-overload]
        while True:
            peak = max(peak, peak_rss_mb(proc.pid))
            try:
                stdout, stderr = proc.communicate(timeout=SAMPLE_EVERY)  # retried: no output is lost
                break
            except subprocess.TimeoutExpired:
                continue
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr), peak


@contextlib.contextmanager
def children_peak() -> Iterator[list[float]]:
    """The largest own peak RSS (MB) among this process's children (its workers) while the block
    runs, sampled by a thread: a one-item list, read after the block."""
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(SAMPLE_EVERY):
            for task in Path("/proc/self/task").glob("*/children"):
                with contextlib.suppress(OSError):  # a thread that ended since the glob
                    for pid in task.read_text().split():
                        peak[0] = max(peak[0], peak_rss_mb(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


@dataclass(frozen=True, slots=True)
class CpuGroup:
    """A cgroup counting the CPU of the processes put in it and of all their descendants, running
    or ended, in one read (cgroup v2's cpu.stat, or v1's cpuacct.usage). A client that keeps its
    connections open leaves their sshd sessions running: counting only reaped children would put
    all their work in the moment they end."""

    path: Path
    v2: bool

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(f"{pid}\n")

    def cpu(self) -> float:
        if self.v2:
            stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
            return int(stat["usage_usec"]) / 1e6
        return int((self.path / "cpuacct.usage").read_text()) / 1e9


@contextlib.contextmanager
def cpu_group(name: str) -> Iterator[CpuGroup | None]:
    """A new CpuGroup, removed again once its processes have ended; None where this machine does
    not let us make one (not root, no cgroup file system): callers count reaped children then."""
    roots = [(Path("/sys/fs/cgroup"), True), (Path("/sys/fs/cgroup/unified"), True)]
    roots.append((Path("/sys/fs/cgroup/cpuacct"), False))
    group = None
    for root, v2 in roots:
        if not (root / ("cgroup.procs" if v2 else "cpuacct.usage")).exists():
            continue
        try:
            (root / name).mkdir()
        except OSError:
            continue
        candidate = CpuGroup(root / name, v2)
        try:
            candidate.cpu()
        except (OSError, KeyError, ValueError):  # not this kind here: on to the next
            candidate.path.rmdir()
            continue
        group = candidate
        break
    try:
        yield group
    finally:
        if group is not None:
            with contextlib.suppress(OSError):
                group.path.rmdir()
