"""Purge phase, once every node is re-issued: the old root, flagged certificates and their CRLs out
of every store (VMware Directory first, or the re-sync brings them back), and the new CA's CRL in."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from sweeper.errors import CommandFailed
from sweeper.model import Node, StoreKind
from sweeper.pki import rotation
from sweeper.pki.parse import pem_blocks
from sweeper.platforms.vcsa import TRUSTED_ROOT_CRLS, TRUSTED_ROOTS
from sweeper.rotate import node as on_node
from sweeper.rotate import remote
from sweeper.rotate.remote import FileState
from sweeper.rotate.steps.base import (
    BackupKind,
    BackupTarget,
    FileBackup,
    KnownBackup,
    Phase,
    ScriptContext,
    Step,
    StepContext,
    VecsBackup,
)
from sweeper.rotate.steps.reissue import Reissue
from sweeper.shell import RunTime
from sweeper.ssh import Session


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveAnchors(Step):
    """A bundle rewritten without the removed certificates (or a folder's files removed / rewritten)."""

    kind: Literal["remove-anchors"] = "remove-anchors"
    PHASE: ClassVar[Phase] = Phase.PURGE
    store: str
    store_kind: StoreKind
    files: tuple[str, ...]
    sha256: tuple[str, ...]

    @property
    def target(self) -> str:
        return self.store

    def describe(self) -> str:
        return f"remove {len(self.sha256)} certificate(s) from {self.store}"

    def backups(self) -> tuple[BackupTarget, ...]:
        return tuple(FileBackup(path) for path in self.files)

    def _rewrite(self, path: str, current: FileState) -> tuple[str, int]:
        """The script that leaves `path` without the removed certificates, and how many it removes."""
        if isinstance(current.content, RunTime):
            kept: bytes = RunTime(f"{path} as read at run time, without the removed certificates")
            return remote.put_file(path, kept, current.owner, current.group, current.mode), 0
        blocks = [b for b in pem_blocks(current.content) if b.label == "CERTIFICATE"]
        keep = [b for b in blocks if hashlib.sha256(b.der).hexdigest() not in self.sha256]
        if len(keep) == len(blocks) and (blocks or current.content.strip()):
            return "", 0
        removed = len(blocks) - len(keep)
        if keep or self.store_kind is StoreKind.BUNDLE:
            content = b"".join(rotation.der_to_pem(b.der) for b in keep)
            return remote.put_file(path, content, current.owner, current.group, current.mode), removed
        return remote.remove_file(path), removed

    def scripts(self, ctx: ScriptContext, node: Node) -> list[tuple[str, str]]:
        unread = FileState(RunTime("content"), RunTime("owner"), RunTime("group"), RunTime("mode"))
        return [(f"rewrite {path}", self._rewrite(node.path(path), unread)[0]) for path in self.files]

    async def apply(self, ctx: StepContext, session: Session) -> dict[str, Any]:
        paths = {session.node.path(p): p for p in self.files}
        removed, body = 0, ""
        for path, current in (await on_node.read_files(session, list(paths))).items():
            if current is not None:
                script, count = self._rewrite(path, current)
                body, removed = body + script, removed + count
        after_purge = await on_node.read_files(session, list(paths), body, f"purge {self.store}")
        for path, after in after_purge.items():
            if after is not None and set(self.sha256) & set(on_node.certificate_shas(after.content)):
                raise CommandFailed(f"{paths[path]}: a removed certificate is still there")
        return {"removed": removed}


@dataclass(frozen=True, slots=True, kw_only=True)
class VmdirUnpublish(Step):
    """Removed roots unpublished from VMware Directory, then deleted from VECS, so they stay gone."""

    kind: Literal["vmdir-unpublish"] = "vmdir-unpublish"
    PHASE: ClassVar[Phase] = Phase.PURGE
    uses_sso = True  # type: ignore[assignment]
    aliases: tuple[str, ...]
    sha256: tuple[str, ...]

    @property
    def target(self) -> str:
        return TRUSTED_ROOTS

    def describe(self) -> str:
        return f"unpublish and delete {len(self.sha256)} root(s) from TRUSTED_ROOTS"

    def backups(self) -> tuple[BackupTarget, ...]:
        return tuple(VecsBackup(TRUSTED_ROOTS, alias) for alias in self.aliases)

    def _delete(self, node: Node, alias: str) -> str:
        return remote.vecs_delete_entry(node, TRUSTED_ROOTS, alias) + remote.force_refresh(node)

    def scripts(self, ctx: ScriptContext, node: Node) -> list[tuple[str, str]]:
        unpublish = on_node.vmdir_script(
            node, ctx.sso_password, "unpublish", RunTime("the root, from the journal")
        )
        return [("unpublish each root", unpublish)] + [
            (f"delete {a}", self._delete(node, a)) for a in self.aliases
        ]

    async def apply(self, ctx: StepContext, session: Session) -> dict[str, Any]:
        node = session.node
        doomed = set(self.sha256)
        for item in ctx.journal.backups(node.name):
            if (
                item.kind != BackupKind.VECS
                or not item.target.startswith(f"{TRUSTED_ROOTS}/")
                or not item.content
            ):
                continue
            cert = json.loads(item.content).get("cert") or ""
            if set(on_node.certificate_shas(cert.encode())) & doomed:
                await on_node.vmdir(session, ctx.sso_password, "unpublish", cert.encode())
        aliases = [e.alias for e in await on_node.store_entries(session, TRUSTED_ROOTS) if e.sha256 in doomed]
        deletes = "".join(self._delete(node, alias) for alias in aliases)  # and read back, one round trip
        left = doomed & await on_node.store_shas(session, TRUSTED_ROOTS, deletes)
        if left:
            raise CommandFailed(f"TRUSTED_ROOTS still holds {len(left)} removed root(s) after the purge")
        return {"removed": sorted(doomed)}


@dataclass(frozen=True, slots=True, kw_only=True)
class ClearVecsStore(Step):
    """A BACKUP_STORE emptied: certificate-manager keeps old certificates *and keys* there."""

    kind: Literal["clear-vecs-store"] = "clear-vecs-store"
    PHASE: ClassVar[Phase] = Phase.PURGE
    store: str
    aliases: tuple[str, ...]
    sha256: tuple[str, ...]

    @property
    def target(self) -> str:
        return self.store

    def describe(self) -> str:
        return f"empty VECS {self.store} (old certificates and keys)"

    def backups(self) -> tuple[BackupTarget, ...]:
        return tuple(VecsBackup(self.store, alias) for alias in self.aliases)

    def _clear(self, node: Node, aliases: list[str]) -> str:
        return "".join(remote.vecs_delete_entry(node, self.store, alias) for alias in aliases)

    def scripts(self, ctx: ScriptContext, node: Node) -> list[tuple[str, str]]:
        return [(f"clear {self.store}", self._clear(node, [RunTime("each alias listed at run time")]))]

    async def apply(self, ctx: StepContext, session: Session) -> dict[str, Any]:
        aliases = [entry.alias for entry in await on_node.store_entries(session, self.store)]
        if aliases and await on_node.store_entries(session, self.store, self._clear(session.node, aliases)):
            raise CommandFailed(f"{self.store} is not empty after clearing it")
        return {"removed": aliases}


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveCrls(Step):
    """CRL files whose every CRL was signed by a removed CA: nothing left can verify them."""

    kind: Literal["remove-crls"] = "remove-crls"
    PHASE: ClassVar[Phase] = Phase.PURGE
    store: str
    files: tuple[str, ...]

    @property
    def target(self) -> str:
        return self.store

    def describe(self) -> str:
        return f"remove {len(self.files)} CRL file(s) of removed CAs: {self.store}"

    def backups(self) -> tuple[BackupTarget, ...]:
        return tuple(FileBackup(path) for path in self.files)

    def _remove(self, node: Node) -> str:
        return "".join(remote.remove_file(node.path(path)) for path in self.files)

    def scripts(self, ctx: ScriptContext, node: Node) -> list[tuple[str, str]]:
        return [("remove CRLs", self._remove(node))]

    async def apply(self, ctx: StepContext, session: Session) -> dict[str, Any]:
        paths = [session.node.path(path) for path in self.files]
        after = await on_node.read_files(session, paths, self._remove(session.node), "remove CRLs")
        left = [p for p, state in after.items() if state is not None]
        if left:
            raise CommandFailed(f"{left[0]}: still there after removing it")
        return {"removed": list(self.files)}


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteVecsCrls(Step):
    """VECS CRL entries of removed roots (their roots are unpublished first, so they stay gone)."""

    kind: Literal["delete-vecs-crls"] = "delete-vecs-crls"
    PHASE: ClassVar[Phase] = Phase.PURGE
    store: str
    crls: dict[str, str]
    """alias -> the CRL's PEM, as the preflight sweep read it (kept in the journal for rollback)."""

    @property
    def target(self) -> str:
        return self.store

    def describe(self) -> str:
        return f"delete {len(self.crls)} CRL(s) of removed roots from VECS"

    def backups(self) -> tuple[BackupTarget, ...]:
        return tuple(
            KnownBackup(self.store, alias, json.dumps({"crl": pem}).encode())
            for alias, pem in self.crls.items()
        )

    def _delete(self, node: Node) -> str:
        deletes = (remote.vecs_delete_entry(node, self.store, alias, quiet=True) for alias in self.crls)
        return "".join(deletes) + remote.force_refresh(node)

    def scripts(self, ctx: ScriptContext, node: Node) -> list[tuple[str, str]]:
        return [(f"delete CRLs from {self.store}", self._delete(node))]

    async def apply(self, ctx: StepContext, session: Session) -> dict[str, Any]:
        after = await on_node.store_entries(session, self.store, self._delete(session.node))
        left = set(self.crls) & {entry.alias for entry in after}
        if left:
            raise CommandFailed(f"{self.store}: {len(left)} CRL(s) came back after deleting them")
        return {"removed": list(self.crls)}


def serials_to_revoke(ctx: StepContext) -> list[str]:
    """What the rotation CA revokes: certificates it issued that a retry replaced before they
    were ever verified in place, and, when it is the CA that issued the old leaves (an
    enterprise CA re-issuing), those old leaves."""
    in_place = {s.detail.get("new_sha256") for s in ctx.journal.steps(Phase.REISSUE) if s.state == "done"}
    superseded = [serial for serial, sha in ctx.journal.issued() if sha not in in_place]
    old = [
        step.old.serial
        for step in ctx.plan.steps
        if isinstance(step, Reissue) and step.old.issuer == ctx.ca.subject
    ]
    return sorted(set(superseded + old))


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishCrl(Step):
    """The rotation CA's CRL into one of the node's CRL stores (a folder, or VECS through dir-cli)."""

    kind: Literal["publish-crl"] = "publish-crl"
    PHASE: ClassVar[Phase] = Phase.PURGE

    @property
    def uses_sso(self) -> bool:
        return self.store_kind == StoreKind.VECS

    store: str
    store_kind: StoreKind

    @property
    def target(self) -> str:
        return self.store

    def describe(self) -> str:
        return f"publish the new root's CRL (replaced serials) into {self.store}"

    def journal_targets(self, ctx: ScriptContext, node: Node) -> tuple[tuple[BackupKind, str], ...]:
        if self.store_kind == StoreKind.VECS:
            return ((BackupKind.VECS, f"{TRUSTED_ROOT_CRLS}/*"),)  # the aliases VECS gives the CRL
        return ((BackupKind.FILE, self._path(ctx, node)),)

    def _path(self, ctx: ScriptContext, node: Node) -> str:
        return node.path(f"{self.store.rstrip('/')}/sweeper-{ctx.ca.sha256[:16]}.crl.pem")

    def _script(self, ctx: ScriptContext, node: Node, crl: bytes) -> str:
        if self.store_kind is StoreKind.VECS:
            return on_node.vmdir_script(node, ctx.sso_password, "publish-crl", crl)
        return remote.put_file(self._path(ctx, node), crl, None, None, "0644")

    def scripts(self, ctx: ScriptContext, node: Node) -> list[tuple[str, str]]:
        crl = RunTime("the new root's CRL of the serials replaced by then")
        return [("publish the CRL", self._script(ctx, node, crl))]

    async def apply(self, ctx: StepContext, session: Session) -> dict[str, Any]:
        node = session.node
        if "serials" not in ctx.purge_serials:
            ctx.purge_serials["serials"] = serials_to_revoke(ctx)
        serials = ctx.purge_serials["serials"]
        crl = await asyncio.to_thread(rotation.revocation_list, ctx.ca, serials)
        if self.store_kind is not StoreKind.VECS:
            path = self._path(ctx, node)
            await ctx.journal.backup(node.name, BackupKind.FILE, path, existed=False)
            written = (
                await on_node.read_files(session, [path], self._script(ctx, node, crl), f"write {path}")
            )[path]
            if written is None or written.content != crl:
                raise CommandFailed(f"{path}: the CRL is not there after writing it")
            return {"path": path, "revoked": serials}
        await on_node.vmdir(session, ctx.sso_password, "publish-crl", crl)
        ours = await on_node.crl_aliases_of(session, TRUSTED_ROOT_CRLS, ctx.ca.subject)
        if not ours:
            raise CommandFailed("TRUSTED_ROOT_CRLS holds no CRL of the new root after publishing it")
        for alias in ours:
            await ctx.journal.backup(
                node.name, BackupKind.VECS, f"{TRUSTED_ROOT_CRLS}/{alias}", existed=False
            )
        return {"aliases": ours, "revoked": serials}
