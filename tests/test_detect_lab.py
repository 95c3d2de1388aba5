"""The lab's planted incident, end to end: `sweeper scan` with the incident's inputs finds every plant,
and nothing outside the plant rates above low."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sweeper.lab import LabHandle, start_lab
from sweeper.model import Severity
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
def report(
    lab: LabHandle, manifest: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    code, found = scan(lab, tmp_path_factory.mktemp("reports"), *manifest["scan_args"])
    assert code == 1
    return found


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
