"""History and drift across three runs: a finding appears and is resolved, a rogue root comes and goes."""

from __future__ import annotations

import copy
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from sweeper import history
from sweeper.report import schema
from sweeper.report.drift import Snapshot, diff
from tests.fixtures.reports import every_rule_report, later_run, write
from tests.support import run

ROGUE_ON_WEB1 = {
    **next(c for c in every_rule_report()["nodes"][0]["certificates"] if "Evil Corp" in c["subject"]),
    "store": "/usr/local/share/ca-certificates", "entry": "evil.crt",
}  # fmt: skip


def three_runs() -> list[dict[str, Any]]:
    """Run 1 before the incident shows; run 2 an IOC match and a new root on web1; run 3 both gone."""
    base = every_rule_report()
    first = later_run(base, "aaaa0001", "2025-03-01T02:00:00Z", drop_rules=("ioc-match",))
    second = later_run(base, "bbbb0002", "2025-03-02T02:00:00Z", anchors_added={"web1": ROGUE_ON_WEB1})
    third = later_run(base, "cccc0003", "2025-03-03T02:00:00Z", drop_rules=("ioc-match",))
    return [first, second, third]


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, list[Path]]:
    db = tmp_path / "reports" / "history.sqlite"
    paths = []
    for report in three_runs():
        path = write(report, tmp_path / "reports" / f"{report['run']['id']}.json")
        history.record(db, schema.parse(report, path), path)
        paths.append(path)
    return db, paths


def rules(items: list[schema.Finding]) -> list[str]:
    return sorted(item.rule for item in items)


def test_runs_are_listed_newest_first_with_their_counts(recorded: tuple[Path, list[Path]]) -> None:
    db, paths = recorded
    rows = history.runs(db)
    assert [row.id for row in rows] == ["cccc0003", "bbbb0002", "aaaa0001"]
    assert rows[1].findings["critical"] == 5 and rows[0].findings["critical"] == 4
    assert rows[0].report_path == paths[2].resolve()
    assert (rows[0].nodes, rows[0].nodes_swept) == (8, 3)


def test_finding_appears_then_is_resolved_and_rogue_root_comes_and_goes(
    recorded: tuple[Path, list[Path]],
) -> None:
    db, _ = recorded
    first, second, third = (
        history.find_snapshot(db, run_id) for run_id in ("aaaa0001", "bbbb0002", "cccc0003")
    )

    appeared = diff(first, second)
    assert rules(appeared.new_findings) == ["ioc-match"] and appeared.resolved == []
    assert len(appeared.still_open) == len(every_rule_report()["findings"]) - 1
    assert [(a.node, a.sha256) for a in appeared.anchors_added] == [("web1", ROGUE_ON_WEB1["sha256"])]
    assert appeared.anchors_removed == [] and appeared.drifted

    resolved = diff(second, third)
    assert resolved.new_findings == [] and rules(resolved.resolved) == ["ioc-match"]
    assert [(a.node, a.sha256) for a in resolved.anchors_removed] == [("web1", ROGUE_ON_WEB1["sha256"])]
    assert resolved.drifted, "a trust anchor changed"

    assert not diff(first, third).drifted
    assert diff(first, third).not_compared == ["web2", "web3", "esx02", "esx03", "vc02"]


def test_history_and_report_files_give_the_same_snapshot(recorded: tuple[Path, list[Path]]) -> None:
    db, paths = recorded
    from_db = history.find_snapshot(db, "bbbb")
    from_file = history.find_snapshot(db, str(paths[1]))
    assert from_db == from_file


def test_findings_on_a_node_not_swept_later_are_not_called_resolved() -> None:
    base = every_rule_report()
    later = copy.deepcopy(base)
    vc01 = later["nodes"][0]
    vc01.update(status="unreachable", error="connection refused", certificates=[], stores=[])
    later["findings"] = [f for f in later["findings"] if f["node"] != "vc01"]
    drift = diff(
        Snapshot.from_report(schema.parse(base, "base")), Snapshot.from_report(schema.parse(later, "later"))
    )
    assert drift.resolved == []
    assert {f.node for f in drift.not_rechecked} == {"vc01"}
    assert "vc01" in drift.not_compared and drift.anchors_removed == []


