"""CPU time of this process and of another one (the lab), for the benches' side-by-side numbers."""

from __future__ import annotations

import os
import resource
from pathlib import Path


def own_cpu() -> float:
    """User + system CPU seconds of this process and of its children that have ended (its workers)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def process_cpu(pid: int) -> float:
    """CPU seconds of process `pid` and of the children it has reaped (for the lab: its SSH server,
    and the shells and commands it ran for clients), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
