"""The `sweeper.report/1` report model: every field of the JSON is declared once, here.

A run's report is made by reading the internal dataclasses (`model.Report` and what it
holds) into these models by attribute, and its file is their JSON dump (`encode`). Any
report file is read back (`load`, `parse`) into the same models, strictly, so renderers,
history, `diff`, `scan --baseline`, `rotate --from` and `verify-report` all see one typed
shape, and a malformed or foreign file is a one-line error (exit 2). The keys of DESIGN.md's
report contract are required; the later additions (`run.interrupted`, `node.identity`,
`node.duration`, `node.stores`, `certificate.sans`, `entry_type`, `key`) may be absent from
older reports. A rotation report adds `rotation` (outcome), `plan` (actions, waves, what the
purge removes), `steps` (the journal's rows) and `before`/`after` (each node with its
certificates, as in `nodes`). A `scan --shard K/N` report adds `run.shard` and, so that
`merge` can re-run the fleet-wide rules, each certificate's `der` and each node's `crls`;
a merged report adds `run.shards`. These are left out of every other report.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from sweeper import model
from sweeper.errors import CorruptInput, os_reason
from sweeper.model import NODE_STATUSES, Severity
from sweeper.report.jsontext import indented

SCHEMA: Final = "sweeper.report/1"
SEVERITIES = tuple(severity.label for severity in sorted(Severity, reverse=True))
"""Severity names, most severe first: the order of the summary's counts and of every table."""


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with a Z, second precision: how every time in a report is written. The year
    always has four digits: strftime writes year 1 (a certificate may claim it) as `1`, which no
    ISO reader takes back."""
    return moment.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat() + "Z"


def _severity(value: object) -> Severity:
    """A finding's severity: the enum in memory, its lower-case name in the JSON (nothing else)."""
    if isinstance(value, Severity):
        return value
    if isinstance(value, str) and value in SEVERITIES:
        return Severity[value.upper()]
    raise ValueError(f"expected one of {', '.join(SEVERITIES)}")


