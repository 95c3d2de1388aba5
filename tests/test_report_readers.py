"""Every command that reads a report refuses a malformed or foreign one: exit 2, one line naming the file."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from sweeper import history
from sweeper.pki.sign import load_signer, signature_path
from sweeper.report import schema
from tests.fixtures.reports import FIXTURE, every_rule_report
from tests.support import run

UNREACHABLE = (
    '[defaults]\nknown_hosts = "/dev/null"\nclient_keys = []\n'
    '[[nodes]]\nname = "n1"\nhost = "127.0.0.1"\nport = 1\nprofile = "esxi"\n'
)


def _without_certificates() -> str:
    report = every_rule_report()
    del report["nodes"][0]["certificates"]
    return json.dumps(report)


def _urgent() -> str:
    report = every_rule_report()
    report["findings"][0]["severity"] = "urgent"
    return json.dumps(report)


MALFORMED = {
    "node-without-certificates": (_without_certificates, "nodes.0.certificates: Field required"),
    "severity-urgent": (_urgent, "findings.0.severity"),
    "foreign": (lambda: '{"schema": "other"}', "not a sweeper.report/1 report (schema: 'other')"),
    "truncated": (lambda: FIXTURE.read_text()[:2000], "not JSON"),
}


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl CLI to make a signing key")
    folder = tmp_path_factory.mktemp("keys")
    private, public = folder / "k.pem", folder / "k.pub"
    subprocess.run([openssl, "genpkey", "-algorithm", "ed25519", "-out", str(private)], check=True)
    subprocess.run([openssl, "pkey", "-in", str(private), "-pubout", "-out", str(public)], check=True)
    return private, public


def report_command(bad: Path, tmp_path: Path) -> list[str]:
    return ["report", str(bad), "--format", "all", "--out", str(tmp_path / "out")]


def diff_command(bad: Path, tmp_path: Path) -> list[str]:
    return ["diff", str(bad), str(FIXTURE), "--history", str(tmp_path / "history.sqlite")]


def baseline_command(bad: Path, tmp_path: Path) -> list[str]:
    inventory = tmp_path / "inv.toml"
    inventory.write_text(UNREACHABLE)
    return ["scan", str(inventory), "--baseline", str(bad), "--out", str(tmp_path / "out")]


def baseline_last_command(bad: Path, tmp_path: Path) -> list[str]:
    """`--baseline last` finds the newest run in the history; its report file has gone bad since."""
    content = bad.read_bytes()
    shutil.copyfile(FIXTURE, bad)
    history.record(tmp_path / "out" / "history.sqlite", schema.load(bad), bad)
    bad.write_bytes(content)
    inventory = tmp_path / "inv.toml"
    inventory.write_text(UNREACHABLE)
    return ["scan", str(inventory), "--baseline", "last", "--out", str(tmp_path / "out")]


def rotate_command(bad: Path, tmp_path: Path) -> list[str]:
    inventory = tmp_path / "inv.toml"
    inventory.write_text(UNREACHABLE)
    where = ["--journal", str(tmp_path / "journal"), "--out", str(tmp_path / "out")]
    return ["rotate", str(inventory), "--from", str(bad), "--yes", *where]


COMMANDS: dict[str, Callable[[Path, Path], list[str]]] = {
    "report": report_command,
    "diff": diff_command,
    "scan --baseline FILE": baseline_command,
    "scan --baseline last": baseline_last_command,
    "rotate --from": rotate_command,
}


@pytest.mark.parametrize("content", MALFORMED.values(), ids=MALFORMED.keys())
@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_a_malformed_report_is_one_line_naming_the_file_and_exit_2(
    command: Callable[[Path, Path], list[str]], content: tuple[Callable[[], str], str], tmp_path: Path
) -> None:
    make, expected = content
    bad = tmp_path / "bad.json"
    bad.write_text(make())
    done = run.sweeper(*command(bad, tmp_path), in_process=True)
    assert_one_line_about(bad, expected, done.returncode, done.stderr)
    assert not list((tmp_path / "out").glob("*.json")), "nothing was written"
    assert not (tmp_path / "journal").exists(), "no rotation was started"


@pytest.mark.parametrize("content", MALFORMED.values(), ids=MALFORMED.keys())
def test_verify_report_refuses_a_validly_signed_malformed_report(
    content: tuple[Callable[[], str], str], signing_key: tuple[Path, Path], tmp_path: Path
) -> None:
    make, expected = content
    private, public = signing_key
    bad = tmp_path / "bad.json"
    bad.write_text(make())
    signature_path(bad).write_bytes(load_signer(private).sign(bad.read_bytes()))
    done = run.sweeper("verify-report", str(bad), "--pub", str(public), in_process=True)
    assert_one_line_about(bad, expected, done.returncode, done.stderr)


def assert_one_line_about(path: Path, expected: str, exit_code: int, stderr: str) -> None:
    assert exit_code == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"sweeper: {path}: ") and expected in lines[0], lines[0]
