"""The rotation journal: SQLite (WAL, synchronous=FULL), a row per node x step, sealed backups.

Intent is written (and committed, durably) before any remote change and the outcome after it,
with a compare-and-swap on the step's state so that a stale or concurrent run stops loudly.
An outcome is not committed on its own: it goes in with the next commit (the next step's intent,
a backup, the engine's commit when the node ends its phase, or closing), one fsync for both; a
crash before that leaves the step `running`, and resume does it again, as after a crash inside
the step (steps are idempotent).

Backups keep the *first* content seen for a target (the state before sweeper touched it),
so re-running an interrupted step can never overwrite the original with a half-changed one.

What must be durable before a change (a step's intent, a backup, a certificate about to be
installed) is awaited: `begin`, `backup` and `record_issued` return once it is on disk, and every
node that writes in the same turn of the event loop shares that commit (group commit). A rotation
of 1,000 nodes journals some 20,000 rows; one fsync each held the event loop, and every node's
SSH traffic with it, for the disk's sync time each (0.2-2 ms on SSDs, far more on network disks).

Every row carries an HMAC under a key derived from the journal passphrase: the file can be
read by whoever reaches it, but a row added, altered or moved (a backup pointed at
`authorized_keys`, a restart command rewritten) is refused when the journal is opened,
before anything changes. The only module that imports sqlite3 for rotation.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sweeper.atomic import not_writable
from sweeper.errors import BadInput, SweeperError, os_reason
from sweeper.pki.vault import VaultError, authentic, authenticate, derive_key, mac_key, new_salt, seal, unseal

DB_NAME = "journal.sqlite"
VERIFIER = b"sweeper-journal/1"
FORMAT = 3
"""The journal's layout (3: every row authenticated; steps as a tagged union); `open` refuses others."""
UNAUTHENTICATED_META = ("salt", "verifier")
"""Rows that authenticate themselves: another salt derives another key, the verifier is sealed."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL, mac TEXT);
CREATE TABLE IF NOT EXISTS steps (
    node TEXT NOT NULL, phase TEXT NOT NULL, step TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed', 'skipped')),
    attempts INTEGER NOT NULL DEFAULT 0, started TEXT, finished TEXT, detail TEXT, error TEXT,
    mac TEXT NOT NULL, PRIMARY KEY (node, phase, step));
CREATE TABLE IF NOT EXISTS backups (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, node TEXT NOT NULL, kind TEXT NOT NULL,
    target TEXT NOT NULL, existed INTEGER NOT NULL, owner TEXT, grp TEXT, mode TEXT,
    content BLOB, sealed INTEGER NOT NULL, restored INTEGER NOT NULL DEFAULT 0, mac TEXT NOT NULL,
    UNIQUE (node, kind, target));
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, blob BLOB NOT NULL, mac TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS issued (
    serial TEXT PRIMARY KEY, node TEXT NOT NULL, target TEXT NOT NULL, sha256 TEXT NOT NULL,
    created TEXT NOT NULL, mac TEXT NOT NULL);
"""
STEP_COLUMNS = ("node", "phase", "step", "state", "attempts", "started", "finished", "detail", "error")
BACKUP_COLUMNS = (
    "seq", "node", "kind", "target", "existed", "owner", "grp", "mode", "content", "sealed", "restored"
)  # fmt: skip
ISSUED_COLUMNS = ("serial", "node", "target", "sha256", "created")
TABLES = {
    "meta": ("key", "value"),
    "steps": STEP_COLUMNS,
    "backups": BACKUP_COLUMNS,
    "secrets": ("name", "blob"),
    "issued": ISSUED_COLUMNS,
}


class JournalError(SweeperError):
    """The journal is missing, locked by another run, altered, or not in the state this action needs."""


@dataclass(frozen=True, slots=True)
class Step:
    node: str
    phase: str
    step: str
    state: str
    attempts: int
    detail: dict[str, Any]
    error: str | None
    started: str | None = None
    finished: str | None = None


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


def _not_written(directory: Path, exc: Exception) -> JournalError:
    """The one line for a journal the disk refused (full, gone, read-only)."""
    return JournalError(f"{directory}: could not write the journal ({exc})")


def _record(table: str, values: Sequence[object]) -> bytes:
    """The exact bytes a row's MAC covers: its table and every column, bytes as base64."""

    def plain(value: object) -> object:
        return "b64:" + base64.b64encode(value).decode() if isinstance(value, bytes) else value

    return json.dumps([table, *map(plain, values)], separators=(",", ":")).encode()