Time = Annotated[AwareDatetime, PlainSerializer(iso, return_type=str, when_used="json")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
"""A fingerprint: lower-case hex, no colons."""
Seconds = Annotated[float, PlainSerializer(lambda seconds: round(seconds, 3), return_type=float)]
SeverityLevel = Annotated[
    Severity, PlainValidator(_severity), PlainSerializer(lambda s: s.label, return_type=str, when_used="json")
]
NodeStatus = Literal[NODE_STATUSES]  # type: ignore[valid-type]
CARRY_DER: Final = "carry_der"
"""Validation context key: when true, a run's certificates and CRLs keep their DER (a shard's report)."""


def _der(value: object) -> bytes:
    """DER bytes in memory; standard base64 (no line breaks) in the JSON."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            pass
    raise ValueError("expected base64 of DER bytes")


Der = Annotated[
    bytes,
    PlainValidator(_der),
    PlainSerializer(lambda der: base64.b64encode(der).decode("ascii"), return_type=str, when_used="json"),
]


def _carries_der(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get(CARRY_DER))


_MISSING = object()


@cache
def _keys(model: type[BaseModel]) -> tuple[str, ...]:
    """The model's field names as its input spells them (by alias)."""
    return tuple(field.alias or name for name, field in model.model_fields.items())


def _fields(model: type[BaseModel], *sources: object, **named: object) -> dict[str, object]:
    """The model's fields read from several objects as one: named values first, then each object's
    attributes; a field none has is left to its default.

    How a dataclass whose shape differs a little from the report's (a certificate's facts held
    apart, a store's label) is read without naming its fields a second time. A dict, not an
    object read by `from_attributes`: a Python `__getattr__` per field of each of a big fleet's
    certificates cost three times the validation itself.
    """
    found: dict[str, object] = {}
    for key in _keys(model):
        if key in named:
            found[key] = named[key]
            continue
        for source in sources:
            value = getattr(source, key, _MISSING)
            if value is not _MISSING:
                found[key] = value
                break
    return found


class _Model(BaseModel):
    """Strict at the edge (frozen, unknown keys refused), and readable from the dataclasses' attributes."""

    model_config = ConfigDict(extra="forbid", frozen=True, from_attributes=True)


def _is_none(value: object) -> bool:
    return value is None


def _absent_when_none() -> Any:
    """A field left out of the JSON when None (a section or field only some runs have), not written
    as null. Per field, so the serializer skips it in pydantic's core: a per-model Python hook
    would run for each of a big fleet's thousands of certificates."""
    return Field(None, exclude_if=_is_none)


class Inventory(_Model):
    path: str
    sha256: Sha256


class Shard(_Model):
    """`run.shard` of a `scan --shard K/N` report: shard `index` (1..`count`), and each node's place."""

    index: int = Field(ge=1)
    count: int = Field(ge=1)
    positions: list[Annotated[int, Field(ge=0)]]
    """The inventory position (from 0) of each node of the report, in the order of `nodes`."""
    judging: list[str] = []
    """The judging options the shard was swept with (`--crl`, `--rule`, ... paths absolute), as
    arguments: what `merge` judges with when given none, and what every shard must share."""

    @model_validator(mode="after")
    def _index_within_count(self) -> Shard:
        if self.index > self.count:
            raise ValueError(f"shard index {self.index} is past the shard count {self.count}")
        return self


class ShardRef(_Model):
    """One of a merged report's `run.shards`: the shard report's run id, index, path and file SHA-256."""

    run_id: str
    index: int
    path: str
    sha256: Sha256


InputKind = Literal["crl", "ioc", "compromised-ca", "ca", "expected-roots", "baseline", "badkeys-blocklist"]


class Input(_Model):
    """An incident input file the run read, so an auditor can tell which CRL or IOC list it judged by."""

    kind: InputKind
    path: str
    sha256: Sha256


class Run(_Model):
    id: str
    kind: Literal["scan", "rotate", "rollback", "check"]
    started: Time
    finished: Time
    tool_version: str
    inventory: Inventory
    argv: list[str]
    interrupted: bool = False
    inputs: list[Input] = []
    rules: list[str] | None = None
    shard: Shard | None = _absent_when_none()
    shards: list[ShardRef] | None = _absent_when_none()


class Counts(_Model):
    """Findings per severity, most severe first (the order of `SEVERITIES`)."""

    critical: int
    high: int
    medium: int
    low: int
    info: int

    @classmethod
    def of(cls, severities: Iterable[Severity]) -> Counts:
        counted = Counter(severity.label for severity in severities)
        return cls.model_validate({label: counted[label] for label in SEVERITIES})


class Summary(_Model):
    nodes: int
    nodes_swept: int
    certificates: int
    findings: Counts

    @classmethod
    def of(cls, report: model.Report) -> Summary:
        """Counted from the run itself: a report's totals are never kept apart from what it lists."""
        return cls(
            nodes=len(report.nodes),
            nodes_swept=sum(node.swept for node in report.nodes),
            certificates=sum(len(node.certificates) for node in report.nodes),
            findings=Counts.of(item.severity for item in report.findings),
        )


class Store(_Model):
    store: str
    kind: str
    role: str
    status: str
    error: str | None = None
    certificates: int = 0

    @model_validator(mode="before")
    @classmethod
    def _from_result(cls, value: object) -> object:
        """A store read in memory is named by its label."""
        return _fields(cls, value, store=value.label) if isinstance(value, model.StoreResult) else value


class Key(_Model):
    path: str
    mode: str | None = None
    owner: str | None = None
    group: str | None = None
    spki_sha256: Sha256 | None = None
    matches: bool | None = None
    error: str | None = None


class Certificate(_Model):
    store: str
    entry: str
    role: str
    subject: str
    issuer: str
    serial: str
    not_before: Time
    not_after: Time
    sha256: Sha256
    spki_sha256: Sha256
    key_type: str
    key_bits: int
    signature_algorithm: str
    is_ca: bool
    self_signed: bool
    sans: list[str] = []
    entry_type: str | None = None
    key: Key | None = None
    der: Der | None = _absent_when_none()
    """The certificate itself, in a shard's report only: `merge` re-runs the fleet-wide rules on it."""

    @model_validator(mode="before")
    @classmethod
    def _from_record(cls, value: object, info: ValidationInfo) -> object:
        """A record keeps its certificate's facts apart; the report lists them beside where it was found."""
        if not isinstance(value, model.CertRecord):
            return value
        return _fields(cls, value.facts, value, der=value.der if _carries_der(info) else None)


class Crl(_Model):
    """A CRL found on a node (a shard's report only): where it was, and its DER."""

    source: str
    store: str | None
    entry: str | None
    der: Der


class Node(_Model):
    name: str
    host: str
    status: NodeStatus
    error: str | None
    attempts: int
    identity: str | None = None
    duration: Seconds = 0.0
    stores: list[Store] = []
    certificates: list[Certificate]
    crls: list[Crl] | None = _absent_when_none()
    """The CRLs found on the node, in a shard's report only (for `merge`)."""

    @model_validator(mode="before")
    @classmethod
    def _from_result(cls, value: object, info: ValidationInfo) -> object:
        """A node read in memory lists its CRLs only when the run keeps DER (a shard)."""
        if not isinstance(value, model.NodeResult):
            return value
        return _fields(cls, value, crls=value.crls if _carries_der(info) else None)


class Finding(_Model):
    rule: str
    severity: SeverityLevel
    node: str | None
    store: str | None
    entry: str | None
    sha256: Sha256 | None
    message: str
    evidence: dict[str, Any]


class PlanAction(_Model):
    node: str
    phase: str
    kind: str
    target: str
    description: str = ""
    """What the step does, as the plan shown before `--yes` said it."""
    detail: dict[str, Any] = {}


class Plan(_Model):
    actions: list[PlanAction]
    waves: list[list[str]]
    remove: dict[str, list[str]]
    max_failures: int


class Step(_Model):
    node: str
    phase: str
    step: str
    state: Literal["pending", "running", "done", "failed", "skipped"]
    attempts: int = 0
    detail: dict[str, Any] = {}
    error: str | None = None
    started: Time | None = None
    finished: Time | None = None


class NewRoot(_Model):
    sha256: Sha256
    subject: str


class Rotation(_Model):
    journal: str
    new_root: NewRoot
    complete: bool
    stopped_at: str | None = None
    failed: dict[str, str] = {}
    purged: bool = False
    forced: bool = False

    @classmethod
    def of(cls, outcome: object, journal: Path, new_root: object) -> Rotation:
        """The engine's outcome of a rotation, with its journal and the new root (`sha256`, `subject`)."""
        return cls.model_validate(_fields(cls, outcome, journal=str(journal), new_root=new_root))


class Report(_Model):
    schema_: Literal["sweeper.report/1"] = Field(SCHEMA, alias="schema")
    run: Run
    summary: Summary
    nodes: list[Node]
    findings: list[Finding]
    rotation: Rotation | None = _absent_when_none()
    plan: Plan | None = _absent_when_none()
    steps: list[Step] | None = _absent_when_none()
    before: list[Node] | None = _absent_when_none()
    after: list[Node] | None = _absent_when_none()

    @model_validator(mode="before")
    @classmethod
    def _from_run(cls, value: object) -> object:
        """A run in memory: its summary counted, and a rotation's `after` is its own verify sweep."""
        if not isinstance(value, model.Report):
            return value
        after = value.nodes if value.rotation is not None else None
        return _fields(cls, value, summary=Summary.of(value), after=after)


def checked(report: model.Report | Report) -> Report:
    """A run in memory read into the report model, checked as strictly as a file (a report model as is)."""
    carry_der = isinstance(report, model.Report) and report.run.shard is not None
    return Report.model_validate(report, context={CARRY_DER: carry_der})


def encode(report: model.Report | Report) -> bytes:
    """A report file's exact bytes, which its signature covers: JSON indented by two, one final newline."""
    document = checked(report).model_dump(mode="json", by_alias=True)
    return indented(document).encode() + b"\n"


def parse(document: bytes | str | object, source: object) -> Report:
    """A report from its file's bytes (or its JSON already decoded), checked strictly.

    :raises CorruptInput: naming `source`: not JSON, not a `sweeper.report/1` report, or the
        first problem found (one line).
    """
    if isinstance(document, bytes | bytearray | str):
        try:
            document = json.loads(document)
        except (ValueError, RecursionError) as exc:
            raise CorruptInput(source, f"not JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        found = document.get("schema") if isinstance(document, dict) else type(document).__name__
        raise CorruptInput(source, f"not a {SCHEMA} report (schema: {_line(repr(found))})")
    try:
        return Report.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(_line(str(part)) for part in first["loc"])
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        problem = f"{where or '(top level)'}: {first['msg']}{more}"
        raise CorruptInput(source, f"not a valid {SCHEMA} report: {problem}") from None


def load(path: Path) -> Report:
    """Read and check a report file.

    :raises CorruptInput: unreadable, not JSON, or not a `sweeper.report/1` report (one line).
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CorruptInput(path, f"cannot read report: {os_reason(exc)}") from None
    return parse(raw, path)


def _line(text: str, limit: int = 80) -> str:
    """Text from the file shown as one short line: its keys and values may carry anything."""
    text = text if text.isprintable() else repr(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
