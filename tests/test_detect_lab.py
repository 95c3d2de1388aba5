"""The lab's planted incident, end to end: `sweeper scan` with the incident's inputs finds every plant,
and nothing outside the plant rates above low."""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from sweeper import history
from sweeper.lab import LabHandle, start_lab
from sweeper.model import Severity
from sweeper.report import schema
from tests.support import run

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the lab serves POSIX shells")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with start_lab(tmp_path_factory.mktemp("lab"), nodes=12) as handle:
        yield handle


@pytest.fixture(scope="module")
def manifest(lab: LabHandle) -> dict[str, Any]:
    return json.loads((lab.dir / "incident" / "manifest.json").read_text())


def scan(lab: LabHandle, out: Path, *args: str) -> tuple[int, dict[str, Any]]:
    done, report = run.scan(lab.inventory, out, *args, env=lab.env)
    return done.returncode, report


@pytest.fixture(scope="module")
def swept(
    lab: LabHandle, manifest: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    """The incident's scan: the folder it wrote, and its report."""
    out = tmp_path_factory.mktemp("reports")
    code, found = scan(lab, out, *manifest["scan_args"])
    assert code == 1
    return out, found


@pytest.fixture(scope="module")
def report(swept: tuple[Path, dict[str, Any]]) -> dict[str, Any]:
    return swept[1]


def test_every_planted_finding_is_reported(manifest: dict[str, Any], report: dict[str, Any]) -> None:
    expected = {(e["rule"], e["node"], e["sha256"]) for e in manifest["expected_findings"]}
    got = {(f["rule"], f["node"], f["sha256"]) for f in report["findings"]}
    assert expected <= got, sorted(expected - got)


def test_no_certificate_outside_the_plant_rates_above_low(
    manifest: dict[str, Any], report: dict[str, Any]
) -> None:
    planted = {loc["sha256"] for plant in manifest["plants"] for loc in plant["locations"]}
    stray = [
        (f["rule"], f["node"], f["entry"], f["message"])
        for f in report["findings"]
        if Severity.parse(f["severity"]) > Severity.LOW and f["sha256"] not in planted
    ]
    assert stray == []


def test_a_baseline_of_this_sweep_expects_its_anchors(
    lab: LabHandle, report: dict[str, Any], tmp_path: Path
) -> None:
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(report))
    _, again = scan(lab, tmp_path / "again", "--baseline", str(baseline), "--rule", "rogue-root")
    assert again["findings"] == []


def test_history_of_a_json_only_scan_has_the_rows_of_its_file_read_back(
    swept: tuple[Path, dict[str, Any]],
) -> None:
    """The scan records the model it dumped the JSON from, without reading the file back: the same rows."""
    out, found = swept
    (path,) = out.glob("*.json")
    assert {p.name for p in out.iterdir()} == {path.name, history.DEFAULT_NAME}, "JSON only"
    read_back = out / "read-back.sqlite"
    history.record(read_back, schema.load(path), path)
    recorded = table_rows(out / history.DEFAULT_NAME)
    assert len(recorded["findings"]) == len(found["findings"]) > 0
    assert recorded == table_rows(read_back)


def table_rows(db: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, in insertion order."""
    with closing(sqlite3.connect(db)) as conn:
        tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {table: conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall() for table in tables}
