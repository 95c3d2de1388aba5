"""The `sweeper.report/1` JSON at the edge: load a report file and check it strictly before rendering.

Renderers take the checked JSON document (a plain dict), never the in-memory model, so a
report from any past run renders the same way as a fresh one. A rotation report adds
`rotation` (outcome), `plan` (actions, waves, what the purge removes), `steps` (the journal's
rows) and `before`/`after` (each node with its certificates, as in `nodes`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from sweeper.errors import CorruptInput
from sweeper.model import NODE_STATUSES, Severity
from sweeper.report.json_report import SCHEMA

ReportDoc = dict[str, Any]
"""A `sweeper.report/1` document exactly as its JSON holds it."""

SEVERITIES = tuple(severity.label for severity in sorted(Severity, reverse=True))
"""Severity names, most severe first: the order of the summary's counts and of every table."""
SeverityName = Literal["critical", "high", "medium", "low", "info"]
NodeStatus = Literal[NODE_STATUSES]  # type: ignore[valid-type]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Inventory(_Strict):
    path: str
    sha256: str


class _Run(_Strict):
    id: str
    kind: Literal["scan", "rotate"]
    started: AwareDatetime
    finished: AwareDatetime
    tool_version: str
    inventory: _Inventory
    argv: list[str]
    interrupted: bool = False


class _Counts(_Strict):
    critical: int
    high: int
    medium: int
    low: int
    info: int


class _Summary(_Strict):
    nodes: int
    nodes_swept: int
    certificates: int
    findings: _Counts


class _Store(_Strict):
    store: str
    kind: str
    role: str
    status: str
    error: str | None = None
    certificates: int = 0


class _Key(_Strict):
    path: str
    mode: str | None = None
    owner: str | None = None
    group: str | None = None
    spki_sha256: str | None = None
    matches: bool | None = None
    error: str | None = None


class _Certificate(_Strict):
    store: str
    entry: str
    role: str
    subject: str
    issuer: str
    serial: str
    not_before: AwareDatetime
    not_after: AwareDatetime
    sha256: str
    spki_sha256: str
    key_type: str
    key_bits: int
    signature_algorithm: str
    is_ca: bool
    self_signed: bool
    sans: list[str] = []
    entry_type: str | None = None
    key: _Key | None = None


class _Node(_Strict):
    name: str
    host: str
    status: NodeStatus
    error: str | None = None
    attempts: int = 0
    identity: str | None = None
    duration: float = 0.0
    stores: list[_Store] = []
    certificates: list[_Certificate] = []


class _Finding(_Strict):
    rule: str
    severity: SeverityName
    node: str | None = None
    store: str | None = None
    entry: str | None = None
    sha256: str | None = None
    message: str
    evidence: dict[str, Any] = {}


class _Action(_Strict):
    node: str
    phase: str
    kind: str
    target: str
    detail: dict[str, Any] = {}


class _Plan(_Strict):
    actions: list[_Action]
    waves: list[list[str]]
    remove: dict[str, list[str]]
    max_failures: int


class _Step(_Strict):
    node: str
    phase: str
    step: str
    state: Literal["pending", "running", "done", "failed", "skipped"]
    attempts: int = 0
    detail: dict[str, Any] = {}
    error: str | None = None


class _NewRoot(_Strict):
    sha256: str
    subject: str


class _Rotation(_Strict):
    journal: str
    new_root: _NewRoot
    complete: bool
    stopped_at: str | None = None
    failed: dict[str, str] = {}
    purged: bool = False
    forced: bool = False


class _Report(_Strict):
    schema_: Literal["sweeper.report/1"] = Field(alias="schema")
    run: _Run
    summary: _Summary
    nodes: list[_Node]
    findings: list[_Finding]
    rotation: _Rotation | None = None
    plan: _Plan | None = None
    steps: list[_Step] | None = None
    before: list[_Node] | None = None
    after: list[_Node] | None = None


def check(doc: object, source: object) -> ReportDoc:
    """Return `doc` unchanged if it is a `sweeper.report/1` document, else raise a one-line error.

    :raises CorruptInput: naming `source` and the first problem found.
    """
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise CorruptInput(source, f"not a {SCHEMA} report (schema: {found!r})")
    try:
        _Report.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise CorruptInput(source, f"not a valid {SCHEMA} report: {where}: {first['msg']}{more}") from None
    return doc


def load(path: Path) -> ReportDoc:
    """Read and check a report file.

    :raises CorruptInput: unreadable, not JSON, or not a `sweeper.report/1` report.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CorruptInput(path, f"cannot read report: {exc.strerror or exc}") from None
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise CorruptInput(path, f"not JSON ({exc})") from None
    return check(doc, path)
