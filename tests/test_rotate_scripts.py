"""The rotation's shell helpers, run by a real /bin/sh on real files (no node, no SSH)."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from sweeper.rotate import remote


def run_sh(body: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["sh", "-s"],
        input=remote.script(body).encode(),
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "T": "sweeper-test-token"},
        check=False,
    )


def test_put_makes_the_folder_replaces_atomically_and_clears_a_killed_runs_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "new" / "folder" / "server.crt"
    assert run_sh(remote.put_file(str(target), b"first\n", None, None, "0640")).returncode == 0
    stale = target.parent / ".sweeper.AbC123"  # what a run killed between mktemp and mv leaves
    stale.write_bytes(b"half")
    done = run_sh(remote.put_file(str(target), b"second\n", None, None, "0600"))
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == b"second\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["server.crt"]


def test_a_put_that_cannot_write_stops_the_script_and_leaves_the_file(tmp_path: Path) -> None:
    target = tmp_path / "server.crt"
    target.write_bytes(b"old\n")
    body = (
        remote.put_file(str(target), b"new\n", "no-such-user-here", "no-such-group", "0644") + "echo after\n"
    )
    done = run_sh(body)
    assert done.returncode != 0 and b"after" not in done.stdout
    assert target.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["server.crt"]
