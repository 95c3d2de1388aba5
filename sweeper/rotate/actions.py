"""What each planned action does on a node: read, change, read back. One handler per action kind.

Every handler is idempotent (a crash at any point followed by a rerun ends in the same
state) and verifies its change by reading it back; its return value is the journal's
detail for the step. Certificates are made through `pki.rotation`; nothing here parses X.509.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from sweeper import stores
from sweeper.errors import CommandFailed
from sweeper.model import Node, StoreSpec
from sweeper.pki import rotation
from sweeper.pki.parse import ParseError, crl_issuer, pem_blocks, spki_sha256_from_openssl_output
from sweeper.rotate import remote
from sweeper.rotate.journal import Journal
from sweeper.rotate.plan import Action, Plan
from sweeper.ssh import Session
from sweeper.stores.vecs import VecsEntry, parse_entry_list


@dataclass(frozen=True, slots=True)
class Rotation:
    """Everything a handler needs besides the node session."""

    journal: Journal
    plan: Plan
    ca: rotation.CertificateAuthority
    sso_password: Callable[[Node], str]
    leaf_days: int = 730


Handler = Callable[[Rotation, Session, Action], Awaitable[dict[str, Any]]]


async def run(session: Session, body: str, what: str) -> tuple[str, stores.script.Output]:
    """Run a rotation script on the node; it must reach its end marker."""
    token = "@@SWEEPER-" + secrets.token_hex(8)
    result = await session.run_script(remote.script(token, body), timeout=session.node.deadline)
    split = stores.script.split_output(token, result.stdout)
    if not split.complete:
        first = next(
            (line for line in result.stderr.splitlines() if line.strip()), f"exit {result.exit_status}"
        )
        raise CommandFailed(f"{what}: stopped early: {first.strip()}")
    return token, split


def _errors(split: stores.script.Output, sid: str) -> str | None:
    for section in split.sections.get(sid, []):
        if section.rc:
            return next((e.strip() for e in section.errors if e.strip()), f"exit status {section.rc}")
    return None


async def read_files(session: Session, paths: list[str]) -> dict[str, tuple[bytes, str, str, str] | None]:
    """path -> (content, owner, group, mode), or None where it does not exist; one round trip."""
    _, split = await run(session, remote.read_files(paths), "read files")
    try:
        return remote.files_from(split, paths)
    except ValueError as exc:
        raise CommandFailed(str(exc)) from None


def _certificate_shas(data: bytes) -> list[str]:
    return [hashlib.sha256(b.der).hexdigest() for b in pem_blocks(data) if b.label == "CERTIFICATE"]


# --- preflight: back everything up -----------------------------------------------------------


async def backup(rot: Rotation, session: Session, actions: list[Action]) -> dict[str, Any]:
    """Keep the first state of every file and VECS entry the plan will change, keys sealed."""
    node = session.node
    paths: list[str] = []
    entries: list[tuple[str, str]] = []
    for action in actions:
        if action.kind == "add-anchor" and action.detail["store_kind"] == "bundle":
            paths.append(node.path(action.target))
        elif action.kind == "reissue-file":
            paths += [node.path(action.target), node.path(action.detail["key"])]
        elif action.kind in ("remove-anchors", "remove-crls"):
            paths += [node.path(p) for p in action.detail["files"]]
        elif action.kind == "delete-vecs-crls":
            for alias, pem in action.detail["crls"].items():
                rot.journal.backup(
                    node.name,
                    "vecs",
                    f"{action.target}/{alias}",
                    existed=True,
                    content=json.dumps({"crl": pem}).encode(),
                )
        elif action.kind == "reissue-vecs":
            entries.append((action.detail["store"], action.detail["alias"]))
        elif action.kind in ("vmdir-unpublish", "clear-vecs-store"):
            entries += [(action.target, alias) for alias in action.detail.get("aliases", [])]
    found = await read_files(session, sorted(set(paths))) if paths else {}
    for path, state in found.items():
        secret = any(a.kind == "reissue-file" and node.path(a.detail["key"]) == path for a in actions)
        if state is None:
            rot.journal.backup(node.name, "file", path, existed=False)
        else:
            content, owner, group, mode = state
            rot.journal.backup(
                node.name,
                "file",
                path,
                existed=True,
                content=content,
                owner=owner,
                group=group,
                mode=mode,
                secret=secret,
            )
    for store, alias in entries:
        cert, key = await _vecs_entry(session, store, alias)
        rot.journal.backup(
            node.name,
            "vecs",
            f"{store}/{alias}",
            existed=cert is not None,
            content=json.dumps({"cert": cert, "key": key}).encode(),
            secret=True,
        )
    return {"files": len(found), "vecs_entries": len(entries)}


async def _vecs_entry(session: Session, store: str, alias: str) -> tuple[str | None, str | None]:
    _, split = await run(
        session, remote.vecs_backup_entry(session.node, store, alias), f"vecs {store}/{alias}"
    )
    cert = key = None
    for section in split.sections.get("c0", []):
        if not section.rc and "BEGIN CERTIFICATE" in section.text:
            cert = section.text[section.text.index("-----BEGIN") :].strip() + "\n"
    for section in split.sections.get("k0", []):
        if not section.rc and "PRIVATE KEY" in section.text:
            key = section.text[section.text.index("-----BEGIN") :].strip() + "\n"
    return cert, key


def _backup(
    rot: Rotation, node: str, kind: str, target: str
) -> tuple[bytes | None, str | None, str | None, str | None]:
    item = rot.journal.backup_of(node, kind, target)
    if item is None:
        raise CommandFailed(f"no backup of {target} in the journal; refusing to change it")
    return item.content, item.owner, item.group, item.mode


# --- trust -----------------------------------------------------------------------------------


async def add_anchor(rot: Rotation, session: Session, action: Action) -> dict[str, Any]:
    node, pem = session.node, rot.ca.cert_pem
    if action.detail["store_kind"] == "bundle":
        path = node.path(action.target)
        current = (await read_files(session, [path]))[path]
        if current is None:
            content, owner, group, mode = b"", None, None, "0644"
        else:
            content, owner, group, mode = current
        if rot.ca.sha256 not in _certificate_shas(content):
            joined = content + (b"" if not content or content.endswith(b"\n") else b"\n") + pem
            await run(session, remote.put_file(path, joined, owner, group, mode), f"write {path}")
        check = path
    else:
        check = node.path(f"{action.target.rstrip('/')}/sweeper-root-{rot.ca.sha256[:16]}.pem")
        rot.journal.backup(node.name, "file", check, existed=False)
        await run(session, remote.put_file(check, pem, None, None, "0644"), f"write {check}")
    written = (await read_files(session, [check]))[check]
    if written is None or rot.ca.sha256 not in _certificate_shas(written[0]):
        raise CommandFailed(f"{check}: the new root is not there after writing it")
    return {"path": check, "sha256": rot.ca.sha256}


async def vmdir_publish(rot: Rotation, session: Session, action: Action) -> dict[str, Any]:
    """Publish the new root to VMware Directory, refresh VECS, and see it in TRUSTED_ROOTS."""
    node = session.node
    rot.journal.backup(
        node.name,
        "vmdir",
        rot.ca.sha256,
        existed=False,
        content=json.dumps({"cert": rot.ca.cert_pem.decode()}).encode(),
    )
    if rot.ca.sha256 not in await _store_shas(session, "TRUSTED_ROOTS"):
        await _vmdir(rot, session, "publish", rot.ca.cert_pem)
    if rot.ca.sha256 not in await _store_shas(session, "TRUSTED_ROOTS"):
        raise CommandFailed("the new root is not in TRUSTED_ROOTS after publishing it")
    return {"sha256": rot.ca.sha256}


async def _vmdir(rot: Rotation, session: Session, verb: str, cert_pem: bytes) -> None:
    node = session.node
    work = node.path(f"{remote.PENDING_DIR}/vmdir-{secrets.token_hex(4)}")
    body = (
        remote.put_file(f"{work}/cert.pem", cert_pem, None, None, "0600")
        + 'echo "$T dircli d0"\n'
        + remote.vmdir(
            node,
            verb,
            f"{work}/cert.pem",
            node.sso_user or "administrator@vsphere.local",
            rot.sso_password(node),
        )
        + 'echo "$T refresh r0"\n'
        + remote.force_refresh(node)
        + remote.remove_tree(work)
    )
    _, split = await run(session, body, f"dir-cli trustedcert {verb}")
    error = _errors(split, "d0")
    if error and verb != "unpublish":  # unpublishing what is already gone is fine
        raise CommandFailed(f"dir-cli trustedcert {verb}: {error}")


async def _vecs_entries(session: Session, store: str) -> list[VecsEntry]:
    """Every entry of a VECS store, from one `vecs-cli entry list`."""
    _, split = await run(
        session, remote.vecs_entry_list(session.node, store, "e0"), f"vecs entry list {store}"
    )
    error = _errors(split, "e0")
    if error:
        raise CommandFailed(f"vecs-cli entry list --store {store}: {error}")
    return parse_entry_list("\n".join(s.text for s in split.sections.get("e0", [])))


async def _store_entries(session: Session, store: str) -> list[tuple[str, str, str]]:
    """(alias, entry type, sha256 of its certificate) for every entry of a VECS store."""
    found = []
    for entry in await _vecs_entries(session, store):
        shas = _certificate_shas(entry.pem.encode()) if entry.pem else []
        found.append((entry.alias, entry.entry_type, shas[0] if shas else ""))
    return found


async def _store_shas(session: Session, store: str) -> set[str]:
    return {sha for _, _, sha in await _store_entries(session, store)}


# --- reissue ---------------------------------------------------------------------------------


async def reissue_file(rot: Rotation, session: Session, action: Action) -> dict[str, Any]:
    """New key on the node, new leaf with the old subject and SANs, both swapped in atomically."""
    node = session.node
    cert_path, key_path = node.path(action.target), node.path(action.detail["key"])
    old_cert, owner, group, mode = _backup(rot, node.name, "file", cert_path)
    _, key_owner, key_group, key_mode = _backup(rot, node.name, "file", key_path)
    ders = [b.der for b in pem_blocks(old_cert or b"") if b.label == "CERTIFICATE"]
    if not ders:
        raise CommandFailed(f"{action.target}: the backed-up certificate cannot be read")
    pending = remote.pending_key_path(key_path)
    public_pem = await _pending_key(session, pending, action.detail.get("key_type", "RSA"))
    new_pem = await asyncio.to_thread(rotation.reissue, ders[0], public_pem, rot.ca, rot.leaf_days)
    new_sha = rotation.certificate_sha256(new_pem)
    rot.journal.record_issued(node.name, action.target, rotation.certificate_serial(new_pem), new_sha)
    new_key_mode = "0400" if key_mode == "0400" else "0600"
    current = (await read_files(session, [cert_path]))[cert_path]
    if current is None or new_sha not in _certificate_shas(current[0]):
        body = remote.install_leaf(
            cert_path,
            new_pem,
            (owner, group, mode or "0644"),
            key_path,
            pending,
            (key_owner, key_group, new_key_mode),
        )
        await run(session, body, f"install {action.target}")
    await _verify_leaf(session, action, new_sha, new_key_mode)
    return {"new_sha256": new_sha, "old_sha256": action.detail["old_sha256"], "key_mode": new_key_mode}


async def _pending_key(session: Session, pending: str, key_type: str) -> bytes:
    """The new key's public half; made on the node with openssl, or here and pushed, never on disk here."""
    _, split = await run(session, remote.has_openssl(), "look for openssl")
    if "tool" in {s.kind for sections in split.sections.values() for s in sections}:
        _, split = await run(session, remote.ensure_pending_key(pending, key_type), "generate the new key")
        text = "\n".join(s.text for s in split.sections.get("p0", []))
        if "BEGIN PUBLIC KEY" not in text:
            raise CommandFailed("openssl on the node did not produce a key")
        return text[text.index("-----BEGIN PUBLIC KEY-----") :].encode()
    kind = "ec-p256" if key_type.startswith("EC") else "rsa2048"
    private_pem = rotation.generate_private_key_pem(kind)
    await run(session, remote.put_file(pending, private_pem, None, None, "0600"), "push the new key")
    return rotation.public_key_pem_of(private_pem)


