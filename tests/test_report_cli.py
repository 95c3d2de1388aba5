"""`sweeper report` re-renders any past run; `scan --format/--sign/--history` writes the same files."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.reports import FIXTURE
from tests.support import run

ALL_SUFFIXES = (".html", ".md", ".certificates.csv", ".findings.csv", ".junit.xml", ".sarif")
UNREACHABLE = (
    '[defaults]\nknown_hosts = "/dev/null"\nclient_keys = []\n'
    '[[nodes]]\nname = "n1"\nhost = "127.0.0.1"\nport = 1\nprofile = "esxi"\n'
)


def one_line_error(code: int, stderr: str) -> str:
    assert code == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_report_writes_every_format_with_the_run_stem(tmp_path: Path) -> None:
    source = shutil.copy(FIXTURE, tmp_path / "20250302T020000Z-5eed0001.json")
    formats = "html,md,csv,junit,sarif"
    done = run.sweeper("report", source, "--format", formats, "--out", tmp_path / "d", in_process=True)
    assert done.returncode == 0, done.stderr
    expected = {f"20250302T020000Z-5eed0001{suffix}" for suffix in ALL_SUFFIXES}
    assert {p.name for p in (tmp_path / "d").iterdir()} == expected
    assert {Path(line).name for line in done.stdout.split()} == expected


def test_report_defaults_to_html_beside_the_json(tmp_path: Path) -> None:
    source = shutil.copy(FIXTURE, tmp_path / "run.json")
    assert run.sweeper("report", str(source), in_process=True).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.html", "run.json"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"schema": "sweeper.report/1", "run": ', "not JSON"),
        ('{"schema": "other.report/3"}', "not a sweeper.report/1 report"),
        ("[1, 2]", "not a sweeper.report/1 report"),
        ('{"schema": "sweeper.report/1", "run": {}}', "not a valid sweeper.report/1 report: run.id"),
    ],
)
def test_corrupt_or_foreign_json_is_a_one_line_error(tmp_path: Path, content: str, expected: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    done = run.sweeper("report", str(bad), "--format", "all", "--out", str(tmp_path / "d"), in_process=True)
    line = one_line_error(done.returncode, done.stderr)
    assert line.startswith(f"sweeper: {bad}: ") and expected in line
    assert not (tmp_path / "d").exists()


def test_unknown_format_is_a_one_line_error(tmp_path: Path) -> None:
    done = run.sweeper(
        "report", str(FIXTURE), "--format", "html,pdf", "--out", str(tmp_path), in_process=True
    )
    line = one_line_error(done.returncode, done.stderr)
    assert "unknown report format 'pdf'" in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--format", "html,docx"], "unknown report format 'docx'"),
        (["--sign", "absent.pem"], "absent.pem: cannot read signing key"),
        (["--history", "inv.toml/history.sqlite"], "cannot create the history database"),
    ],
)
def test_bad_output_option_stops_scan_before_any_connection(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    (tmp_path / "inv.toml").write_text(UNREACHABLE)
    done = run.sweeper("scan", "inv.toml", "--out", "out", *args)
    line = one_line_error(done.returncode, done.stderr)
    assert expected in line
    assert not (tmp_path / "out").exists()


def test_scan_writes_signed_json_every_format_and_history(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl CLI to make a signing key")
    subprocess.run([openssl, "genpkey", "-algorithm", "ed25519", "-out", str(tmp_path / "k.pem")], check=True)
    subprocess.run(
        [openssl, "pkey", "-in", str(tmp_path / "k.pem"), "-pubout", "-out", str(tmp_path / "k.pub")],
        check=True,
    )
    (tmp_path / "inv.toml").write_text(UNREACHABLE)
    done = run.sweeper(
        "scan",
        "inv.toml",
        "--out",
        "out",
        "--retries",
        "1",
        "--format",
        "all",
        "--sign",
        "k.pem",
    )
    assert done.returncode == 3, done.stderr
    (report,) = (tmp_path / "out").glob("*.json")
    stem = report.name.removesuffix(".json")
    written = {Path(line).name for line in done.stdout.split()}
    signatures = (".json.sig", ".sha256sums", ".sha256sums.sig")
    assert written == {f"{stem}{suffix}" for suffix in (".json", *signatures, *ALL_SUFFIXES)}
    assert (
        run.sweeper(
            "verify-report", str(report), "--pub", str(tmp_path / "k.pub"), in_process=True
        ).returncode
        == 0
    )
    with sqlite3.connect(tmp_path / "out" / "history.sqlite") as conn:
        assert conn.execute("SELECT id, nodes, nodes_swept FROM runs").fetchall() == [
            (stem.split("-")[1], 1, 0)
        ]

    again = run.sweeper(
        "report", str(report), "--format", "all", "--out", str(tmp_path / "again"), in_process=True
    )
    assert again.returncode == 0, again.stderr
    for suffix in ALL_SUFFIXES:
        original = (tmp_path / "out" / f"{stem}{suffix}").read_bytes()
        assert (tmp_path / "again" / f"{stem}{suffix}").read_bytes() == original, suffix


@pytest.mark.parametrize(("umask", "mode"), [(0o077, 0o600), (0o022, 0o644), (0o027, 0o640)])
def test_every_file_of_a_run_follows_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    """Reports used to be forced to 0644, readable by everyone on the machine even under umask 077."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl CLI to make a signing key")
    subprocess.run([openssl, "genpkey", "-algorithm", "ed25519", "-out", str(tmp_path / "k.pem")], check=True)
    (tmp_path / "inv.toml").write_text(UNREACHABLE)
    previous = os.umask(umask)  # the sweeper process inherits it
    try:
        done = run.sweeper(
            "scan", "inv.toml", "--out", "out", "--retries", "1", "--format", "all", "--sign", "k.pem"
        )
    finally:
        os.umask(previous)
    written = [Path(line) for line in done.stdout.split()]
    assert len(written) == 10, done.stdout
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {oct(mode)}