def test_last_report_path_is_the_newest_run_with_a_swept_node_and_a_file(
    recorded: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    db, paths = recorded
    assert history.last_report_path(db) == paths[2].resolve()
    paths[2].unlink()
    assert history.last_report_path(db) == paths[1].resolve()
    nothing_swept = later_run(every_rule_report(), "dddd0004", "2025-03-04T02:00:00Z")
    for node in nothing_swept["nodes"]:
        node.update(status="unreachable", certificates=[], stores=[])
    nothing_swept["summary"]["nodes_swept"] = 0
    path = write(nothing_swept, tmp_path / "reports" / "dddd0004.json")
    history.record(db, schema.load(path), path)
    assert history.last_report_path(db) == paths[1].resolve()


def test_last_report_path_without_history_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(history.HistoryError, match="no history yet"):
        history.last_report_path(tmp_path / "history.sqlite")


def test_recording_the_same_run_twice_keeps_one_copy(recorded: tuple[Path, list[Path]]) -> None:
    db, paths = recorded
    report = schema.load(paths[2])
    history.record(db, report, paths[2])
    assert [row.id for row in history.runs(db)].count("cccc0003") == 1
    with sqlite3.connect(db) as conn:
        (findings,) = conn.execute("SELECT count(*) FROM findings WHERE run_id = 'cccc0003'").fetchone()
    assert findings == len(report.findings)


def test_history_folder_can_be_moved_whole(recorded: tuple[Path, list[Path]], tmp_path: Path) -> None:
    db, _ = recorded
    moved = tmp_path / "archive"
    db.parent.rename(moved)
    assert history.last_report_path(moved / "history.sqlite") == (moved / "cccc0003.json").resolve()


@pytest.mark.parametrize("content", [b"not a database at all, just text" * 100, b"\x00" * 100])
def test_a_file_that_is_not_a_history_database_is_bad_input(tmp_path: Path, content: bytes) -> None:
    db = tmp_path / "history.sqlite"
    db.write_bytes(content)
    with pytest.raises(history.HistoryError):
        history.check(db)


def test_unknown_run_id_is_bad_input(recorded: tuple[Path, list[Path]]) -> None:
    db, _ = recorded
    with pytest.raises(history.HistoryError, match="no recorded run"):
        history.find_snapshot(db, "ffff")


def test_history_and_diff_commands(recorded: tuple[Path, list[Path]]) -> None:
    db, paths = recorded
    listed = run.sweeper("history", "--history", str(db), in_process=True)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.index("cccc0003") < listed.stdout.index("aaaa0001")
    drifted = run.sweeper("diff", "aaaa0001", str(paths[1]), "--history", str(db), in_process=True)
    assert drifted.returncode == 1, drifted.stderr
    assert "New findings (1)" in drifted.stdout and "ioc-match" in drifted.stdout
    assert "+ added trust anchor on web1" in drifted.stdout
    calm = run.sweeper("diff", "aaaa0001", "cccc0003", "--out", str(db.parent), in_process=True)
    assert calm.returncode == 0 and "no new findings" in calm.stdout
    bad = run.sweeper("diff", "nope", "cccc0003", "--history", str(db), in_process=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


IOC_INPUT = {"kind": "ioc", "path": "/srv/incident/ioc.txt", "sha256": "ab" * 32}


@pytest.mark.parametrize("source", ["history", "file"])
def test_a_finding_whose_rule_or_input_was_not_used_later_is_not_called_resolved(
    tmp_path: Path, source: str
) -> None:
    """`--rule expired` or a run without the IOC file cannot say that an ioc-match went away."""
    base = every_rule_report()
    second = later_run(base, "bbbb0002", "2025-03-02T02:00:00Z")
    second["run"]["inputs"] = [IOC_INPUT]
    without_ioc = later_run(base, "cccc0003", "2025-03-03T02:00:00Z", drop_rules=("ioc-match",))
    without_ioc["run"]["inputs"] = []
    only_expired = later_run(base, "dddd0004", "2025-03-04T02:00:00Z")
    only_expired["run"].update(inputs=[IOC_INPUT], rules=["expired"])
    only_expired["findings"] = [f for f in only_expired["findings"] if f["rule"] == "expired"]
    with_ioc = copy.deepcopy(without_ioc)
    with_ioc["run"].update(id="eeee0005", inputs=[IOC_INPUT])
    db = tmp_path / "history.sqlite"
    snapshots = {}
    for report in (second, without_ioc, only_expired, with_ioc):
        path = write(report, tmp_path / f"{report['run']['id']}.json")
        history.record(db, schema.parse(report, path), path)
        snapshots[report["run"]["id"]] = history.find_snapshot(
            db, report["run"]["id"] if source == "history" else str(path)
        )

    from sweeper.detect import input_needs

    needs = input_needs()
    no_input = diff(snapshots["bbbb0002"], snapshots["cccc0003"], needs)
    assert rules(no_input.not_rechecked) == ["ioc-match"] and no_input.resolved == []
    one_rule = diff(snapshots["bbbb0002"], snapshots["dddd0004"], needs)
    assert one_rule.resolved == [] and "ioc-match" in rules(one_rule.not_rechecked)
    assert "expired" not in rules(one_rule.not_rechecked), "the rule that ran is compared as usual"
    rechecked = diff(snapshots["bbbb0002"], snapshots["eeee0005"], needs)
    assert rules(rechecked.resolved) == ["ioc-match"] and rechecked.not_rechecked == []