async def _verify_leaf(session: Session, action: Action, new_sha: str, key_mode: str) -> None:
    spec = StoreSpec("pem", "leaf", cert=action.target, key=action.detail["key"])
    probe = replace(session.node, stores=(spec,))
    token = "@@SWEEPER-" + secrets.token_hex(8)
    result = await session.run_script(stores.read_script(probe, token), timeout=session.node.deadline)
    read = await asyncio.to_thread(stores.parse, probe, token, result.stdout)
    cert = read.certificates[0] if read.certificates else None
    if cert is None or cert.facts.sha256 != new_sha:
        raise CommandFailed(f"{action.target}: the new certificate is not in place after installing it")
    if cert.key is None or cert.key.matches is not True or cert.key.mode != key_mode:
        raise CommandFailed(f"{action.detail['key']}: the new key does not match or has the wrong mode")


async def reissue_vecs(rot: Rotation, session: Session, action: Action) -> dict[str, Any]:
    """Replace one VECS certificate+key entry (Machine SSL, a solution user, SMS...)."""
    node = session.node
    store, alias = action.detail["store"], action.detail["alias"]
    content, *_ = _backup(rot, node.name, "vecs", f"{store}/{alias}")
    old = json.loads(content or b"{}").get("cert") or ""
    ders = [b.der for b in pem_blocks(old.encode()) if b.label == "CERTIFICATE"]
    if not ders:
        raise CommandFailed(f"{store}/{alias}: the backed-up certificate cannot be read")
    work = node.path(f"{remote.PENDING_DIR}/{_safe(store)}__{_safe(alias)}")
    public_pem = await _pending_key(session, f"{work}/key.pem", "RSA")
    new_pem = await asyncio.to_thread(rotation.reissue, ders[0], public_pem, rot.ca, rot.leaf_days)
    new_sha = rotation.certificate_sha256(new_pem)
    rot.journal.record_issued(node.name, action.target, rotation.certificate_serial(new_pem), new_sha)
    entries = {a: sha for a, _, sha in await _store_entries(session, store)}
    if entries.get(alias) != new_sha:
        _, split = await run(
            session, remote.vecs_replace_entry(node, store, alias, work, new_pem), "vecs-cli create"
        )
    entries = {a: sha for a, _, sha in await _store_entries(session, store)}
    if entries.get(alias) != new_sha:
        raise CommandFailed(f"vecs {store}/{alias}: the new certificate is not there after replacing it")
    _, split = await run(session, remote.vecs_key_public(node, store, alias), "vecs-cli getkey")
    try:
        spki = spki_sha256_from_openssl_output("\n".join(s.text for s in split.sections.get("k0", [])))
    except ParseError as exc:
        raise CommandFailed(f"vecs {store}/{alias}: {exc}") from None
    if spki != spki_sha256_from_openssl_output(public_pem.decode()):
        raise CommandFailed(f"vecs {store}/{alias}: the stored key is not the new certificate's")
    await run(session, remote.remove_tree(work), "clean up")
    return {"new_sha256": new_sha, "old_sha256": action.detail["old_sha256"]}


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


