"""The one way tests run the `sweeper` command, and read what it wrote.

`sweeper()` runs it as a user would: a new Python process in this test's working folder, with
this test's environment plus `env` (both the test's own: see tests/support/hygiene.py), its
output captured. `in_process=True` runs the same typer app inside pytest instead,
for the fast commands that only read and render files; the result has the same shape.
`start()` / `finish()` are its two halves, for the tests that signal or kill a running sweeper;
`finish_measured()` also gives the process's peak memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HANG_GUARD = 300.0
"""Seconds before a sweeper that never ends is killed and fails the test; never the assertion."""


def sweeper(
    *args: str | Path,
    env: dict[str, str] | None = None,
    timeout: float = HANG_GUARD,
    in_process: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`sweeper ARGS`; a traceback (an exception that escaped the CLI) fails the test."""
    if in_process:
        return _in_process([str(a) for a in args], env)
    return finish(start(*args, env=env), timeout)


def start(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`sweeper ARGS` started in a new process, stdout and stderr piped: collect it with `finish()`."""
    return subprocess.Popen(
        [sys.executable, "-m", "sweeper", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def finish(proc: subprocess.Popen[str], timeout: float = HANG_GUARD) -> subprocess.CompletedProcess[str]:
    """Wait for a started sweeper; one still running after `timeout` is killed and fails the test."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        raise AssertionError(f"sweeper {proc.args[3:]} still ran after {timeout:g}s:\n{stderr}") from None
    return _completed(proc, stdout, stderr)


def finish_measured(
    proc: subprocess.Popen[str], timeout: float = HANG_GUARD
) -> tuple[subprocess.CompletedProcess[str], int]:
    """`finish()`, and the process's own peak resident memory in bytes: its VmHWM, sampled as it runs.

    Not its ru_maxrss: at exec, Linux folds the forking process's resident high-water mark into the
    child's maxrss, so a child of a big test process (this one, 300+ MiB late in a full run) would
    report that size whatever it used. VmHWM belongs to the memory the child has after exec; it
    only grows, so the last sample before the exit holds the peak of everything before it (the
    last ~50 ms, a report being written, is the only part a sample can miss)."""
    output: dict[str, str] = {}
    readers = [
        threading.Thread(target=lambda name=name, pipe=pipe: output.__setitem__(name, pipe.read()))
        for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr))
    ]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + timeout
    peak = 0
    while not (waited := os.wait4(proc.pid, os.WNOHANG))[0]:
        peak = max(peak, _high_water_mark(proc.pid))
        if time.monotonic() > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            raise AssertionError(f"sweeper {proc.args[3:]} still ran after {timeout:g}s")
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(waited[1])
    for reader in readers:
        reader.join()
    assert peak, "the process ended before its memory could be sampled once"
    return _completed(proc, output["stdout"], output["stderr"]), peak


def _high_water_mark(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM, bytes); 0 once it has become a zombie."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _completed(proc: subprocess.Popen[str], stdout: str, stderr: str) -> subprocess.CompletedProcess[str]:
    if proc.returncode >= 0:  # a process the test killed had no say in what it printed
        assert "Traceback" not in stderr, stderr
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _in_process(args: list[str], env: dict[str, str] | None) -> subprocess.CompletedProcess[str]:
    from typer.testing import CliRunner

    from sweeper.cli import app

    result = CliRunner().invoke(app, args, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(["sweeper", *args], result.exit_code, result.stdout, result.stderr)


def rotate(
    inventory: Path, source: Path, journal: Path, out: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`sweeper rotate` without asking, with its journal and report folders."""
    return sweeper(
        "rotate", inventory, "--from", source, "--yes", "--journal", journal, "--out", out, *extra, env=env
    )


def scan(
    inventory: Path, out: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`sweeper scan` into a new folder `out`, and the one report it wrote there."""
    done = sweeper("scan", inventory, "--out", out, *extra, env=env)
    return done, only_report(out, done.stderr)


def only_report(folder: Path, context: str = "") -> dict[str, Any]:
    """The one JSON report a run wrote into `folder`."""
    reports = list(folder.glob("*.json"))
    assert len(reports) == 1, (reports, context)
    return json.loads(reports[0].read_text())
