"""Put back what the journal backed up, newest change first: files byte for byte (owner and mode
too), VECS entries, VMware Directory roots; then restart the node's services."""

from __future__ import annotations

import hashlib
import json

from sweeper.errors import CommandFailed
from sweeper.pki.parse import pem_blocks
from sweeper.rotate import remote
from sweeper.rotate.actions import Rotation, _crl_aliases_of, _store_entries, _vmdir, read_files, run
from sweeper.rotate.journal import Backup
from sweeper.ssh import Session


async def rollback_node(rot: Rotation, session: Session) -> dict[str, int]:
    node = session.node
    pending = [b for b in rot.journal.backups(node.name) if not b.restored]
    for item in reversed(pending):
        if item.kind == "file":
            await _restore_file(session, item)
        elif item.kind == "vecs":
            await _restore_vecs(rot, session, item)
        elif item.kind == "vmdir" and not item.existed:
            await _withdraw_published(rot, session, item)
        rot.journal.mark_restored(item.seq)
    await _clean_pending(rot, session)
    restarted = 0
    for action in rot.plan.for_phase("reissue", [node.name]):
        if action.kind == "restart" and pending:
            await run(session, remote.run_command(action.detail["command"]), "restart after rollback")
            restarted = 1
    return {"restored": len(pending), "restarted": restarted}


async def _restore_file(session: Session, item: Backup) -> None:
    if not item.existed:
        await run(session, remote.remove_file(item.target), f"remove {item.target}")
        return
    content = item.content or b""
    await run(
        session,
        remote.put_file(item.target, content, item.owner, item.group, item.mode or "0644"),
        f"restore {item.target}",
    )
    after = (await read_files(session, [item.target]))[item.target]
    if after is None or hashlib.sha256(after[0]).digest() != hashlib.sha256(content).digest():
        raise CommandFailed(f"{item.target}: not byte-identical to the backup after restoring it")
    if (after[1], after[2], after[3]) != (item.owner, item.group, item.mode):
        raise CommandFailed(f"{item.target}: owner or mode differs from the backup after restoring it")


async def _restore_vecs(rot: Rotation, session: Session, item: Backup) -> None:
    node = session.node
    store, _, alias = item.target.partition("/")
    saved = json.loads(item.content or b"{}")
    cert, key = (saved.get("cert") or "").encode(), (saved.get("key") or "").encode()
    if saved.get("crl"):
        await _vmdir(rot, session, "publish-crl", saved["crl"].encode())
        return
    if store == "TRUSTED_ROOTS":
        if cert:
            await _vmdir(rot, session, "publish", cert)
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
    await run(session, body, f"restore vecs {item.target}")
    shas = {sha for a, _, sha in await _store_entries(session, store) if a == alias}
    wanted = {hashlib.sha256(b.der).hexdigest() for b in pem_blocks(cert) if b.label == "CERTIFICATE"}
    if item.existed and not wanted <= shas:
        raise CommandFailed(f"vecs {item.target}: not restored")


async def _withdraw_published(rot: Rotation, session: Session, item: Backup) -> None:
    """Undo our publish of the new root: unpublish it (its CRL goes with it in VMware Directory),
    then delete it and its CRL from VECS, where the re-sync only ever adds."""
    node = session.node
    cert = json.loads(item.content or b"{}").get("cert", "").encode()
    if cert:
        await _vmdir(rot, session, "unpublish", cert)
    body = "".join(
        remote.vecs_delete_entry(node, "TRUSTED_ROOTS", alias, quiet=True)
        for alias, _, sha in await _store_entries(session, "TRUSTED_ROOTS")
        if sha == item.target
    )
    body += "".join(
        remote.vecs_delete_entry(node, "TRUSTED_ROOT_CRLS", alias, quiet=True)
        for alias in await _crl_aliases_of(session, rot.ca.subject)
    )
    if body:
        await run(session, body + remote.force_refresh(node), "delete the new root and its CRL from VECS")


async def _clean_pending(rot: Rotation, session: Session) -> None:
    node = session.node
    body = remote.remove_tree(node.path(remote.PENDING_DIR))
    for action in rot.plan.for_phase("reissue", [node.name]):
        if action.kind == "reissue-file":
            body += remote.remove_file(remote.pending_key_path(node.path(action.detail["key"])))
    await run(session, body, "remove pending keys")