async def restart(rot: Rotation, session: Session, action: Action) -> dict[str, Any]:
    _, split = await run(session, remote.run_command(action.detail["command"]), "restart")
    status = next(
        (s.store_id for sections in split.sections.values() for s in sections if s.kind == "status"), "?"
    )
    if status != "0":
        raise CommandFailed(f"restart command exited with status {status}: {action.detail['command']}")
    return {"command": action.detail["command"]}


async def verify_tls(rot: Rotation, session: Session, action: Action) -> dict[str, Any]:
    """A real TLS handshake must present one of the node's new certificates."""
    node = session.node
    expected = {s.detail.get("new_sha256") for s in rot.journal.steps("reissue") if s.node == node.name}
    host, port = action.detail["host"], int(action.detail["port"])
    served = ""
    for _ in range(20):  # the service may still be coming back from its restart
        try:
            if node.jump:  # we cannot reach it directly: go through the node's own connection
                async with session.forward(host, port) as local_port:
                    served = await _served_certificate("127.0.0.1", local_port, host)
            else:
                served = await _served_certificate(host, port, host)
        except (OSError, ssl.SSLError, TimeoutError):
            served = ""
        if served in expected:
            return {"served_sha256": served}
        await asyncio.sleep(0.5)
    raise CommandFailed(f"TLS on {host}:{port} serves {served or 'nothing'}, not the new certificate")


