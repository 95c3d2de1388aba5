"""A disk that fills up under sweeper (a real tmpfs, mounted small): the run says so in one line and
loses nothing: a sweep's report is kept elsewhere, a rotation stops where its journal could not
go on and resumes once there is room again."""

from __future__ import annotations

import errno
import json
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sweeper.lab import LabHandle
from tests.support import run
from tests.support.journal_watch import Steps, journal_steps
from tests.support.labs import own_lab, planted_scan_args

PASSPHRASE = "full disk test"


lab, lab_secrets = own_lab(nodes=5, passphrase=PASSPHRASE)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A file system of its own (tmpfs, 16 MiB) for the test to fill; skipped where this machine
    does not let us mount one (not root, or no CAP_SYS_ADMIN in a container)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write zeros until the file system says it is full; the file that took the room."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def test_a_sweep_whose_report_meets_a_full_disk_keeps_it_in_a_private_folder_and_says_where(
    lab: LabHandle, small_disk: Path, tmp_path: Path
) -> None:
    spare = tmp_path / "spare"
    spare.mkdir()
    fill(small_disk)
    done = run.sweeper(
        "scan",
        lab.inventory,
        *planted_scan_args(lab),
        "--out",
        small_disk / "reports",
        "--history",
        tmp_path / "history.sqlite",
        env={"TMPDIR": str(spare)},
    )
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    (saved,) = spare.glob("sweeper-unsaved-*/*.json")
    assert last == (
        f"sweeper: could not write {small_disk / 'reports' / saved.name} (No space left on device); "
        f"the report is saved as {saved} instead (only there)"
    )
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert stat.S_IMODE(saved.parent.stat().st_mode) == 0o700
    rendered = run.sweeper("report", saved, "--format", "md", "--out", tmp_path / "md")
    assert rendered.returncode == 0, rendered.stderr
    report = json.loads(saved.read_text())
    assert report["summary"]["nodes_swept"] == len(report["nodes"]) == 5
    assert report["summary"]["findings"]["critical"] > 0, "the planted incident is in it"


def test_a_rotation_whose_journal_meets_a_full_disk_stops_in_one_line_and_resumes_once_there_is_room(
    lab: LabHandle, small_disk: Path, tmp_path: Path
) -> None:
    _, before = run.scan(lab.inventory, tmp_path / "before", *planted_scan_args(lab))
    (source,) = (tmp_path / "before").glob("*.json")
    journal = small_disk / "journal"

    def trust_begun(steps: Steps) -> bool:
        return any(phase == "trust" and state != "pending" for (_, phase, _), state in steps.items())

    rotation = run.start(
        "rotate", lab.inventory, "--from", source, "--yes", "--journal", journal, "--out", tmp_path / "r0"
    )
    while rotation.poll() is None and not trust_begun(journal_steps(journal)):
        time.sleep(0.01)  # as soon as the journal says nodes are changing, the disk fills up
    filler = fill(small_disk)
    stopped = run.finish(rotation)
    assert stopped.returncode == 4, stopped.stderr
    assert stopped.stderr.strip().splitlines()[-1] == (
        f"sweeper: {journal}: could not write the journal (database or disk is full); the rotation "
        f"stopped after it began changing nodes (journal {journal}): go on with `sweeper resume "
        f"{journal}`, or undo it with `sweeper rollback {journal}`"
    )
    filler.unlink()
    resumed = run.sweeper("resume", journal, "--out", tmp_path / "r1")
    assert resumed.returncode == 0, resumed.stderr
    report = run.only_report(tmp_path / "r1")
    assert report["rotation"]["complete"] is True
    assert all(s["state"] in ("done", "skipped") for s in report["steps"])
    assert before["summary"]["findings"]["critical"] > 0
    assert report["summary"]["findings"]["critical"] == 0


def test_a_report_folder_or_a_journal_on_a_read_only_disk_is_refused_before_any_node_is_read(
    lab: LabHandle, small_disk: Path, tmp_path: Path
) -> None:
    run.scan(lab.inventory, tmp_path / "before", *planted_scan_args(lab))
    (source,) = (tmp_path / "before").glob("*.json")
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    reports = small_disk / "reports"
    scan = run.sweeper("scan", lab.inventory, "--out", reports, "--history", tmp_path / "history.sqlite")
    assert scan.returncode == 2
    assert (
        scan.stderr.strip()
        == f"sweeper: {reports}: cannot write reports there ({small_disk} is not a writable folder)"
    )
    journal = small_disk / "journal"
    rotation = run.rotate(lab.inventory, source, journal, tmp_path / "r")
    assert rotation.returncode == 2
    assert rotation.stderr.strip() == (
        f"sweeper: {journal}: cannot make the journal there ({small_disk} is not a writable folder)"
    )


def test_rendering_a_report_onto_a_full_disk_names_the_file_in_one_line_and_leaves_no_temporary_file(
    lab: LabHandle, small_disk: Path, tmp_path: Path
) -> None:
    run.scan(lab.inventory, tmp_path / "before", *planted_scan_args(lab))
    (source,) = (tmp_path / "before").glob("*.json")
    out = small_disk / "out"
    out.mkdir()
    fill(small_disk)
    done = run.sweeper("report", source, "--format", "html,md", "--out", out)
    assert done.returncode == 2
    html = out / source.name.replace(".json", ".html")
    assert done.stderr.strip() == f"sweeper: {html}: No space left on device"
    assert list(out.iterdir()) == []
