"""The rotation journal: SQLite (WAL, synchronous=FULL), a row per node x step, sealed backups.

Intent is written before any remote change and the outcome after it, with a
compare-and-swap on the step's state so that a stale or concurrent run stops loudly.
Backups keep the *first* content seen for a target (the state before sweeper touched it),
so re-running an interrupted step can never overwrite the original with a half-changed one.
The only module that imports sqlite3 for rotation.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sweeper.errors import BadInput, SweeperError
from sweeper.pki.vault import VaultError, derive_key, new_salt, seal, unseal

DB_NAME = "journal.sqlite"
VERIFIER = b"sweeper-journal/1"
FORMAT = 2
"""The journal's layout and its plan's encoding (2: steps as a tagged union); `open` refuses others."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steps (
    node TEXT NOT NULL, phase TEXT NOT NULL, step TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed', 'skipped')),
    attempts INTEGER NOT NULL DEFAULT 0, started TEXT, finished TEXT, detail TEXT, error TEXT,
    PRIMARY KEY (node, phase, step));
CREATE TABLE IF NOT EXISTS backups (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, node TEXT NOT NULL, kind TEXT NOT NULL,
    target TEXT NOT NULL, existed INTEGER NOT NULL, owner TEXT, grp TEXT, mode TEXT,
    content BLOB, sealed INTEGER NOT NULL, restored INTEGER NOT NULL DEFAULT 0,
    UNIQUE (node, kind, target));
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, blob BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS issued (
    serial TEXT PRIMARY KEY, node TEXT NOT NULL, target TEXT NOT NULL, sha256 TEXT NOT NULL,
    created TEXT NOT NULL);