async def _served_certificate(host: str, port: int, server_name: str) -> str:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we compare the exact certificate instead
    opening = asyncio.open_connection(host, port, ssl=context, server_hostname=server_name)
    reader, writer = await asyncio.wait_for(opening, 5)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    return hashlib.sha256(der).hexdigest()


# --- purge -----------------------------------------------------------------------------------


async def remove_anchors(rot: Rotation, session: Session, action: Action) -> dict[str, Any]:
    """Rewrite a bundle (or the files of a folder) without the removed certificates."""
    node = session.node
    doomed = set(action.detail["sha256"])
    paths = {node.path(p): p for p in action.detail["files"]}
    removed, body = 0, ""
    for path, current in (await read_files(session, list(paths))).items():
        if current is None:
            continue
        content, owner, group, mode = current
        blocks = [b for b in pem_blocks(content) if b.label == "CERTIFICATE"]
        keep = [b for b in blocks if hashlib.sha256(b.der).hexdigest() not in doomed]
        if len(keep) == len(blocks) and (blocks or content.strip()):
            continue
        removed += len(blocks) - len(keep)
        if keep or action.detail["store_kind"] == "bundle":
            body += remote.put_file(
                path, b"".join(rotation.der_to_pem(b.der) for b in keep), owner, group, mode
            )
        else:
            body += remote.remove_file(path)
    if body:
        await run(session, body, f"purge {action.target}")
    for path, after in (await read_files(session, list(paths))).items():
        if after is not None and doomed.intersection(_certificate_shas(after[0])):
            raise CommandFailed(f"{paths[path]}: a removed certificate is still there")
    return {"removed": removed}


