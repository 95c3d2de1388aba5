"""The history database: every run's nodes, certificates and findings in one embedded SQLite file.

It lives next to the reports (`<out>/history.sqlite` unless `--history PATH`), so the reports
folder alone answers "when did this root first appear?" with plain SQL, feeds `sweeper diff`,
and gives `--baseline last` the previous run's trust anchors. Recording a run again replaces
it, so re-running the recorder is harmless. Report paths inside the folder are stored relative
to it, so the folder can be moved or archived whole.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from sweeper.atomic import not_writable
from sweeper.errors import BadInput
from sweeper.report import schema
from sweeper.report.drift import Snapshot, finding_key
from sweeper.report.schema import SEVERITIES, Finding, Report, iso

DEFAULT_NAME = "history.sqlite"
VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, started TEXT NOT NULL, finished TEXT NOT NULL,
    tool_version TEXT NOT NULL, inventory_path TEXT NOT NULL, inventory_sha256 TEXT NOT NULL,
    interrupted INTEGER NOT NULL, nodes INTEGER NOT NULL, nodes_swept INTEGER NOT NULL,
    certificates INTEGER NOT NULL, critical INTEGER NOT NULL, high INTEGER NOT NULL,
    medium INTEGER NOT NULL, low INTEGER NOT NULL, info INTEGER NOT NULL, report_path TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started);
CREATE TABLE IF NOT EXISTS nodes (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE, name TEXT NOT NULL,
    host TEXT NOT NULL, status TEXT NOT NULL, error TEXT, attempts INTEGER NOT NULL,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS certificates (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE, node TEXT NOT NULL,
    store TEXT NOT NULL, entry TEXT NOT NULL, role TEXT NOT NULL, subject TEXT NOT NULL,
    issuer TEXT NOT NULL, serial TEXT NOT NULL, not_before TEXT NOT NULL, not_after TEXT NOT NULL,
    sha256 TEXT NOT NULL, spki_sha256 TEXT NOT NULL, key_type TEXT NOT NULL, key_bits INTEGER NOT NULL,
    is_ca INTEGER NOT NULL, self_signed INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS certificates_run ON certificates (run_id, node);
CREATE INDEX IF NOT EXISTS certificates_sha256 ON certificates (sha256);
CREATE TABLE IF NOT EXISTS findings (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE, rule TEXT NOT NULL,
    severity TEXT NOT NULL, node TEXT, store TEXT, entry TEXT, sha256 TEXT,
    message TEXT NOT NULL, evidence TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_run ON findings (run_id);
CREATE TABLE IF NOT EXISTS run_scope (
    run_id TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    rules TEXT, input_kinds TEXT NOT NULL
);
"""


class HistoryError(BadInput):
    """The history database cannot be opened, is not ours, or lacks what was asked of it."""


def default_path(out_dir: Path) -> Path:
    """Where the history lives when `--history` is not given: beside the reports."""
    return out_dir / DEFAULT_NAME


@dataclass(frozen=True, slots=True)
class RunRow:
    """One recorded run, as `sweeper history` lists it."""

    id: str
    kind: str
    started: str
    finished: str
    interrupted: bool
    nodes: int
    nodes_swept: int
    certificates: int
    findings: dict[str, int]
    report_path: Path


def check(db: Path) -> None:
    """Fail before a sweep, not after it, when `db` could not take the run: not ours, or not writable.

    Creates nothing, so a run refused for bad input leaves no trace on disk.
    """
    if db.exists():
        with _connect(db):
            return
    if (folder := not_writable(db.parent)) is not None:
        raise HistoryError(f"{db}: cannot create the history database there ({folder} is not writable)")


def record(db: Path, report: Report, report_path: Path) -> None:
    """Store one run (replacing any earlier record of the same run id) in a single transaction."""
    run, summary = report.run, report.summary
    with _connect(db, create=True) as conn:
        conn.execute("DELETE FROM runs WHERE id = ?", (run.id,))
        conn.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run.id, run.kind, iso(run.started), iso(run.finished), run.tool_version,
                run.inventory.path, run.inventory.sha256, int(run.interrupted),
                summary.nodes, summary.nodes_swept, summary.certificates,
                *summary.findings.model_dump().values(),
                str(_relative(report_path, db)),
            ),
        )  # fmt: skip
        conn.execute(
            "INSERT INTO run_scope VALUES (?, ?, ?)",
            (
                run.id,
                None if run.rules is None else json.dumps(run.rules),
                json.dumps(sorted({item.kind for item in run.inputs})),
            ),
        )
        conn.executemany(
            "INSERT INTO nodes VALUES (?, ?, ?, ?, ?, ?)",
            ((run.id, n.name, n.host, n.status, n.error, n.attempts) for n in report.nodes),
        )
        conn.executemany(
            "INSERT INTO certificates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (run.id, n.name, c.store, c.entry, c.role, c.subject, c.issuer, c.serial,
                 iso(c.not_before), iso(c.not_after), c.sha256, c.spki_sha256, c.key_type, c.key_bits,
                 int(c.is_ca), int(c.self_signed))
                for n in report.nodes for c in n.certificates
            ),
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO findings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((run.id, f.rule, f.severity.label, f.node, f.store, f.entry, f.sha256, f.message,
              json.dumps(f.evidence, sort_keys=True))
             for f in report.findings),
        )  # fmt: skip