class Journal:
    """One rotation's durable record. Open with `create()` or `open()`; close when done."""

    def __init__(self, directory: Path, db: sqlite3.Connection, key: bytes, lock: int | None = None) -> None:
        self.directory = directory
        self._db = db
        self._key = key
        self._mac_key = mac_key(key)
        self._lock = self._take_lock(directory) if lock is None else lock
        self._waiting: list[asyncio.Future[None]] = []
        """Who waits for what they wrote to be on disk: all of them go on after the next commit."""

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
        """A new journal in `directory` (made 0700); refuses to reuse one that holds a run. One
        that cannot be written whole (a full disk) is removed again: nothing has changed yet."""
        cls.check_new(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(directory, 0o700)
        except OSError as exc:
            raise JournalError(f"{directory}: cannot make the journal folder ({os_reason(exc)})") from None
        lock = cls._take_lock(directory)  # before anything is made: a second sweeper stops here
        db: sqlite3.Connection | None = None
        try:
            cls.check_new(directory)  # again, under the lock
            db = cls._connect(directory)
            salt = new_salt()
            key = derive_key(passphrase, salt)
            with db:
                db.executescript(SCHEMA)
                db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    (("salt", salt.hex()), ("verifier", seal(key, VERIFIER, b"verifier").hex())),
                )
            os.chmod(directory / DB_NAME, 0o600)
            journal = cls(directory, db, key, lock)
            rows = {"format": FORMAT, "created": _now(), **meta}
            for name, value in rows.items():
                journal.set_meta(name, value)
        except (sqlite3.Error, OSError, JournalError) as exc:
            if db is not None:  # made under our lock: ours to take away again
                db.close()
                for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm"):
                    (directory / name).unlink(missing_ok=True)
            os.close(lock)
            if isinstance(exc, JournalError):
                raise
            raise _not_written(directory, exc) from None
        return journal

    @staticmethod
    def check_new(directory: Path) -> None:
        """Fail before a rotation sweeps its fleet, not after, when its journal cannot be made in
        `directory`: one is there already, or the folder cannot be written. Creates nothing."""
        if (directory / DB_NAME).exists():
            raise JournalError(
                f"{directory}: already holds a rotation journal; use `sweeper resume {directory}`"
            )
        if (where := not_writable(directory)) is not None:
            raise JournalError(
                f"{directory}: cannot make the journal there ({where} is not a writable folder)"
            )

    @staticmethod
    def must_exist(directory: Path) -> None:
        """Say a folder holds no journal before anyone is asked for its passphrase."""
        if not (directory / DB_NAME).is_file():
            raise JournalError(f"{directory}: no rotation journal here")

    @classmethod
    def open(cls, directory: Path, passphrase: str) -> Journal:
        """Open a journal: its format, the passphrase, then every row's authenticity, or a one-line error."""
        cls.must_exist(directory)
        db = cls._connect(directory)
        try:
            found = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        except sqlite3.DatabaseError as exc:
            db.close()
            raise JournalError(f"{directory}: not a sweeper journal ({exc})") from None
        if found is None or found[0] != json.dumps(FORMAT):
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
        journal = cls(directory, db, key)
        try:
            journal._verify_all()
        except BaseException:
            journal.close()
            raise
        return journal

    def _verify_all(self) -> None:
        """Every row of every table must carry its MAC: refuse a journal someone edited."""
        for table, columns in TABLES.items():
            rows = self._db.execute(f"SELECT {', '.join(columns)}, mac FROM {table}")
            for *values, tag in rows:
                if table == "meta" and values[0] in UNAUTHENTICATED_META:
                    continue
                if tag is None or not authentic(self._mac_key, _record(table, values), tag):
                    raise JournalError(
                        f"{self.directory}: journal.sqlite was altered outside sweeper ({table} row "
                        f"{values[0]!r} fails its check); refusing to use it"
                    )

    def _tag(self, table: str, values: Sequence[object]) -> str:
        return authenticate(self._mac_key, _record(table, values))

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
        self.commit()
        self._db.close()
        os.close(self._lock)

    def commit(self) -> None:
        """Make everything written so far durable (outcomes otherwise wait for the next intent), and
        let whoever waits for that go on.

        :raises JournalError: the disk refused it (full, gone); whoever waited gets the same error.
        """
        try:
            if self._db.in_transaction:
                self._db.commit()
        except sqlite3.Error as exc:
            error = _not_written(self.directory, exc)
            self._release(error)
            raise error from None
        self._release(None)

    async def durable(self) -> None:
        """Return once everything written so far is on disk. The first to ask in a turn of the event
        loop schedules one commit for the turn's end; whoever writes and asks meanwhile shares it."""
        if not self._db.in_transaction:
            return
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiting.append(waiter)
        if len(self._waiting) == 1:
            loop.call_soon(self._group_commit)
        await waiter

    def _group_commit(self) -> None:
        with contextlib.suppress(JournalError):  # commit() handed it to every waiter
            self.commit()

    def _release(self, error: JournalError | None) -> None:
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            if waiter.done():  # its node was cancelled meanwhile
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    def _write(
        self, sql: str, values: Sequence[object] | Sequence[Sequence[object]], many: bool = False
    ) -> sqlite3.Cursor:
        """One statement into the open transaction (begun if none), for the next commit to make durable.

        SQLite may answer an error by rolling the whole transaction back, others' writes with it
        (full disk, I/O error): then whoever waits for those writes is told, never let go on."""
        if not self._db.in_transaction:
            self._db.execute("BEGIN")
        try:
            return self._db.executemany(sql, values) if many else self._db.execute(sql, values)
        except sqlite3.Error as exc:
            error = _not_written(self.directory, exc)
            if not self._db.in_transaction:
                self._release(error)
            raise error from None

    # --- metadata --------------------------------------------------------------------------

    def meta(self, key: str) -> Any:
        return json.loads(self._meta_raw(self._db, key))

    def set_meta(self, key: str, value: Any) -> None:
        text = json.dumps(value)
        self._write(
            "INSERT OR REPLACE INTO meta (key, value, mac) VALUES (?, ?, ?)",
            (key, text, self._tag("meta", (key, text))),
        )
        self.commit()

    # --- steps -----------------------------------------------------------------------------

    def plan_steps(self, steps: list[tuple[str, str, str]]) -> None:
        """Record every (node, phase, step) of the plan as pending; existing rows are kept."""
        rows = [(*row, self._tag("steps", (*row, "pending", 0, None, None, None, None))) for row in steps]
        self._write(
            "INSERT OR IGNORE INTO steps (node, phase, step, state, mac) VALUES (?, ?, ?, 'pending', ?)",
            rows,
            many=True,
        )
        self.commit()

    async def begin(self, node: str, phase: str, step: str) -> bool:
        """Mark a step running (intent, before any change), on disk when this returns; False if it
        is already done."""
        current = self._step_row(node, phase, step)
        if current is None:
            raise JournalError(f"journal: step {node}/{phase}/{step} is not planned")
        if current.state in ("done", "skipped"):
            return False
        self._move(current, "running", attempts=current.attempts + 1, started=_now(), error=None)
        await self.durable()
        return True

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
        current = self._step_row(node, phase, step)
        if current is None or current.state not in from_states:
            raise JournalError(
                f"journal: step {node}/{phase}/{step} changed under us "
                f"(now {current.state if current else 'gone'}); is another run using this journal?"
            )
        self._move(current, state, finished=_now(), detail=detail or {}, error=error)

    def _move(self, current: Step, state: str, **changes: Any) -> None:
        """Compare-and-swap a step from its current state to `state`, its MAC with it, into the open
        transaction (the caller awaits `durable` where it must be on disk)."""
        values = {
            "attempts": current.attempts,
            "started": current.started,
            "finished": current.finished,
            "detail": json.dumps(current.detail) if current.detail else None,
            "error": current.error,
        }
        values.update({k: json.dumps(v) if k == "detail" else v for k, v in changes.items()})
        row = (current.node, current.phase, current.step, state, *values.values())
        cur = self._write(
            "UPDATE steps SET state = ?, attempts = ?, started = ?, finished = ?, detail = ?, "
            "error = ?, mac = ? WHERE node = ? AND phase = ? AND step = ? AND state = ?",
            (state, *values.values(), self._tag("steps", row), *row[:3], current.state),
        )
        if cur.rowcount != 1:
            self.commit()  # what waited goes in: it was written before this
            raise JournalError(
                f"journal: step {current.node}/{current.phase}/{current.step} changed under us; "
                "is another run using this journal?"
            )

    def _step_row(self, node: str, phase: str, step: str) -> Step | None:
        row = self._db.execute(
            f"SELECT {', '.join(STEP_COLUMNS)}, mac FROM steps WHERE node = ? AND phase = ? AND step = ?",
            (node, phase, step),
        ).fetchone()
        return self._step_from(row) if row else None

    def _step_from(self, row: tuple) -> Step:
        *values, tag = row
        if not authentic(self._mac_key, _record("steps", values), tag):
            raise JournalError(f"{self.directory}: a step of journal.sqlite was altered outside sweeper")
        node, phase, step, state, attempts, started, finished, detail, error = values
        return Step(node, phase, step, state, attempts, json.loads(detail or "{}"), error, started, finished)

    def steps(self, phase: str | None = None, node: str | None = None) -> list[Step]:
        """The steps, of one phase and of one node if given: asking for one node's reads (and
        authenticates) its rows alone, so that a per-node question stays cheap on a big fleet."""
        where = {name: value for name, value in (("phase", phase), ("node", node)) if value}
        query = f"SELECT {', '.join(STEP_COLUMNS)}, mac FROM steps"
        if where:
            query += " WHERE " + " AND ".join(f"{name} = ?" for name in where)
        rows = self._db.execute(query + " ORDER BY rowid", tuple(where.values()))
        return [self._step_from(r) for r in rows]

    # --- backups ---------------------------------------------------------------------------

    async def backup(
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
        """Keep the first state seen of `target`, on disk when this returns; True if this call
        recorded it."""
        blob = content
        if content is not None and secret:
            blob = seal(self._key, content, self._context(node, kind, target))
        sealed = int(secret and content is not None)
        seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM backups").fetchone()[0]
        row = (seq, node, kind, target, int(existed), owner, group, mode, blob, sealed, 0)
        cur = self._write(
            f"INSERT OR IGNORE INTO backups ({', '.join(BACKUP_COLUMNS)}, mac) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*row, self._tag("backups", row)),
        )
        recorded = cur.rowcount == 1
        await self.durable()
        return recorded

    def backups(self, node: str | None = None) -> Iterator[Backup]:
        """Every backup, oldest first (rollback walks them in reverse)."""
        query = f"SELECT {', '.join(BACKUP_COLUMNS)}, mac FROM backups"
        rows = self._db.execute(
            query + (" WHERE node = ?" if node else "") + " ORDER BY seq", (node,) if node else ()
        ).fetchall()
        for row in rows:
            yield self._backup_from(row)

    def backup_of(self, node: str, kind: str, target: str) -> Backup | None:
        """The backup of one target (only its secret is unsealed), or None."""
        row = self._db.execute(
            f"SELECT {', '.join(BACKUP_COLUMNS)}, mac FROM backups "
            "WHERE node = ? AND kind = ? AND target = ?",
            (node, kind, target),
        ).fetchone()
        return self._backup_from(row) if row else None

    def _backup_from(self, row: tuple) -> Backup:
        *values, tag = row
        if not authentic(self._mac_key, _record("backups", values), tag):
            raise JournalError(f"{self.directory}: a backup in journal.sqlite was altered outside sweeper")
        seq, node, kind, target, existed, owner, grp, mode, content, sealed, restored = values
        if sealed:
            content = unseal(self._key, content, self._context(node, kind, target))
        return Backup(seq, node, kind, target, bool(existed), owner, grp, mode, content, bool(restored))

    async def mark_restored(self, seq: int) -> None:
        """On disk when this returns, in one commit with every node's that marks one in the same
        turn (rollbacks run side by side)."""
        row = self._db.execute(
            f"SELECT {', '.join(BACKUP_COLUMNS)} FROM backups WHERE seq = ?", (seq,)
        ).fetchone()
        restored = (*row[:-1], 1)
        self._write(
            "UPDATE backups SET restored = 1, mac = ? WHERE seq = ?", (self._tag("backups", restored), seq)
        )
        await self.durable()

    # --- certificates this rotation issued ---------------------------------------------------

    async def record_issued(self, node: str, target: str, serial: str, sha256: str) -> None:
        """Every certificate the rotation CA signs, on disk before it is installed: a crash may leave
        one issued but replaced by a later attempt, and such a certificate must end up revoked."""
        row = (serial, node, target, sha256, _now())
        self._write(
            f"INSERT OR IGNORE INTO issued ({', '.join(ISSUED_COLUMNS)}, mac) VALUES (?, ?, ?, ?, ?, ?)",
            (*row, self._tag("issued", row)),
        )
        await self.durable()

    def issued(self) -> list[tuple[str, str]]:
        """(serial, sha256) of every certificate the rotation issued."""
        query = f"SELECT {', '.join(ISSUED_COLUMNS)}, mac FROM issued ORDER BY created"
        found = []
        for *values, tag in self._db.execute(query):
            if not authentic(self._mac_key, _record("issued", values), tag):
                raise JournalError(f"{self.directory}: an issued certificate in journal.sqlite was altered")
            found.append((values[0], values[3]))
        return found

    # --- secrets ---------------------------------------------------------------------------

    def put_secret(self, name: str, value: bytes) -> None:
        blob = seal(self._key, value, f"secret:{name}".encode())
        self._write(
            "INSERT OR REPLACE INTO secrets (name, blob, mac) VALUES (?, ?, ?)",
            (name, blob, self._tag("secrets", (name, blob))),
        )
        self.commit()

    def secret(self, name: str) -> bytes | None:
        row = self._db.execute("SELECT blob FROM secrets WHERE name = ?", (name,)).fetchone()
        return unseal(self._key, row[0], f"secret:{name}".encode()) if row else None

    @staticmethod
    def _context(node: str, kind: str, target: str) -> bytes:
        return f"backup:{node}:{kind}:{target}".encode()