async def vmdir_unpublish(rot: Rotation, session: Session, action: Action) -> dict[str, Any]:
    """Unpublish each removed root from VMware Directory and delete it from VECS, so it stays gone."""
    node = session.node
    doomed = set(action.detail["sha256"])
    for item in rot.journal.backups(node.name):
        if item.kind != "vecs" or not item.target.startswith("TRUSTED_ROOTS/") or not item.content:
            continue
        cert = json.loads(item.content).get("cert") or ""
        if set(_certificate_shas(cert.encode())) & doomed:
            await _vmdir(rot, session, "unpublish", cert.encode())
    for alias, _, sha in await _store_entries(session, "TRUSTED_ROOTS"):
        if sha in doomed:
            await run(
                session,
                remote.vecs_delete_entry(node, "TRUSTED_ROOTS", alias) + remote.force_refresh(node),
                "vecs-cli entry delete",
            )
    left = doomed & await _store_shas(session, "TRUSTED_ROOTS")
    if left:
        raise CommandFailed(f"TRUSTED_ROOTS still holds {len(left)} removed root(s) after the purge")
    return {"removed": sorted(doomed)}


async def clear_vecs_store(rot: Rotation, session: Session, action: Action) -> dict[str, Any]:
    """Empty a BACKUP_STORE: certificate-manager keeps old certificates and keys there."""
    node = session.node
    aliases = [alias for alias, _, _ in await _store_entries(session, action.target)]
    if aliases:
        body = "".join(remote.vecs_delete_entry(node, action.target, a) for a in aliases)
        await run(session, body, f"clear {action.target}")
    if await _store_entries(session, action.target):
        raise CommandFailed(f"{action.target} is not empty after clearing it")
    return {"removed": aliases}


