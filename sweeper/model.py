"""Plain frozen values that flow one way: inventory -> ssh -> stores -> records -> detect -> report."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sweeper.pki.facts import CertFacts

if TYPE_CHECKING:
    from sweeper.report import schema


class Severity(enum.IntEnum):
    """Ordered so that `finding.severity >= Severity.HIGH` reads naturally."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {text!r} (expected one of: {names})") from None


class StoreKind(enum.StrEnum):
    """How a store holds its certificates: a leaf file (+ key), a bundle, a folder, or VECS."""

    PEM = "pem"
    BUNDLE = "bundle"
    DIR = "dir"
    VECS = "vecs"


class Role(enum.StrEnum):
    """What a store is for: a node's own identity, trust anchors, or revocation lists."""

    LEAF = "leaf"
    TRUST = "trust"
    CRL = "crl"


class Profile(enum.StrEnum):
    """The kind of machine a node is; `sweeper.platforms` knows what each one holds and runs."""

    VCSA = "vcsa"
    ESXI = "esxi"
    LINUX = "linux"


NODE_STATUSES = ("ok", "unreachable", "auth-failed", "host-key-unknown", "host-key-mismatch", "error")
VECS_LABEL_PREFIX = "vecs:"


def vecs_label(store: str) -> str:
    """A VECS store's name in reports: `vecs:NAME`."""
    return VECS_LABEL_PREFIX + store


def vecs_store_of(label: str) -> str | None:
    """The VECS store name of a report label (`vecs:NAME` -> NAME), None for file stores."""
    return label.removeprefix(VECS_LABEL_PREFIX) if label.startswith(VECS_LABEL_PREFIX) else None


@dataclass(frozen=True, slots=True)
class StoreSpec:
    """Where certificates live on a node, as the inventory (or the profile) says."""

    kind: StoreKind
    role: Role
    cert: str | None = None
    key: str | None = None
    path: str | None = None
    store: str | None = None

    def __post_init__(self) -> None:
        # Accept the inventory's words ("pem", "leaf") and keep the enums, so `is` comparisons hold.
        object.__setattr__(self, "kind", StoreKind(self.kind))
        object.__setattr__(self, "role", Role(self.role))

    @property
    def label(self) -> str:
        """The store's name in reports: its path, or `vecs:NAME`."""
        if self.kind is StoreKind.VECS:
            return vecs_label(self.store) if self.store else "vecs"
        return (self.cert if self.kind is StoreKind.PEM else self.path) or ""


