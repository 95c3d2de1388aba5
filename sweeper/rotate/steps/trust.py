"""Trust phase: the new root added to every trust store, before any leaf changes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from sweeper.errors import CommandFailed
from sweeper.model import Node, StoreKind
from sweeper.platforms.vcsa import TRUSTED_ROOTS
from sweeper.rotate import node as on_node
from sweeper.rotate import remote
from sweeper.rotate.remote import FileState
from sweeper.rotate.steps.base import (
    BackupKind,
    BackupTarget,
    FileBackup,
    Phase,
    ScriptContext,
    Step,
    StepContext,
)
from sweeper.shell import RunTime
from sweeper.ssh import Session

UNREAD = FileState(
    RunTime("the bundle as read at run time"), RunTime("owner"), RunTime("group"), RunTime("mode")
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AddAnchor(Step):
    """The new root appended to a bundle (atomically, owner and mode kept) or written into a folder."""

    kind: Literal["add-anchor"] = "add-anchor"
    PHASE: ClassVar[Phase] = Phase.TRUST
    store: str
    store_kind: StoreKind

    @property
    def target(self) -> str:
        return self.store

    def describe(self) -> str:
        return f"add the new root to {self.store}"

    def backups(self) -> tuple[BackupTarget, ...]:
        return (FileBackup(self.store),) if self.store_kind is StoreKind.BUNDLE else ()

    def _path(self, ctx: ScriptContext, node: Node) -> str:
        """The file that holds the new root: the bundle, or our own file in the folder."""
        if self.store_kind is StoreKind.BUNDLE:
            return node.path(self.store)
        return node.path(f"{self.store.rstrip('/')}/sweeper-root-{ctx.ca.sha256[:16]}.pem")

    def _write(self, ctx: ScriptContext, node: Node, current: FileState | None) -> str:
        path = self._path(ctx, node)
        if self.store_kind is not StoreKind.BUNDLE:
            return remote.put_file(path, ctx.ca.cert_pem, None, None, "0644")
        if current is None:
            return remote.put_file(path, ctx.ca.cert_pem, None, None, "0644")
        if isinstance(current.content, RunTime):
            joined: bytes = RunTime(f"{self.store} as read at run time, with the new root appended")
        else:
            joined = current.content + (b"" if current.content.endswith(b"\n") else b"\n") + ctx.ca.cert_pem
        return remote.put_file(path, joined, current.owner, current.group, current.mode)

    def journal_targets(self, ctx: ScriptContext, node: Node) -> tuple[tuple[BackupKind, str], ...]:
        return ((BackupKind.FILE, self._path(ctx, node)),)

    def scripts(self, ctx: ScriptContext, node: Node) -> list[tuple[str, str]]:
        current = UNREAD if self.store_kind is StoreKind.BUNDLE else None
        return [(f"write {self._path(ctx, node)}", self._write(ctx, node, current))]

    async def apply(self, ctx: StepContext, session: Session) -> dict[str, Any]:
        node = session.node
        path = self._path(ctx, node)
        current = (await on_node.read_files(session, [path]))[path]
        if self.store_kind is not StoreKind.BUNDLE:
            await ctx.journal.backup(node.name, BackupKind.FILE, path, existed=current is not None)
        have = [] if current is None else on_node.certificate_shas(current.content)
        write = self._write(ctx, node, current) if ctx.ca.sha256 not in have else ""
        written = (await on_node.read_files(session, [path], write, f"write {path}"))[path]
        if written is None or ctx.ca.sha256 not in on_node.certificate_shas(written.content):
            raise CommandFailed(f"{path}: the new root is not there after writing it")
        return {"path": path, "sha256": ctx.ca.sha256}


@dataclass(frozen=True, slots=True, kw_only=True)
class VmdirPublish(Step):
    """The new root published to VMware Directory (`dir-cli trustedcert publish`), refreshed into VECS."""

    kind: Literal["vmdir-publish"] = "vmdir-publish"
    PHASE: ClassVar[Phase] = Phase.TRUST
    uses_sso = True  # type: ignore[assignment]

    @property
    def target(self) -> str:
        return TRUSTED_ROOTS

    def describe(self) -> str:
        return "publish the new root to VMware Directory, refresh TRUSTED_ROOTS"

    def journal_targets(self, ctx: ScriptContext, node: Node) -> tuple[tuple[BackupKind, str], ...]:
        return ((BackupKind.VMDIR, ctx.ca.sha256),)

    def scripts(self, ctx: ScriptContext, node: Node) -> list[tuple[str, str]]:
        return [("publish", on_node.vmdir_script(node, ctx.sso_password, "publish", ctx.ca.cert_pem))]

    async def apply(self, ctx: StepContext, session: Session) -> dict[str, Any]:
        await ctx.journal.backup(
            session.node.name,
            BackupKind.VMDIR,
            ctx.ca.sha256,
            existed=False,
            content=json.dumps({"cert": ctx.ca.cert_pem.decode()}).encode(),
        )
        if ctx.ca.sha256 not in await on_node.store_shas(session, TRUSTED_ROOTS):
            await on_node.vmdir(session, ctx.sso_password, "publish", ctx.ca.cert_pem)
        if ctx.ca.sha256 not in await on_node.store_shas(session, TRUSTED_ROOTS):
            raise CommandFailed("the new root is not in TRUSTED_ROOTS after publishing it")
        return {"sha256": ctx.ca.sha256}
