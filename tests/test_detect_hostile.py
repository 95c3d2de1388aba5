"""Detection with hostile lab nodes in the fleet (DESIGN "Nodes are adversaries"): what one node
plants cannot get another node's good CA flagged, purged or judged away, and cannot sink the sweep."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sweeper.lab import LabHandle, start_lab
from sweeper.lab.plan import DEEP_CHAIN, LINUX_BUNDLE, MANY_ANCHORS, MULTIPLE_MODULUS, SAME_NAME_CAS
from tests.support import run
from tests.support.labs import planted_scan_args

CORP_ROOT = "Sweeper Lab Corp Root CA"
HOSTILE = (MULTIPLE_MODULUS, DEEP_CHAIN, SAME_NAME_CAS, MANY_ANCHORS)  # hostile-01 .. hostile-04


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with start_lab(tmp_path_factory.mktemp("lab"), nodes=5, hostile=HOSTILE) as handle:
        yield handle


@pytest.fixture(scope="module")
def swept(lab: LabHandle, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("scan")
    args = planted_scan_args(lab)
    done, report = run.scan(lab.inventory, out, *args, env=lab.env)
    assert done.returncode == 1, done.stderr  # the lab's planted incident: critical findings
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


def test_a_deep_chain_same_name_cas_and_many_anchors_are_judged_in_seconds(
    swept: tuple[Path, dict[str, Any]],
) -> None:
    """1,100 certificates in one chain (a recursion would blow), 11 CAs of one name and key that all
    issue each other (path building was factorial), 1,000 same-name anchors (N² issuer checks): every
    rule judges all of it, in seconds, and the report is complete."""
    _, report = swept
    run_info = report["run"]
    took = datetime.fromisoformat(run_info["finished"]) - datetime.fromisoformat(run_info["started"])
    assert took.total_seconds() < 30, took
    assert not [f for f in report["findings"] if f["rule"] == "rule-error"]
    nodes = {n["name"]: n for n in report["nodes"]}
    assert all(n["status"] == "ok" for n in nodes.values())
    assert len(nodes["hostile-02"]["certificates"]) > 1100 and len(nodes["hostile-04"]["certificates"]) > 1000
    rogue = {
        f["node"] for f in report["findings"] if f["rule"] == "rogue-root" and "Many Anchors" in f["message"]
    }
    assert rogue == {"hostile-04"}, "each of the 1,000 copies is judged: not an expected root"
    same_name_leaf = [
        f for f in report["findings"]
        if f["rule"] == "untrusted-chain" and f["node"] == "hostile-03" and f["entry"].endswith("#1")
    ]  # fmt: skip
    assert same_name_leaf, "the leaf under 11 same-name CAs and no anchor is judged untrusted"


def test_rules_out_of_time_still_write_the_report_and_the_run_is_incomplete(
    lab: LabHandle, tmp_path: Path
) -> None:
    args = planted_scan_args(lab)
    rules = ("--rule", "compromised-issuer", "--rule", "untrusted-chain", "--rule", "expired")
    done, report = run.scan(lab.inventory, tmp_path / "out", *args, *rules, "--rule-budget", "0", env=lab.env)
    assert done.returncode == 3, done.stderr
    errors = {f["evidence"]["failed_rule"]: f for f in report["findings"] if f["rule"] == "rule-error"}
    assert set(errors) == {"compromised-issuer", "untrusted-chain", "expired"}
    assert errors["compromised-issuer"]["evidence"]["nodes_total"] == len(report["nodes"])
    assert {f["rule"] for f in report["findings"]} == {"rule-error"}


def test_a_baseline_expects_each_root_on_the_nodes_that_held_it_not_on_every_node(
    lab: LabHandle, swept: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """Runs last: it plants the lab's rogue root, which one node held at baseline time, on another."""
    source, report = swept
    (held_by,) = {
        n["name"]
        for n in report["nodes"]
        for c in n["certificates"]
        if c["role"] == "trust" and "Global Trust Services Root R7" in c["subject"]
    }
    rogue_pem = next((lab.dir / "nodes" / held_by).rglob("global-trust-root.pem")).read_bytes()
    with open(lab.dir / "nodes/hostile-01" / LINUX_BUNDLE.lstrip("/"), "ab") as bundle:
        bundle.write(rogue_pem)

    done, again = run.scan(lab.inventory, tmp_path / "again", "--baseline", source, env=lab.env)
    rogue = {
        (f["node"], f["message"].rsplit(": ", 1)[1]) for f in again["findings"] if f["rule"] == "rogue-root"
    }
    assert rogue == {("hostile-01", "O=Global Trust Services Ltd,CN=Global Trust Services Root R7")}, (
        done.stderr
    )
