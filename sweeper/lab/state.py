"""Read what a lab directory says about itself: is it built, is it being served, by whom."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sweeper.lab.paths import LabPaths


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from `path`, or None if it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def lab_pid_alive(pid: int) -> bool:
    """True while `pid` is a live `python -m sweeper.lab` process (not a reused pid)."""
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        cmdline = (proc / "cmdline").read_bytes()
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return b"sweeper.lab" in cmdline and state not in ("Z", "X")


def serving_pid(paths: LabPaths) -> int | None:
    """The pid serving this lab, if lab.json names one that is still alive."""
    info = read_json(paths.lab_json)
    pid = info.get("pid") if info else None
    return pid if isinstance(pid, int) and lab_pid_alive(pid) else None