"""


class JournalError(SweeperError):
    """The journal is missing, locked by another run, or not in the state this action needs."""


@dataclass(frozen=True, slots=True)
class Step:
    node: str
    phase: str
    step: str
    state: str
    attempts: int
    detail: dict[str, Any]
    error: str | None


@dataclass(frozen=True, slots=True)
class Backup:
    """One target as it was before sweeper changed it; `content` is already unsealed."""

    seq: int
    node: str
    kind: str
    target: str
    existed: bool
    owner: str | None
    group: str | None
    mode: str | None
    content: bytes | None
    restored: bool


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Journal:
    """One rotation's durable record. Open with `create()` or `open()`; close when done."""

    def __init__(self, directory: Path, db: sqlite3.Connection, key: bytes) -> None:
        self.directory = directory
        self._db = db
        self._key = key
        self._lock = self._take_lock(directory)

    @staticmethod
    def _take_lock(directory: Path) -> int:
        """One sweeper at a time per journal; the kernel drops the lock if we are killed."""
        fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalError(f"{directory}: another sweeper is using this journal right now") from None
        return fd

    @classmethod
    def create(cls, directory: Path, passphrase: str, meta: dict[str, Any]) -> Journal:
        """A new journal in `directory` (made 0700); refuses to reuse one that holds a run."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(directory, 0o700)
        if (directory / DB_NAME).exists():
            raise JournalError(
                f"{directory}: already holds a rotation journal; use `sweeper resume {directory}`"
            )
        db = cls._connect(directory)
        salt = new_salt()
        key = derive_key(passphrase, salt)
        with db:
            db.executescript(SCHEMA)
            rows = {
                "salt": salt.hex(),
                "verifier": seal(key, VERIFIER, b"verifier").hex(),
                "created": _now(),
                "format": str(FORMAT),
            }
            rows.update({k: json.dumps(v) for k, v in meta.items()})
            db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", rows.items())
        os.chmod(directory / DB_NAME, 0o600)
        return cls(directory, db, key)

    @classmethod
    def open(cls, directory: Path, passphrase: str) -> Journal:
        if not (directory / DB_NAME).is_file():
            raise JournalError(f"{directory}: no rotation journal here")
        db = cls._connect(directory)
        try:
            found = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        except sqlite3.DatabaseError as exc:
            db.close()
            raise JournalError(f"{directory}: not a sweeper journal ({exc})") from None
        if found is None or found[0] != str(FORMAT):
            db.close()
            written = f"format {found[0]}" if found else "an older format"
            raise JournalError(
                f"{directory}: this journal is in {written}, this sweeper reads format {FORMAT}; "
                "resume or roll it back with the sweeper version that started it"
            )
        salt = bytes.fromhex(cls._meta_raw(db, "salt"))
        key = derive_key(passphrase, salt)
        try:
            unseal(key, bytes.fromhex(cls._meta_raw(db, "verifier")), b"verifier")
        except VaultError:
            db.close()
            raise BadInput(f"{directory}: wrong journal passphrase") from None
        return cls(directory, db, key)

    @staticmethod
    def _connect(directory: Path) -> sqlite3.Connection:
        db = sqlite3.connect(directory / DB_NAME, isolation_level=None, timeout=5)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    @staticmethod
    def _meta_raw(db: sqlite3.Connection, key: str) -> str:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise JournalError(f"journal has no '{key}'; it is not a sweeper journal")
        return row[0]

    def close(self) -> None:
        self._db.close()
        os.close(self._lock)

    # --- metadata --------------------------------------------------------------------------

    def meta(self, key: str) -> Any:
        return json.loads(self._meta_raw(self._db, key))

    def set_meta(self, key: str, value: Any) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value))
            )

    # --- steps -----------------------------------------------------------------------------

    def plan_steps(self, steps: list[tuple[str, str, str]]) -> None:
        """Record every (node, phase, step) of the plan as pending; existing rows are kept."""
        with self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO steps (node, phase, step, state) VALUES (?, ?, ?, 'pending')", steps
            )

    def begin(self, node: str, phase: str, step: str) -> bool:
        """Mark a step running (intent, before any change); False if it is already done."""
        with self._db:
            cur = self._db.execute(
                "UPDATE steps SET state = 'running', attempts = attempts + 1, started = ?, error = NULL "
                "WHERE node = ? AND phase = ? AND step = ? AND state IN ('pending', 'running', 'failed')",
                (_now(), node, phase, step),
            )
            if cur.rowcount == 1:
                return True
            state = self._state(node, phase, step)
        if state in ("done", "skipped"):
            return False
        raise JournalError(f"journal: step {node}/{phase}/{step} is not planned (state {state})")

    def finish(self, node: str, phase: str, step: str, detail: dict[str, Any] | None = None) -> None:
        self._settle(node, phase, step, "done", detail, None)

    def fail(self, node: str, phase: str, step: str, error: str) -> None:
        self._settle(node, phase, step, "failed", None, error)

    def skip(self, node: str, phase: str, step: str, reason: str) -> None:
        self._settle(
            node, phase, step, "skipped", {"reason": reason}, None, from_states=("pending", "running")
        )

    def _settle(
        self,
        node: str,
        phase: str,
        step: str,
        state: str,
        detail: dict[str, Any] | None,
        error: str | None,
        from_states: tuple[str, ...] = ("running",),
    ) -> None:
        marks = ", ".join("?" for _ in from_states)
        with self._db:
            cur = self._db.execute(
                f"UPDATE steps SET state = ?, finished = ?, detail = ?, error = ? "
                f"WHERE node = ? AND phase = ? AND step = ? AND state IN ({marks})",
                (state, _now(), json.dumps(detail or {}), error, node, phase, step, *from_states),
            )
            if cur.rowcount != 1:
                raise JournalError(
                    f"journal: step {node}/{phase}/{step} changed under us "
                    f"(now {self._state(node, phase, step)}); is another run using this journal?"
                )

    def _state(self, node: str, phase: str, step: str) -> str | None:
        row = self._db.execute(
            "SELECT state FROM steps WHERE node = ? AND phase = ? AND step = ?", (node, phase, step)
        ).fetchone()
        return row[0] if row else None

    def steps(self, phase: str | None = None) -> list[Step]:
        query = "SELECT node, phase, step, state, attempts, detail, error FROM steps"
        rows = self._db.execute(
            query + (" WHERE phase = ?" if phase else "") + " ORDER BY rowid", (phase,) if phase else ()
        )
        return [Step(r[0], r[1], r[2], r[3], r[4], json.loads(r[5] or "{}"), r[6]) for r in rows]

    # --- backups ---------------------------------------------------------------------------

    def backup(
        self,
        node: str,
        kind: str,
        target: str,
        *,
        existed: bool,
        content: bytes | None = None,
        owner: str | None = None,
        group: str | None = None,
        mode: str | None = None,
        secret: bool = False,
    ) -> bool:
        """Keep the first state seen of `target`; True if this call recorded it."""
        blob = content
        if content is not None and secret:
            blob = seal(self._key, content, self._context(node, kind, target))
        with self._db:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO backups "
                "(node, kind, target, existed, owner, grp, mode, content, sealed) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    node,
                    kind,
                    target,
                    int(existed),
                    owner,
                    group,
                    mode,
                    blob,
                    int(secret and content is not None),
                ),
            )
        return cur.rowcount == 1

    _BACKUP_COLUMNS = "seq, node, kind, target, existed, owner, grp, mode, content, sealed, restored"

    def backups(self, node: str | None = None) -> Iterator[Backup]:
        """Every backup, oldest first (rollback walks them in reverse)."""
        query = f"SELECT {self._BACKUP_COLUMNS} FROM backups"
        rows = self._db.execute(
            query + (" WHERE node = ?" if node else "") + " ORDER BY seq", (node,) if node else ()
        ).fetchall()
        for row in rows:
            yield self._backup_from(row)

    def backup_of(self, node: str, kind: str, target: str) -> Backup | None:
        """The backup of one target (only its secret is unsealed), or None."""
        row = self._db.execute(
            f"SELECT {self._BACKUP_COLUMNS} FROM backups WHERE node = ? AND kind = ? AND target = ?",
            (node, kind, target),
        ).fetchone()
        return self._backup_from(row) if row else None

    def _backup_from(self, row: tuple) -> Backup:
        seq, node, kind, target, existed, owner, grp, mode, content, sealed, restored = row
        if sealed:
            content = unseal(self._key, content, self._context(node, kind, target))
        return Backup(seq, node, kind, target, bool(existed), owner, grp, mode, content, bool(restored))

    def mark_restored(self, seq: int) -> None:
        with self._db:
            self._db.execute("UPDATE backups SET restored = 1 WHERE seq = ?", (seq,))

    # --- certificates this rotation issued ---------------------------------------------------

    def record_issued(self, node: str, target: str, serial: str, sha256: str) -> None:
        """Every certificate the rotation CA signs, before it is installed: a crash may leave one
        issued but replaced by a later attempt, and such a certificate must end up revoked."""
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO issued (serial, node, target, sha256, created) VALUES (?, ?, ?, ?, ?)",
                (serial, node, target, sha256, _now()),
            )

    def issued(self) -> list[tuple[str, str]]:
        """(serial, sha256) of every certificate the rotation issued."""
        return [(r[0], r[1]) for r in self._db.execute("SELECT serial, sha256 FROM issued ORDER BY created")]

    # --- secrets ---------------------------------------------------------------------------

    def put_secret(self, name: str, value: bytes) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO secrets (name, blob) VALUES (?, ?)",
                (name, seal(self._key, value, f"secret:{name}".encode())),
            )

    def secret(self, name: str) -> bytes | None:
        row = self._db.execute("SELECT blob FROM secrets WHERE name = ?", (name,)).fetchone()
        return unseal(self._key, row[0], f"secret:{name}".encode()) if row else None

    @staticmethod
    def _context(node: str, kind: str, target: str) -> bytes:
        return f"backup:{node}:{kind}:{target}".encode()
