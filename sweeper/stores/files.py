"""Stores that are files on the node: `pem` (cert + key), `bundle` (many blocks), `dir` (a folder)."""

from __future__ import annotations

from sweeper.model import KeyInfo, Node, StoreKind, StoreSpec
from sweeper.pki.parse import (
    ParseError,
    spki_sha256_from_private_key,
)
from sweeper.shell import Section, Tag, quote
from sweeper.stores.records import KeyLedger, StoreRead, add_file_contents

_FILE_FAILURES = {
    Tag.MISSING: ("missing", "no such file"),
    Tag.UNREADABLE: ("unreadable", "permission denied"),
    Tag.ISDIR: ("error", "is a directory, not a file"),
    Tag.NOTDIR: ("error", "is not a directory"),
    Tag.NOTFILE: ("error", "is not a regular file (a device, FIFO or socket is never read)"),
}


def calls(spec: StoreSpec, node: Node, sid: str) -> list[str]:
    if spec.kind is StoreKind.PEM:
        lines = [f"sw_file {sid} {quote(node.path(spec.cert or ''))}"]
        if spec.key:
            lines.append(f"sw_key {sid} {quote(node.path(spec.key))}")
        return lines
    if spec.kind is StoreKind.BUNDLE:
        return [f"sw_file {sid} {quote(node.path(spec.path or ''))}"]
    return [f"sw_dir {sid} {quote(node.path(spec.path or ''))}"]


def collect(spec: StoreSpec, node: Node, sections: list[Section], keys: KeyLedger) -> list[StoreRead]:
    read = StoreRead(label=spec.label, kind=spec.kind, role=spec.role)
    key = _key_info(node, sections, keys)
    skipped = 0
    seen: set[bytes] = set()
    for section in sections:
        path = _node_path(node, section.args)
        if section.tag in _FILE_FAILURES:
            status, why = _FILE_FAILURES[section.tag]
            read.fail(status, f"{path}: {why}")
        elif section.tag is Tag.ODDNAME:
            read.fail("error", f"{_node_path(node, section.text)}: a file name with a line break is not read")
        elif section.tag is Tag.FILE:
            data = section.data
            if data is None:
                read.fail("error", f"{path}: {section.problem or 'not read'}")
                continue
            if spec.kind is StoreKind.DIR and data in seen:
                continue  # the same file reached through a symlink
            seen.add(data)
            held = add_file_contents(
                read, node.name, path, data, key=key, must_hold_certificates=spec.kind is not StoreKind.DIR
            )
            skipped += not held
    if spec.kind is StoreKind.DIR and read.status == "ok" and skipped:
        read.error = f"{skipped} file(s) held no certificate or CRL and were skipped"
    return [read]


def _key_info(node: Node, sections: list[Section], keys: KeyLedger) -> KeyInfo | None:
    """What the node told us about the leaf's key: mode, owner, and its public half."""
    info: dict[str, str | None] = {}
    for section in sections:
        if section.tag is Tag.KEYMISSING:
            return KeyInfo(path=_node_path(node, section.args), error="key file is missing")
        if section.tag is Tag.KEYMETA:
            meta = section.meta
            info["path"] = _node_path(node, section.args)
            if meta is not None:
                info.update(mode=meta.mode, owner=meta.owner, group=meta.group)
        elif section.tag is Tag.KEYUNREADABLE:
            info["error"] = "key file is not readable by this user"
        elif section.tag is Tag.PUBKEY:
            try:
                info["spki_sha256"] = keys.resolve(section.text)
            except ParseError as exc:
                info["error"] = str(exc)
        elif section.tag is Tag.KEYFILE:
            try:
                info["spki_sha256"] = spki_sha256_from_private_key(section.decode_base64())
            except (ParseError, ValueError) as exc:
                info["error"] = str(exc)
    if "path" not in info:
        return None
    return KeyInfo(
        path=info["path"] or "",
        mode=info.get("mode"),
        owner=info.get("owner"),
        group=info.get("group"),
        spki_sha256=info.get("spki_sha256"),
        error=info.get("error"),
    )


def _node_path(node: Node, real_path: str) -> str:
    """Show paths as the node knows them, without the inventory's `root` prefix."""
    root = node.root.rstrip("/")
    if root and real_path.startswith(root + "/"):
        return real_path[len(root) :]
    return real_path
