"""Bad input at the command line: one line on stderr, exit 2, no traceback, no connection attempted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import run

GOOD_NODE = '[[nodes]]\nname = "n1"\nhost = "127.0.0.1"\nport = 1\nprofile = "esxi"\n'


@pytest.mark.parametrize(
    ("inventory", "extra", "expected"),
    [
        (
            '[[nodes]]\nname = "n1"\nhost = "h"\nprofile = "esxi"\nbogus = 1\n',
            [],
            "node 'n1': key 'bogus': unknown key",
        ),
        (GOOD_NODE, ["--rule", "no-such-rule"], "unknown rule 'no-such-rule'"),
        (
            '[defaults]\nknown_hosts = "/nonexistent/known_hosts"\n' + GOOD_NODE,
            [],
            "known_hosts file not found",
        ),
        (
            '[defaults]\nclient_keys = ["/nonexistent/id"]\nknown_hosts = "/dev/null"\n' + GOOD_NODE,
            [],
            "client key not found",
        ),
        (
            '[defaults]\npassword_env = "SWEEPER_TEST_UNSET_VAR"\nknown_hosts = "/dev/null"\n' + GOOD_NODE,
            [],
            "SWEEPER_TEST_UNSET_VAR",
        ),
        (GOOD_NODE, ["--limit", "nobody"], "matches no node"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, inventory: str, extra: list[str], expected: str
) -> None:
    (tmp_path / "inv.toml").write_text(inventory)
    done = run.sweeper("scan", "inv.toml", "--out", "out", *extra)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], done.stderr
    assert not (tmp_path / "out").exists(), "no report for a run that never started"


def test_bad_fail_on_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "inv.toml").write_text(GOOD_NODE)
    done = run.sweeper("scan", "inv.toml", "--fail-on", "severe")
    assert done.returncode == 2 and "unknown severity" in done.stderr


def test_missing_inventory_file(tmp_path: Path) -> None:
    done = run.sweeper("scan", "absent.toml")
    assert done.returncode == 2 and "absent.toml: cannot read inventory" in done.stderr


@pytest.mark.parametrize("command", ["scan", "rotate"])
@pytest.mark.parametrize("size", ["lots", "0", "12PB", "-5"])
def test_a_bad_max_node_bytes_is_a_usage_error(tmp_path: Path, command: str, size: str) -> None:
    (tmp_path / "inv.toml").write_text(GOOD_NODE)
    extra = ["--from", "absent.json"] if command == "rotate" else []
    done = run.sweeper(command, "inv.toml", *extra, "--max-node-bytes", size, in_process=True)
    assert done.returncode == 2 and "is not a size" in done.stderr, done.stderr