def runs(db: Path, limit: int | None = None) -> list[RunRow]:
    """Recorded runs, newest first."""
    with _connect(db) as conn:
        rows = conn.execute(
            "SELECT id, kind, started, finished, interrupted, nodes, nodes_swept, certificates, "
            "critical, high, medium, low, info, report_path FROM runs ORDER BY started DESC, rowid DESC "
            "LIMIT ?",
            (-1 if limit is None else limit,),
        ).fetchall()
    return [
        RunRow(
            *row[:4],
            bool(row[4]),
            *row[5:8],
            dict(zip(SEVERITIES, row[8:13], strict=True)),
            _absolute(row[13], db),
        )
        for row in rows
    ]


def last_report_path(db: Path) -> Path:
    """The report of the newest recorded run that swept at least one node and whose file still exists.

    This is what `scan --baseline last` resolves to: that report's trust anchors become the
    expected roots. Call it before the new run is recorded. A shard's report (`scan --shard`)
    is skipped: it holds only its slice of the fleet's anchors; the merged report holds them all.

    :raises HistoryError: no history at `db`, or no usable run in it (one line, exit 2).
    """
    if not db.exists():
        raise HistoryError(f"{db}: no history yet, so no previous run to take a baseline from")
    for row in runs(db):
        if row.nodes_swept and row.report_path.is_file() and schema.load(row.report_path).run.shard is None:
            return row.report_path
    raise HistoryError(f"{db}: no recorded run with a swept node and a report file to take a baseline from")


def find_snapshot(db: Path, ref: str) -> Snapshot:
    """A run to diff: a report file (`*.json`, or any existing file), else a run id or unique id prefix."""
    path = Path(ref)
    if path.suffix == ".json" or path.is_file():
        return Snapshot.from_report(schema.load(path))
    if not db.exists():
        raise HistoryError(f"{ref}: no such report file, and no history at {db} to look the run id up in")
    with _connect(db) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM runs WHERE id LIKE ? || '%'", (ref,))]
        if len(ids) != 1:
            problem = "no recorded run" if not ids else f"{len(ids)} recorded runs"
            raise HistoryError(f"{ref}: {problem} with this id in {db}")
        return _snapshot(conn, ids[0])


def _snapshot(conn: sqlite3.Connection, run_id: str) -> Snapshot:
    (started,) = conn.execute("SELECT started FROM runs WHERE id = ?", (run_id,)).fetchone()
    statuses = dict(conn.execute("SELECT name, status FROM nodes WHERE run_id = ? ORDER BY rowid", (run_id,)))
    anchors: dict[str, dict[str, str]] = {name: {} for name in statuses}
    for node, sha256, subject in conn.execute(
        "SELECT node, sha256, subject FROM certificates WHERE run_id = ? AND role = 'trust' ORDER BY rowid",
        (run_id,),
    ):
        anchors.setdefault(node, {})[sha256] = subject
    columns = ("rule", "severity", "node", "store", "entry", "sha256", "message", "evidence")
    findings = {}
    query = f"SELECT {', '.join(columns)} FROM findings WHERE run_id = ? ORDER BY rowid"
    for row in conn.execute(query, (run_id,)):
        stored = dict(zip(columns, row, strict=True))
        item = Finding.model_validate({**stored, "evidence": json.loads(stored["evidence"])})
        findings[finding_key(item)] = item
    rules, kinds = None, []  # a run recorded before run_scope existed: rules unknown, no inputs
    scope = conn.execute("SELECT rules, input_kinds FROM run_scope WHERE run_id = ?", (run_id,)).fetchone()
    if scope is not None:
        rules = None if scope[0] is None else json.loads(scope[0])
        kinds = json.loads(scope[1])
    return Snapshot(
        run_id,
        started,
        statuses,
        anchors,
        findings,
        rules=None if rules is None else frozenset(rules),
        input_kinds=frozenset(kinds),
    )


@contextmanager
def _connect(db: Path, create: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection in one transaction (committed on success), schema checked; errors are one line."""
    if not create and not db.exists():
        raise HistoryError(f"{db}: no history database here (it is created by the first scan)")
    try:
        if create:
            db.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(db, timeout=30)) as conn:
            conn.execute("PRAGMA foreign_keys = ON")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > VERSION:
                raise HistoryError(f"{db}: history database version {version} is newer than this sweeper's")
            if version < VERSION:
                conn.executescript(_SCHEMA + f"PRAGMA user_version = {VERSION};")
            with conn:
                yield conn
    except (sqlite3.Error, OSError) as exc:
        raise HistoryError(f"{db}: history database: {exc}") from None


def _relative(path: Path, db: Path) -> Path:
    path, base = path.resolve(), db.resolve().parent
    return path.relative_to(base) if path.is_relative_to(base) else path


def _absolute(stored: str, db: Path) -> Path:
    return db.resolve().parent / stored