async def remove_crls(rot: Rotation, session: Session, action: Action) -> dict[str, Any]:
    """Delete CRL files whose every CRL was signed by a removed CA."""
    paths = [session.node.path(p) for p in action.detail["files"]]
    await run(session, "".join(remote.remove_file(p) for p in paths), "remove CRLs")
    left = [p for p, state in (await read_files(session, paths)).items() if state is not None]
    if left:
        raise CommandFailed(f"{left[0]}: still there after removing it")
    return {"removed": action.detail["files"]}


async def delete_vecs_crls(rot: Rotation, session: Session, action: Action) -> dict[str, Any]:
    """Delete VECS CRL entries of removed roots (their roots are unpublished first, so they stay gone)."""
    node, aliases = session.node, action.detail["aliases"]
    body = "".join(remote.vecs_delete_entry(node, action.target, a, quiet=True) for a in aliases)
    await run(session, body + remote.force_refresh(node), f"delete CRLs from {action.target}")
    left = set(aliases) & {alias for alias, _, _ in await _store_entries(session, action.target)}
    if left:
        raise CommandFailed(f"{action.target}: {len(left)} CRL(s) came back after deleting them")
    return {"removed": aliases}


def serials_to_revoke(rot: Rotation) -> list[str]:
    """What the rotation CA revokes: certificates it issued that a retry replaced before they
    were ever verified in place, and, when it is the CA that issued the old leaves (an
    enterprise CA re-issuing), those old leaves."""
    in_place = {s.detail.get("new_sha256") for s in rot.journal.steps("reissue") if s.state == "done"}
    superseded = [serial for serial, sha in rot.journal.issued() if sha not in in_place]
    old = [
        a.detail["old_serial"]
        for a in rot.plan.actions
        if a.phase == "reissue" and a.detail.get("old_issuer") == rot.ca.subject and "old_serial" in a.detail
    ]
    return sorted(set(superseded + old))


async def publish_crl(rot: Rotation, session: Session, action: Action) -> dict[str, Any]:
    """Put the rotation CA's CRL into one of the node's CRL stores, and see it there."""
    node = session.node
    serials = serials_to_revoke(rot)
    crl = await asyncio.to_thread(rotation.revocation_list, rot.ca, serials)
    if action.detail["store_kind"] == "dir":
        path = node.path(f"{action.target.rstrip('/')}/sweeper-{rot.ca.sha256[:16]}.crl.pem")
        rot.journal.backup(node.name, "file", path, existed=False)
        await run(session, remote.put_file(path, crl, None, None, "0644"), f"write {path}")
        written = (await read_files(session, [path]))[path]
        if written is None or written[0] != crl:
            raise CommandFailed(f"{path}: the CRL is not there after writing it")
        return {"path": path, "revoked": serials}
    await _vmdir(rot, session, "publish-crl", crl)
    ours = await _crl_aliases_of(session, rot.ca.subject)
    if not ours:
        raise CommandFailed("TRUSTED_ROOT_CRLS holds no CRL of the new root after publishing it")
    for alias in ours:
        rot.journal.backup(node.name, "vecs", f"TRUSTED_ROOT_CRLS/{alias}", existed=False)
    return {"aliases": ours, "revoked": serials}


async def _crl_aliases_of(session: Session, issuer: str) -> list[str]:
    """Aliases of the TRUSTED_ROOT_CRLS entries whose CRL the given issuer signed."""
    return [
        entry.alias
        for entry in await _vecs_entries(session, "TRUSTED_ROOT_CRLS")
        for block in pem_blocks(entry.pem.encode())
        if block.label == "X509 CRL" and crl_issuer(block.der) == issuer
    ]


HANDLERS: dict[str, Handler] = {
    "add-anchor": add_anchor,
    "vmdir-publish": vmdir_publish,
    "reissue-file": reissue_file,
    "reissue-vecs": reissue_vecs,
    "restart": restart,
    "verify-tls": verify_tls,
    "remove-anchors": remove_anchors,
    "vmdir-unpublish": vmdir_unpublish,
    "clear-vecs-store": clear_vecs_store,
    "remove-crls": remove_crls,
    "delete-vecs-crls": delete_vecs_crls,
    "publish-crl": publish_crl,
}
