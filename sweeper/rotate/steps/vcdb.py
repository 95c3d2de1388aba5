"""Reissue phase on a vCenter: the extension thumbprints in VCDB (`vpx_ext`) made to name the new
certificates, each row backed up first and put back exactly by rollback (NULL included)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from sweeper.errors import CommandFailed
from sweeper.model import Node
from sweeper.pki.parse import pem_blocks
from sweeper.platforms.vcdb import (
    DATABASE,
    DB_USER,
    EXTENSIONS,
    PSQL,
    VMCAM_CERT,
    VPXD_EXTENSION,
    Source,
    normal,
    thumbprint,
    vpx_ext_problems,
    wanted_thumbprints,
)
from sweeper.platforms.vcsa import MACHINE_SSL, MACHINE_SSL_ALIAS
from sweeper.rotate import node as on_node
from sweeper.rotate.journal import Backup
from sweeper.rotate.steps.base import BackupKind, Phase, ScriptContext, Step, StepContext
from sweeper.shell import Output, RunTime, Tag, mark
from sweeper.shell import quote as q
from sweeper.ssh import Session

TABLE = "vpx_ext"
Rows = dict[str, str | None]
"""ext_id -> thumbprint (None: SQL NULL)."""


def _literal(value: str | None) -> str:
    """An SQL literal: NULL, or a string with its quotes doubled (node text never ends the string)."""
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def _psql(node: Node, sql: str, section: str) -> str:
    """psql as vCert runs it (local socket, no password), unaligned and tuples only."""
    command = f"{q(node.path(PSQL))} -d {DATABASE} -U {DB_USER} -t -A -c {q(sql)}"
    return mark(Tag.VCDB, section) + f"sw_run {command}\n"


def _select(node: Node) -> str:
    ids = ", ".join(_literal(ext) for ext in EXTENSIONS)
    null = "CASE WHEN thumbprint IS NULL THEN 'null' ELSE 'set' END"
    sql = f"SELECT ext_id, {null}, thumbprint FROM {TABLE} WHERE ext_id IN ({ids}) ORDER BY ext_id"
    return _psql(node, sql, "q0")


def _update(node: Node, rows: Rows) -> str:
    return "".join(
        _psql(
            node, f"UPDATE {TABLE} SET thumbprint = {_literal(value)} WHERE ext_id = {_literal(ext)}", f"u{i}"
        )
        for i, (ext, value) in enumerate(sorted(rows.items()))
    )


def reachable_script(node: Node) -> str:
    """Read-only: VCDB asked `SELECT 1` as the update will ask it (section r0), before any change;
    whether psql is there at all first (a Platform Services Controller has no VCDB)."""
    return _has_psql(node) + _psql(node, "SELECT 1", "r0")


def _has_psql(node: Node) -> str:
    return f"if [ -x {q(node.path(PSQL))} ]; then {mark(Tag.TOOL, 'psql').strip()}; fi\n"


def unreachable(output: Output) -> str | None:
    """Why VCDB cannot take the thumbprint updates (psql's first error line), or None (also when the
    node has no psql: no VCDB, whose update step then records it absent)."""
    if not output.tagged(Tag.TOOL):
        return None
    error = output.error("r0")
    if error:
        return f"{DATABASE} is not reachable with {PSQL}: {error}"
    if output.text("r0").strip() != "1":
        return f"{DATABASE} did not answer SELECT 1 with {PSQL}"
    return None


def parse_rows(text: str) -> Rows:
    """`ext_id|null or set|thumbprint` lines (psql -t -A) of the known extensions; the rest is ignored."""
    rows: Rows = {}
    for line in text.splitlines():
        parts = line.split("|", 2)
        if len(parts) == 3 and parts[0] in EXTENSIONS:
            rows[parts[0]] = None if parts[1] == "null" else parts[2]
    return rows


async def read_rows(session: Session) -> Rows | None:
    """The known extensions' rows, or None where the node has no VCDB (no psql: not a vCenter Server)."""
    node = session.node
    output = await on_node.run(session, _has_psql(node) + _select(node), "psql select vpx_ext")
    if not output.tagged(Tag.TOOL):
        return None
    error = output.error("q0")
    if error:
        raise CommandFailed(f"psql {DATABASE}: {error}")
    return parse_rows(output.text("q0"))