@dataclass(frozen=True, slots=True)
class Node:
    """One inventory node with every default applied; built once, shared read-only."""

    name: str
    host: str
    profile: Profile = Profile.LINUX
    port: int | None = None
    user: str | None = None
    tags: tuple[str, ...] = ()
    root: str = "/"
    known_hosts: str | None = "~/.ssh/known_hosts"
    accept_new: bool = False
    client_keys: tuple[str, ...] = ()
    passphrase_env: str | None = None
    password_env: str | None = None
    agent: bool = False
    ssh_config: str | None = None
    connect_timeout: float = 10.0
    deadline: float = 300.0
    become: str | None = None
    become_password_env: str | None = None
    jump: str | None = None
    sso_user: str | None = None
    sso_password_env: str | None = None
    restart: str | None = None
    """Restarts the services serving the node's certificates (the platform's unless the inventory says)."""
    persist: str | None = None
    """Makes file changes survive a reboot (ESXi: /bin/auto-backup.sh); runs after every change."""
    tls_port: int | None = None
    stores: tuple[StoreSpec, ...] = ()
    names: tuple[str, ...] = ()
    """Names besides `host` a certificate of this node may carry (the inventory's `names`)."""
    allow_names: tuple[str, ...] = ()
    """fnmatch patterns of further names it may carry, unless another node holds them."""

    def path(self, node_path: str) -> str:
        """The real path of `node_path` on the machine, under the node's `root` prefix."""
        if self.root in ("", "/"):
            return node_path
        return self.root.rstrip("/") + "/" + node_path.lstrip("/")


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What we learned about a leaf's private key without ever keeping the key itself."""

    path: str
    mode: str | None = None
    owner: str | None = None
    group: str | None = None
    spki_sha256: str | None = None
    matches: bool | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CertRecord:
    """One certificate as found in one store entry on one node: where it sits, and its facts."""

    node: str
    store: str
    entry: str
    role: Role
    facts: CertFacts
    entry_type: str | None = None
    key: KeyInfo | None = None
    der: bytes = field(default=b"", repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class CrlRecord:
    """A CRL found on a node or given on the command line; verified later by detect."""

    source: str
    der: bytes = field(repr=False)
    node: str | None = None
    store: str | None = None
    entry: str | None = None


@dataclass(frozen=True, slots=True)
class StoreResult:
    """The outcome of reading one store: its records, or why it could not be read."""

    label: str
    kind: StoreKind
    role: Role
    status: str = "ok"
    error: str | None = None
    certificates: int = 0


@dataclass(frozen=True, slots=True)
class NodeResult:
    """Everything one node gave us, or the status saying why it gave nothing."""

    name: str
    host: str
    status: str
    error: str | None = None
    attempts: int = 0
    certificates: tuple[CertRecord, ...] = ()
    crls: tuple[CrlRecord, ...] = ()
    stores: tuple[StoreResult, ...] = ()
    identity: str | None = None
    duration: float = 0.0

    @property
    def swept(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong, with the evidence an investigator needs to act on it."""

    rule: str
    severity: Severity
    node: str | None
    store: str | None
    entry: str | None
    sha256: str | None
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InventoryRef:
    """The inventory a run read: its path as given, and the SHA-256 of its bytes."""

    path: str
    sha256: str


@dataclass(frozen=True, slots=True)
class ShardInfo:
    """Which of a `scan --shard` run's shards this is (1-based), and its nodes' places in the inventory."""

    index: int
    count: int
    positions: tuple[int, ...]
    """The inventory position (from 0) of each of this report's nodes, in the order of its `nodes`."""
    judging: tuple[str, ...] = ()
    """The options the shard was judged with (paths absolute), as a command line: `merge`'s default."""


@dataclass(frozen=True, slots=True)
class ShardRef:
    """One shard report a merged report was made from: its run, its shard index, its file's SHA-256."""

    run_id: str
    index: int
    path: str
    sha256: str


@dataclass(frozen=True, slots=True)
class InputRef:
    """One incident input a run read (--crl, --ioc, ...): its kind, its path, the SHA-256 of its bytes."""

    kind: str
    path: str
    sha256: str


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Who ran what, when, against which inventory, with which incident inputs and rules."""

    id: str
    kind: str
    started: datetime
    finished: datetime
    tool_version: str
    inventory: InventoryRef
    argv: tuple[str, ...]
    interrupted: bool = False
    inputs: tuple[InputRef, ...] = ()
    rules: tuple[str, ...] | None = None
    """The rules that ran; None where unknown (an older report)."""
    shard: ShardInfo | None = None
    """Set on a `scan --shard K/N` run; its report then carries what `merge` needs (DER of each
    certificate and CRL)."""
    shards: tuple[ShardRef, ...] | None = None
    """Set on a `merge` run: the shard reports it was made from."""


@dataclass(frozen=True, slots=True)
class Report:
    """The result of a run, from which its canonical JSON (report/schema.py) is made.

    A rotation's report is its verify sweep plus the rotation's own sections, already in
    their report shape: the outcome, the plan, the journal's steps and the fleet before
    (its `after` is this report's `nodes`).
    """

    run: RunInfo
    nodes: tuple[NodeResult, ...]
    findings: tuple[Finding, ...]
    rotation: schema.Rotation | None = None
    plan: schema.Plan | None = None
    steps: tuple[schema.Step, ...] | None = None
    before: tuple[schema.Node, ...] | None = None

    @property
    def incomplete(self) -> bool:
        return self.run.interrupted or any(not n.swept for n in self.nodes)

    def worst_severity(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)
