"""The preflight's backups: the first state of everything the plan will change on a node, in the journal.

Private keys (leaf key files, VECS entries) are sealed under the journal passphrase. Backups
keep the *first* state seen, so re-running an interrupted preflight never overwrites it.
"""

from __future__ import annotations

import json
from typing import Any

from sweeper.rotate import node as on_node
from sweeper.rotate.steps import BackupKind, FileBackup, KnownBackup, Step, StepContext, VecsBackup
from sweeper.ssh import Session


async def back_up(ctx: StepContext, session: Session, steps: list[Step]) -> dict[str, Any]:
    """Back up every target the node's steps name: files in one read, VECS entries one call each."""
    node = session.node
    targets = [target for step in steps for target in step.backups()]
    secret: dict[str, bool] = {}
    for target in targets:
        if isinstance(target, FileBackup):
            path = node.path(target.path)
            secret[path] = secret.get(path, False) or target.secret
    found = await on_node.read_files(session, sorted(secret)) if secret else {}
    for path, state in found.items():
        if state is None:
            await ctx.journal.backup(node.name, BackupKind.FILE, path, existed=False)
        else:
            await ctx.journal.backup(
                node.name,
                BackupKind.FILE,
                path,
                existed=True,
                content=state.content,
                owner=state.owner,
                group=state.group,
                mode=state.mode,
                secret=secret[path],
            )
    entries = 0
    for target in targets:
        if isinstance(target, KnownBackup):
            where = f"{target.store}/{target.alias}"
            await ctx.journal.backup(node.name, BackupKind.VECS, where, existed=True, content=target.content)
        elif isinstance(target, VecsBackup):
            cert, key = await on_node.vecs_entry_pems(session, target.store, target.alias)
            await ctx.journal.backup(
                node.name,
                BackupKind.VECS,
                f"{target.store}/{target.alias}",
                existed=cert is not None,
                content=json.dumps({"cert": cert, "key": key}).encode(),
                secret=True,
            )
            entries += 1
    return {"files": len(found), "vecs_entries": entries}