async def _write_rows(session: Session, rows: Rows) -> None:
    output = await on_node.run(session, _update(session.node, rows), "psql update vpx_ext")
    for i in range(len(rows)):
        error = output.error(f"u{i}")
        if error:
            raise CommandFailed(f"psql {DATABASE}: {error}")


async def current_thumbprints(session: Session) -> dict[Source, str]:
    """The thumbprint of each certificate VCDB's extensions must name, as the node holds them now."""
    held: dict[str, bytes] = {}
    for store, alias in ((VPXD_EXTENSION, VPXD_EXTENSION), (MACHINE_SSL, MACHINE_SSL_ALIAS)):
        for entry in await on_node.vecs_entries(session, store):
            ders = [b.der for b in pem_blocks(entry.pem.encode()) if b.label == "CERTIFICATE"]
            if entry.alias == alias and ders:
                held[store] = ders[0]
    return thumbprints_of(held, await auth_proxy_certificate(session))


async def auth_proxy_certificate(session: Session) -> bytes | None:
    """The Authentication Proxy's certificate (vmcam), where the node has one."""
    path = session.node.path(VMCAM_CERT)
    vmcam = (await on_node.read_files(session, [path]))[path]
    ders = [b.der for b in pem_blocks(vmcam.content) if b.label == "CERTIFICATE"] if vmcam else []
    return ders[0] if ders else None


def thumbprints_of(vecs: Mapping[str, bytes], auth_proxy: bytes | None) -> dict[Source, str]:
    """Pure: the thumbprints extensions must name, from the VECS certificates (store -> DER) and vmcam's."""
    held = {
        Source.VPXD_EXTENSION: vecs.get(VPXD_EXTENSION),
        Source.MACHINE_SSL: vecs.get(MACHINE_SSL),
        Source.AUTH_PROXY: auth_proxy,
    }
    return {source: thumbprint(der) for source, der in held.items() if der is not None}


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateVpxExt(Step):
    """vpx_ext thumbprints = the certificates now in place: vpxd-extension for EAM, RBD, Image Builder,
    Update Manager and vLCM; Machine SSL for vSAN health; the Authentication Proxy's for vmcam."""

    kind: Literal["update-vpx-ext"] = "update-vpx-ext"
    PHASE: ClassVar[Phase] = Phase.REISSUE

    @property
    def target(self) -> str:
        return f"{DATABASE}/{TABLE}"

    def describe(self) -> str:
        return f"set the extension thumbprints in {DATABASE} {TABLE} to the new certificates"

    def journal_targets(self, ctx: ScriptContext, node: Node) -> tuple[tuple[BackupKind, str], ...]:
        return ((BackupKind.VCDB, f"{TABLE}/*"),)

    def scripts(self, ctx: ScriptContext, node: Node) -> list[tuple[str, str]]:
        new = {ext: RunTime(f"SHA-1 of the {source} certificate now") for ext, source in EXTENSIONS.items()}
        return [("read the rows", _select(node)), ("update the rows", _update(node, new))]

    async def apply(self, ctx: StepContext, session: Session) -> dict[str, Any]:
        node = session.node
        rows = await read_rows(session)
        if rows is None:
            return {"vcdb": "absent"}
        for ext, value in rows.items():  # the first state seen is kept: a resumed step keeps the original
            content = json.dumps({"thumbprint": value}).encode()
            await ctx.journal.backup(
                node.name, BackupKind.VCDB, f"{TABLE}/{ext}", existed=True, content=content
            )
        current = await current_thumbprints(session)
        wanted = wanted_thumbprints(rows, current)
        changes: Rows = {ext: t for ext, t in wanted.items() if normal(rows[ext] or "") != normal(t)}
        if changes:
            await _write_rows(session, changes)
        after = await read_rows(session) or {}
        problems = vpx_ext_problems({ext: value or "" for ext, value in after.items()}, current)
        if problems:
            raise CommandFailed(f"{len(problems)} thumbprint(s) wrong after updating: {problems[0]}")
        return {"updated": sorted(changes), "thumbprints": {ext: after[ext] for ext in sorted(wanted)}}


async def restore_row(session: Session, item: Backup) -> None:
    """Put one vpx_ext row's thumbprint back exactly as the backup holds it (NULL stays NULL)."""
    ext = item.target.partition("/")[2]
    value = json.loads(item.content or b"{}").get("thumbprint")
    await _write_rows(session, {ext: value})
    if ((await read_rows(session)) or {}).get(ext, value) != value:
        raise CommandFailed(f"{DATABASE} {item.target}: not restored")
