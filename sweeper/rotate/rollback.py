"""Put back what the journal backed up, newest change first: files byte for byte (owner and mode
too), VECS entries, VMware Directory roots and objects, VCDB rows; then the node's persist and restart
commands."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from fnmatch import fnmatchcase

from sweeper.errors import CommandFailed
from sweeper.model import Node
from sweeper.pki.parse import pem_blocks
from sweeper.platforms.vcsa import TRUSTED_ROOT_CRLS, TRUSTED_ROOTS
from sweeper.rotate import node as on_node
from sweeper.rotate import remote, vmdir
from sweeper.rotate.journal import Backup, JournalError
from sweeper.rotate.steps import BackupKind, Persist, ReissueFile, Restart, StepContext, vcdb
from sweeper.rotate.steps.reissue import run_command
from sweeper.ssh import Session


def refuse_unplanned(ctx: StepContext, nodes: Iterable[Node]) -> None:
    """Rollback writes only what the plan's steps could have backed up: anything else in the
    journal is refused before any node is touched.

    :raises JournalError: naming the node and the target that no step of the plan names
    """
    for node in nodes:
        allowed = [
            target for step in ctx.plan.of_node(node.name) for target in step.journal_targets(ctx, node)
        ]
        for item in ctx.journal.backups(node.name):
            if not any(item.kind == kind and fnmatchcase(item.target, pattern) for kind, pattern in allowed):
                raise JournalError(
                    f"{ctx.journal.directory}: node '{node.name}': the journal holds a backup of "
                    f"{item.target} that no step of the plan names; refusing to roll back"
                )


async def rollback_node(ctx: StepContext, session: Session) -> dict[str, int]:
    node = session.node
    await on_node.wait_for_earlier_scripts(session)  # a killed run's or rollback's, a failed attempt's
    pending = [b for b in ctx.journal.backups(node.name) if not b.restored]
    # Newest change first; CRLs after everything else: dir-cli attaches a CRL to its CA's
    # object in VMware Directory, so the CA must be published again before its CRL can be.
    newest_first = list(reversed(pending))
    for item in [b for b in newest_first if not _is_crl(b)] + [b for b in newest_first if _is_crl(b)]:
        if item.kind == BackupKind.FILE:
            await _restore_file(session, item)
        elif item.kind == BackupKind.VECS:
            await _restore_vecs(ctx, session, item)
        elif item.kind == BackupKind.LDAP:
            await vmdir.restore_entry(ctx, session, item.target, item.existed, item.content)
        elif item.kind == BackupKind.VMDIR and not item.existed:
            await _withdraw_published(ctx, session, item)
        elif item.kind == BackupKind.VCDB:
            await vcdb.restore_row(session, item)
        await ctx.journal.mark_restored(item.seq)
    await _clean_pending(ctx, session)
    commands = 0
    if pending:
        steps = ctx.plan.of_node(node.name)
        for command in dict.fromkeys(s.command for s in steps if isinstance(s, Persist)):
            await run_command(session, command, "persist after rollback")
            commands += 1
        for step in steps:
            if isinstance(step, Restart):
                await run_command(session, step.command, "restart after rollback")
                commands += 1
    return {"restored": len(pending), "commands": commands}


def _is_crl(item: Backup) -> bool:
    return item.kind == BackupKind.VECS and bool(json.loads(item.content or b"{}").get("crl"))


async def _restore_file(session: Session, item: Backup) -> None:
    if not item.existed:
        await on_node.run(session, remote.remove_file(item.target), f"remove {item.target}")
        return
    content = item.content or b""
    await on_node.run(
        session,
        remote.put_file(item.target, content, item.owner, item.group, item.mode or "0644"),
        f"restore {item.target}",
    )
    after = (await on_node.read_files(session, [item.target]))[item.target]
    if after is None or hashlib.sha256(after.content).digest() != hashlib.sha256(content).digest():
        raise CommandFailed(f"{item.target}: not byte-identical to the backup after restoring it")
    if (after.owner, after.group, after.mode) != (item.owner, item.group, item.mode):
        raise CommandFailed(f"{item.target}: owner or mode differs from the backup after restoring it")


async def _restore_vecs(ctx: StepContext, session: Session, item: Backup) -> None:
    node = session.node
    store, _, alias = item.target.partition("/")
    saved = json.loads(item.content or b"{}")
    cert, key = (saved.get("cert") or "").encode(), (saved.get("key") or "").encode()
    if saved.get("crl"):
        await on_node.vmdir(session, ctx.sso_password, "publish-crl", saved["crl"].encode())
        return
    if store == TRUSTED_ROOTS:
        if cert:
            await on_node.vmdir(session, ctx.sso_password, "publish", cert)
        return
    work = node.path(f"{remote.PENDING_DIR}/rollback-{hashlib.sha256(item.target.encode()).hexdigest()[:12]}")
    body = remote.vecs_delete_entry(node, store, alias, quiet=True)
    if item.existed and cert:
        body += remote.put_file(f"{work}/cert.pem", cert, None, None, "0600")
        if key:
            body += remote.put_file(f"{work}/key.pem", key, None, None, "0600")
        key_file = f"{work}/key.pem" if key else None
        body += remote.vecs_create_entry(node, store, alias, f"{work}/cert.pem", key_file)
    body += remote.remove_tree(work)
    await on_node.run(session, body, f"restore vecs {item.target}")
    shas = {e.sha256 for e in await on_node.store_entries(session, store) if e.alias == alias}
    wanted = {hashlib.sha256(b.der).hexdigest() for b in pem_blocks(cert) if b.label == "CERTIFICATE"}
    if item.existed and not wanted <= shas:
        raise CommandFailed(f"vecs {item.target}: not restored")


async def _withdraw_published(ctx: StepContext, session: Session, item: Backup) -> None:
    """Undo our publish of the new root: unpublish it (its CRL goes with it in VMware Directory),
    then delete it and its CRL from VECS, where the re-sync only ever adds."""
    node = session.node
    cert = json.loads(item.content or b"{}").get("cert", "").encode()
    if cert:
        await on_node.vmdir(session, ctx.sso_password, "unpublish", cert)
    body = "".join(
        remote.vecs_delete_entry(node, TRUSTED_ROOTS, entry.alias, quiet=True)
        for entry in await on_node.store_entries(session, TRUSTED_ROOTS)
        if entry.sha256 == item.target
    )
    body += "".join(
        remote.vecs_delete_entry(node, TRUSTED_ROOT_CRLS, alias, quiet=True)
        for alias in await on_node.crl_aliases_of(session, TRUSTED_ROOT_CRLS, ctx.ca.subject)
    )
    if body:
        await on_node.run(
            session, body + remote.force_refresh(node), "delete the new root and its CRL from VECS"
        )


async def _clean_pending(ctx: StepContext, session: Session) -> None:
    node = session.node
    body = remote.remove_tree(node.path(remote.PENDING_DIR))
    for step in ctx.plan.of_node(node.name):
        if isinstance(step, ReissueFile):
            body += remote.remove_file(remote.pending_key_path(node.path(step.key)))
    await on_node.run(session, body, "remove pending keys")
