"""Detection with hostile lab nodes in the fleet (DESIGN "Nodes are adversaries"): what one node
plants cannot get another node's good CA flagged, purged or judged away, and cannot sink the sweep."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sweeper.lab import LabHandle, start_lab
from sweeper.lab.plan import MULTIPLE_MODULUS
from tests.support import run

CORP_ROOT = "Sweeper Lab Corp Root CA"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with start_lab(tmp_path_factory.mktemp("lab"), nodes=5, hostile=(MULTIPLE_MODULUS,)) as handle:
        yield handle


@pytest.fixture(scope="module")
def swept(lab: LabHandle, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("scan")
    _, report = run.scan(lab.inventory, out, env=lab.env)
    (path,) = out.glob("*.json")
    return path, report


def corp_root_sha256(report: dict[str, Any]) -> str:
    (sha256,) = {
        c["sha256"] for n in report["nodes"] for c in n["certificates"] if f"CN={CORP_ROOT}" in c["subject"]
    }
    return sha256


def test_a_multiple_of_the_corp_roots_modulus_flags_neither_the_root_nor_itself_as_a_shared_prime(
    lab: LabHandle, swept: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    source, report = swept
    corp = corp_root_sha256(report)
    broken = [f for f in report["findings"] if f["rule"] == "known-compromised-key"]
    assert not [f for f in broken if f["sha256"] == corp], "the victim's key is not compromised"
    (planted,) = [f for f in broken if f["node"] == "hostile-01"]
    checks = {c["check"] for c in planted["evidence"]["checks"]}
    assert "smallfactors" in checks, "the planted key is caught for what it is: a multiple of 3"
    assert "fleet-sharedprimes" not in checks, "its gcd with the root is the whole root modulus"

    done = run.sweeper(
        "rotate", lab.inventory, "--from", source, "--dry-run", "--journal", tmp_path / "journal",
        env=lab.env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if corp in line]
    reasons = re.search(r"\(([^;]*);", line).group(1).split(", ")  # type: ignore[union-attr]
    assert reasons == ["old-root"], "purged as the old root the rotation replaces, not as a broken key"
