"""What every rotation step is: a frozen value naming one change on one node, which can say what it
does, what must be backed up before it, the scripts it runs, and carry itself out idempotently."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from sweeper.errors import CommandFailed
from sweeper.model import Node
from sweeper.pki import rotation
from sweeper.rotate.journal import Backup, Journal
from sweeper.shell import RunTime
from sweeper.ssh import Session

if TYPE_CHECKING:
    from sweeper.rotate.plan import Plan


class Phase(enum.StrEnum):
    """Each phase finishes on every node before the next starts (DESIGN, "Rotation")."""

    PREFLIGHT = "preflight"
    TRUST = "trust"
    REISSUE = "reissue"
    PURGE = "purge"


class BackupKind(enum.StrEnum):
    """What a journal backup holds: a file, a VECS entry, a root published to VMware Directory,
    a row of a vCenter's database (VCDB), or one VMware Directory object (its LDIF; target = its DN)."""

    FILE = "file"
    VECS = "vecs"
    VMDIR = "vmdir"
    VCDB = "vcdb"
    LDAP = "ldap"


@dataclass(frozen=True, slots=True)
class FileBackup:
    """A file (as the node names it) to keep before the step changes it; `secret` seals it (keys)."""

    path: str
    secret: bool = False


@dataclass(frozen=True, slots=True)
class VecsBackup:
    """A VECS entry (certificate and key, sealed) to keep before the step changes it."""

    store: str
    alias: str


@dataclass(frozen=True, slots=True)
class KnownBackup:
    """A VECS entry whose content the plan already holds (a CRL read by the preflight sweep)."""

    store: str
    alias: str
    content: bytes


BackupTarget = FileBackup | VecsBackup | KnownBackup


@dataclass(frozen=True, slots=True)
class ScriptContext:
    """What a step's scripts are made from: the new CA, and the SSO password for dir-cli."""

    ca: rotation.CertificateAuthority
    sso_password: Callable[[Node], str]

    @classmethod
    def preview(cls, ca: rotation.CertificateAuthority) -> ScriptContext:
        """For `--show-scripts`: every secret a placeholder, never the real one."""
        return cls(ca, lambda node: RunTime(f"the SSO password of {node.name}"))


@dataclass(frozen=True, slots=True)
class StepContext(ScriptContext):
    """What a step needs to run besides its node's session: also the journal and the plan."""

    journal: Journal
    plan: Plan
    leaf_days: int = 730
    purge_serials: dict[str, list[str]] = dataclasses.field(default_factory=dict, compare=False, repr=False)
    """`serials_to_revoke` under "serials", worked out by the purge's first CRL step for every node's:
    the same for all of them (nothing is re-issued while the purge runs), and it reads the whole journal."""

    def backup_of(self, node: str, kind: BackupKind, target: str) -> Backup:
        """The journal's backup of a target: nothing is changed that was not backed up first."""
        item = self.journal.backup_of(node, kind, target)
        if item is None:
            raise CommandFailed(f"no backup of {target} in the journal; refusing to change it")
        return item


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One idempotent change on one node; `name` is unique within (node, phase) in the journal."""

    node: str
    kind: str
    """The step's tag in the journal and the report (each class fixes it with a Literal)."""
    PHASE: ClassVar[Phase]
    ALONGSIDE: ClassVar[bool] = False
    """May run at the same time as its node's neighbouring ALONGSIDE steps (each on its own channel):
    it changes only its own target and reads nothing they change."""

    @property
    def phase(self) -> Phase:
        return self.PHASE

    @property
    def uses_sso(self) -> bool:
        """Whether the step logs in to VMware Directory with the node's SSO password (dir-cli)."""
        return False

    @property
    def target(self) -> str:
        """What the step changes, as the operator knows it (a path, a VECS entry, a port)."""
        raise NotImplementedError

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.target}"

    def describe(self) -> str:
        """One line for the plan shown before `--yes`."""
        raise NotImplementedError

    @property
    def consequence(self) -> str | None:
        """What the step breaks on purpose, said again before confirmation (None: nothing)."""
        return None

    def backups(self) -> tuple[BackupTarget, ...]:
        """What the preflight must back up into the journal before any step changes anything."""
        return ()

    def journal_targets(self, ctx: ScriptContext, node: Node) -> tuple[tuple[BackupKind, str], ...]:
        """(kind, target) of every journal backup this step may record: all that rollback may
        touch for it (a target may end in `*` for names the node gives at run time)."""
        found: list[tuple[BackupKind, str]] = []
        for target in self.backups():
            if isinstance(target, FileBackup):
                found.append((BackupKind.FILE, node.path(target.path)))
            else:
                found.append((BackupKind.VECS, f"{target.store}/{target.alias}"))
        return tuple(found)

    def scripts(self, ctx: ScriptContext, node: Node) -> list[tuple[str, str]]:
        """(what, script body) of every change the step makes, built by the code `apply` runs,
        with values known only at run time shown as `<...>` (see `shell.RunTime`)."""
        return []

    async def apply(self, ctx: StepContext, session: Session) -> dict[str, Any]:
        """Make the change, read it back, and return the journal's detail for the step."""
        raise NotImplementedError

    def detail(self) -> dict[str, Any]:
        """The step's own fields, for the report's plan."""
        fields = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {k: v for k, v in fields.items() if k not in ("node", "kind")}
