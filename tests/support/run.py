"""Run the `sweeper` command as a user would (a new process), and read what it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def sweeper(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """`sweeper ARGS` in a fresh interpreter; a traceback on stderr fails the test."""
    done = subprocess.run(
        [sys.executable, "-m", "sweeper", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def rotate(
    inventory: Path, source: Path, journal: Path, out: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`sweeper rotate` without asking, with its journal and report folders."""
    return sweeper(
        "rotate",
        str(inventory),
        "--from",
        str(source),
        "--yes",
        "--journal",
        str(journal),
        "--out",
        str(out),
        *extra,
        env=env,
    )


def only_report(folder: Path) -> dict[str, Any]:
    """The one JSON report a run wrote into `folder`."""
    (path,) = folder.glob("*.json")
    return json.loads(path.read_text())
