"""What every test gets without asking: a home, a key cache and a working folder of its own,
and a check that it leaves no process running.

Wired in by tests/conftest.py. A sweeper started by a test inherits all three (the helper in
tests/support/run.py passes this process's environment and folder on), so its key cache
(`$XDG_CACHE_HOME/sweeper/key-spki.json`), its default `reports/` folder and the history
database in it land under the test's tmp_path, never in the user's home or the repository.

Every process a test starts (sweeper, openssl, sshd and the commands its sessions run) is
known by the marker in its environment (tests/support/processes.py). One still running once
the test and its fixtures are done fails the test, and is killed; so does one that outlives
the whole session (a fixture wider than a test that leaves something behind).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .processes import MARKER, Proc, RunProcesses, kill, left_running

_RUN = pytest.StashKey[RunProcesses]()


def pytest_configure(config: pytest.Config) -> None:
    os.environ[MARKER] = str(os.getpid())
    config.stash[_RUN] = RunProcesses()


def pytest_unconfigure(config: pytest.Config) -> None:
    os.environ.pop(MARKER, None)


def pytest_sessionfinish(session: pytest.Session) -> None:
    left = left_running(session.config.stash[_RUN].alive())
    if left:
        kill(left)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"processes left running by the test session (now killed): {_listed(left)}", red=True
            )


@pytest.fixture(autouse=True)
def leaves_no_process_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """Autouse, so set up before the test's other function fixtures and checked after their teardown."""
    processes = request.config.stash[_RUN]
    before = processes.alive()
    yield
    left = left_running(processes.alive() - before)
    if left:
        kill(left)
        pytest.fail(f"left running after the test (now killed): {_listed(left)}", pytrace=False)


def _listed(procs: set[Proc]) -> str:
    return "; ".join(f"{p.pid} {p.cmdline!r}" for p in sorted(procs, key=lambda p: p.pid))


def _move_in(monkeypatch: pytest.MonkeyPatch, home: Path, folder: Path) -> None:
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.chdir(folder)


@pytest.fixture(scope="session", autouse=True)
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """For fixtures wider than a test (a lab and its first scan): a home under the basetemp."""
    home = tmp_path_factory.mktemp("session-home")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _move_in(monkeypatch, home, home)
        yield home


@pytest.fixture(autouse=True)
def own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME and the key cache under tmp_path/home (made on first write); tmp_path the working folder."""
    home = tmp_path / "home"
    _move_in(monkeypatch, home, tmp_path)
    return home
