"""What every test gets without asking: a home, a key cache and a working folder of its own.

Wired in by tests/conftest.py. A sweeper started by a test inherits all three (the helper in
tests/support/run.py passes this process's environment and folder on), so its key cache
(`$XDG_CACHE_HOME/sweeper/key-spki.json`), its default `reports/` folder and the history
database in it land under the test's tmp_path, never in the user's home or the repository.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


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
