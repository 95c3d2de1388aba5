"""What rotation steps and rollback do on a node over its session: run a script, read files and
VECS entries back, publish to VMware Directory, make a new key. Shell text comes from `remote`."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sweeper.errors import CommandFailed
from sweeper.model import Node
from sweeper.pki import rotation
from sweeper.pki.parse import ParseError, crl_issuer, pem_blocks, spki_sha256_from_openssl_output
from sweeper.rotate import remote
from sweeper.rotate.remote import FileState
from sweeper.shell import Output, Tag, mark, run_node_script
from sweeper.ssh import Session
from sweeper.stores.vecs import VecsEntry, parse_entry_list

RUN_LABEL = f"{remote.CHANGE_LABEL}{secrets.token_hex(8)}-"
"""This process's rotation: its scripts' shells on the nodes are named after it (`label_of`)."""
WAIT_AT_LEAST = 60
"""Seconds a run waits at least for an earlier script to end on a node (more: the node's deadline)."""


def label_of(node: Node) -> str:
    """The label of this run's scripts' shells on `node`: the run, then the node (nodes may share a
    host)."""
    return f"{RUN_LABEL}{hashlib.sha256(node.name.encode()).hexdigest()[:8]}"


async def run(session: Session, body: str, what: str) -> Output:
    """Run a rotation script (reading and writing helpers + `body`); it must reach its end marker."""
    return await run_node_script(session, remote.script(body), what, label=label_of(session.node))


async def wait_for_earlier_scripts(session: Session, waiting: Callable[[str], None] | None = None) -> None:
    """Before a node's step is done again: wait while a script that did it before still runs there.

    A command whose client went away goes on on the node (sshd does not end it; nor does a
    timed-out one's signal for a root login): a killed run's, or this run's from an attempt that
    timed out or lost its connection. The same step done again meanwhile would race it. The node
    is asked once; only when such a script runs is `waiting` told (for the operator) and the node
    asked again, to wait. These scripts carry no label, so no other run's wait waits for them.

    :raises CommandFailed: one still ran when the wait's time was up
    """
    node = session.node
    seconds = int(max(node.deadline, WAIT_AT_LEAST))
    pids = await _earlier_scripts(session, 0)
    if not pids:
        return
    if waiting is not None:
        waiting(f"waiting up to {seconds}s for an earlier script still running there (process {pids})")
    pids = await _earlier_scripts(session, seconds)
    if pids:
        raise CommandFailed(
            f"an earlier script is still running on the node after {seconds}s "
            f"(process {pids}): let it end, then run this again"
        )


async def _earlier_scripts(session: Session, seconds: int) -> str:
    """The ids of the earlier scripts still running on the node after up to `seconds`, or ''."""
    body = remote.wait_for_earlier_scripts(RUN_LABEL, label_of(session.node), seconds)
    output = await run_node_script(session, remote.script(body), "look for earlier scripts", seconds + 30)
    busy = output.tagged(Tag.BUSY)
    return ", ".join([word for word in busy[0].args.split() if word.isdigit()][:10] or ["?"]) if busy else ""


async def read_files(
    session: Session, paths: list[str], change: str = "", what: str = "read files"
) -> dict[str, FileState | None]:
    """path -> content, owner, group and mode, or None where it does not exist; one round trip,
    after `change` (a script that writes them, whose result this reads back) where one is given."""
    output = await run(session, change + remote.read_files(paths), what)
    try:
        return remote.files_from(output, paths)
    except ValueError as exc:
        raise CommandFailed(str(exc)) from None


def certificate_shas(data: bytes) -> list[str]:
    """SHA-256 of every PEM certificate in `data`, in order."""
    return [hashlib.sha256(b.der).hexdigest() for b in pem_blocks(data) if b.label == "CERTIFICATE"]


async def vecs_entries(session: Session, store: str, change: str = "") -> list[VecsEntry]:
    """Every entry of a VECS store, from one `vecs-cli entry list`, after `change` if one is given
    (a script whose result the list reads back: one round trip for both)."""
    body = change + remote.vecs_entry_list(session.node, store, "e0")
    return entries_in(await run(session, body, f"vecs entry list {store}"), store, "e0")


def entries_in(output: Output, store: str, section_id: str) -> list[VecsEntry]:
    """The entries a `remote.vecs_entry_list` section printed."""
    error = output.error(section_id)
    if error:
        raise CommandFailed(f"vecs-cli entry list --store {store}: {error}")
    return parse_entry_list(output.text(section_id))


@dataclass(frozen=True, slots=True)
class StoreEntry:
    alias: str
    entry_type: str
    sha256: str
    """SHA-256 of the entry's certificate ("" for an entry without one)."""


async def store_entries(session: Session, store: str, change: str = "") -> list[StoreEntry]:
    return store_entries_of(await vecs_entries(session, store, change))


def store_entries_of(entries: list[VecsEntry]) -> list[StoreEntry]:
    found = []
    for entry in entries:
        shas = certificate_shas(entry.pem.encode()) if entry.pem else []
        found.append(StoreEntry(entry.alias, entry.entry_type, shas[0] if shas else ""))
    return found


def key_spki_in(output: Output, target: str) -> str:
    """SHA-256 of the public key a `remote.vecs_key_public` section printed (`target` names the entry)."""
    try:
        return spki_sha256_from_openssl_output(output.text("k0"))
    except ParseError as exc:
        raise CommandFailed(f"vecs {target}: {exc}") from None


async def store_shas(session: Session, store: str, change: str = "") -> set[str]:
    return {entry.sha256 for entry in await store_entries(session, store, change)}


async def crl_aliases_of(session: Session, store: str, issuer: str) -> list[str]:
    """Aliases of the CRL entries of a VECS store whose CRL the given issuer signed."""
    return [
        entry.alias
        for entry in await vecs_entries(session, store)
        for block in pem_blocks(entry.pem.encode())
        if block.label == "X509 CRL" and crl_issuer(block.der) == issuer
    ]


async def vecs_entry_pems(session: Session, store: str, alias: str) -> tuple[str | None, str | None]:
    """A VECS entry's certificate and private key (PEM), for the journal's sealed backup."""
    output = await run(session, remote.vecs_backup_entry(session.node, store, alias), f"vecs {store}/{alias}")
    return _pem_in(output, "c0", "BEGIN CERTIFICATE"), _pem_in(output, "k0", "PRIVATE KEY")


def _pem_in(output: Output, section_id: str, marker: str) -> str | None:
    for section in output.of(section_id):
        if not section.rc and marker in section.text:
            return section.text[section.text.index("-----BEGIN") :].strip() + "\n"
    return None


SsoPassword = Callable[[Node], str]


def vmdir_script(node: Node, sso_password: SsoPassword, verb: str, pem: bytes) -> str:
    """The script of `vmdir()`: the PEM in a private work folder, dir-cli, force-refresh, clean up."""
    named = pem.encode() if isinstance(pem, str) else pem  # a RunTime placeholder for --show-scripts
    work = node.path(f"{remote.PENDING_DIR}/vmdir-{hashlib.sha256(named).hexdigest()[:12]}")
    login = node.sso_user or "administrator@vsphere.local"
    return (
        remote.put_file(f"{work}/cert.pem", pem, None, None, "0600")
        + mark(Tag.DIRCLI, "d0")
        + remote.vmdir(node, verb, f"{work}/cert.pem", login, sso_password(node))
        + mark(Tag.REFRESH, "r0")
        + remote.force_refresh(node)
        + remote.remove_tree(work)
    )


async def vmdir(session: Session, sso_password: SsoPassword, verb: str, pem: bytes) -> None:
    """`dir-cli trustedcert publish|unpublish|publish-crl` with the node's SSO login, then force-refresh."""
    body = vmdir_script(session.node, sso_password, verb, pem)
    output = await run(session, body, f"dir-cli trustedcert {verb}")
    error = output.error("d0")
    if error and verb != "unpublish":  # unpublishing what is already gone is fine
        raise CommandFailed(f"dir-cli trustedcert {verb}: {error}")


async def new_key(session: Session, pending: str, key_kind: str, policy: rotation.KeyPolicy) -> bytes:
    """The public half of a new key at `pending`: made on the node with openssl (kept across a
    crash) and proven by a request it signs now, or made here and pushed where the node has no
    openssl, never written here.

    :raises CommandFailed: the node gave no proof of possession, or a key the policy refuses
    """
    nonce = f"sweeper-pop-{secrets.token_hex(16)}"
    output = await run(session, remote.ensure_pending_key(pending, key_kind, nonce), "make the new key")
    if output.tagged(Tag.TOOL):
        try:
            return rotation.proven_public_key(output.text("p0").encode(), nonce, policy)
        except rotation.KeyRefused as exc:
            raise CommandFailed(f"new key refused: {exc}") from None
    private_pem = rotation.generate_private_key_pem(key_kind)
    await run(session, remote.put_file(pending, private_pem, None, None, "0600"), "push the new key")
    return rotation.public_key_pem_of(private_pem)
