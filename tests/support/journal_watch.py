"""Watch a running sweeper's journal and kill -9 it when the journal shows a state: where a kill
lands is decided by what the rotation has journaled, never by a timer."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from tests.support import run

Steps = dict[tuple[str, str, str], str]
KILLED = -signal.SIGKILL


def kill_when(proc: subprocess.Popen[str], journal: Path, reached: Callable[[Steps], bool]) -> int:
    """kill -9 a running sweeper as soon as its journal shows a state; its exit status (KILLED if killed)."""
    deadline = time.monotonic() + run.HANG_GUARD
    while proc.poll() is None and not reached(journal_steps(journal)):
        assert time.monotonic() < deadline, f"the journal never got there: {journal_steps(journal)}"
        time.sleep(0.02)
    proc.kill()  # too late if it has ended already: then its exit status tells
    return run.finish(proc).returncode


def journal_steps(journal: Path) -> Steps:
    """(node, phase, step) -> state, read-only; missing entries read as "pending" (a journal being made)."""
    steps: Steps = defaultdict(lambda: "pending")
    try:
        db = sqlite3.connect(f"file:{journal / 'journal.sqlite'}?mode=ro", uri=True, timeout=1)
        try:
            steps.update(
                ((n, p, s), state)
                for n, p, s, state in db.execute("SELECT node, phase, step, state FROM steps")
            )
        finally:
            db.close()
    except sqlite3.Error:
        pass
    return steps


def states(steps: Steps, node: str, phase: str) -> set[str]:
    """The states of a node's steps in one phase; {"pending"} before any is journaled."""
    return {state for (n, p, _), state in steps.items() if (n, p) == (node, phase)} or {"pending"}


def step_spans(journal: Path, prefix: str) -> list[tuple[datetime, datetime]]:
    """(started, finished) of every finished step whose name starts with `prefix`, to the
    microsecond the journal keeps (a report's times are whole seconds), read-only."""
    db = sqlite3.connect(f"file:{journal / 'journal.sqlite'}?mode=ro", uri=True, timeout=1)
    try:
        rows = db.execute(
            "SELECT started, finished FROM steps WHERE finished IS NOT NULL AND substr(step, 1, ?) = ?",
            (len(prefix), prefix),
        ).fetchall()
    finally:
        db.close()
    return [(datetime.fromisoformat(started), datetime.fromisoformat(finished)) for started, finished in rows]
