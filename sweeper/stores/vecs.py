"""vCenter VECS stores, read through `vecs-cli` on the node: one `entry list` per store.

Entry lists are read without `--text` so the certificates arrive as PEM. Private keys are
reduced to their public half on the node (`entry getkey | openssl pkey -pubout`), so key
material never crosses the wire; secret-key entries are counted, never read.
"""

from __future__ import annotations

from dataclasses import dataclass

from sweeper.model import CrlRecord, KeyInfo, Node, StoreKind, StoreSpec, vecs_label
from sweeper.pki.parse import ParseError, pem_blocks
from sweeper.platforms.vcsa import VECS_CLI, store_role
from sweeper.shell import Section, Tag, quote
from sweeper.stores.records import KeyLedger, StoreRead, certificate_record


@dataclass(frozen=True, slots=True)
class VecsEntry:
    alias: str
    entry_type: str
    pem: str


def calls(spec: StoreSpec, node: Node, sid: str) -> list[str]:
    only = quote(spec.store) if spec.store else "''"
    return [f"sw_vecs {sid} {quote(node.path(VECS_CLI))} {only}"]


def parse_entry_list(text: str) -> list[VecsEntry]:
    """Parse `vecs-cli entry list --store S` output (tab-separated `Key :\\tvalue` lines)."""
    entries: list[VecsEntry] = []
    alias = entry_type = None
    pem_lines: list[str] = []
    in_cert = False

    def flush() -> None:
        if alias is not None:
            entries.append(VecsEntry(alias, entry_type or "", "\n".join(pem_lines)))

    for line in text.splitlines():
        if line.startswith("Alias :"):
            flush()
            alias, entry_type, pem_lines, in_cert = line.split("\t", 1)[-1].strip(), None, [], False
        elif line.startswith("Entry type :"):
            entry_type = line.split("\t", 1)[-1].strip()
        elif line.startswith("Certificate :"):
            in_cert = True
            pem_lines.append(line.split("\t", 1)[-1])
        elif in_cert:
            if not line.strip():
                in_cert = False
            else:
                pem_lines.append(line)
    flush()
    return entries


def collect(spec: StoreSpec, node: Node, sections: list[Section], keys: KeyLedger) -> list[StoreRead]:
    """One StoreRead per VECS store the node reported."""
    reads: list[StoreRead] = []
    overall = StoreRead(label=spec.label, kind=StoreKind.VECS, role=spec.role)
    public_keys = _public_keys(sections, keys)
    for section in sections:
        if section.tag is Tag.MISSING:
            overall.fail("missing", f"vecs-cli not found at {section.args}")
        elif section.tag is Tag.VECSLIST and section.rc:
            overall.fail("error", _vecs_error("store list", section))
        elif section.tag is Tag.VECSSTORE:
            reads.append(_store(node, section, public_keys))
    return reads if overall.status == "ok" else [overall, *reads]


def _store(node: Node, section: Section, public_keys: dict[tuple[str, str], KeyInfo]) -> StoreRead:
    name = section.args
    read = StoreRead(label=vecs_label(name), kind=StoreKind.VECS, role=store_role(name))
    if section.rc:
        read.fail("error", _vecs_error(f"entry list --store {name}", section))
        return read
    for entry in parse_entry_list(section.text):
        blocks = pem_blocks(entry.pem.encode()) if entry.pem else []
        for block in blocks:
            if block.label == "X509 CRL":
                read.crls.append(
                    CrlRecord(
                        source=f"{node.name}:{read.label}:{entry.alias}",
                        der=block.der,
                        node=node.name,
                        store=read.label,
                        entry=entry.alias,
                    )
                )
            elif block.label == "CERTIFICATE":
                try:
                    read.certificates.append(
                        certificate_record(
                            node.name,
                            read.label,
                            entry.alias,
                            read.role,
                            block.der,
                            entry_type=entry.entry_type,
                            key=public_keys.get((name, entry.alias)),
                        )
                    )
                except ParseError as exc:
                    read.fail("corrupt", f"{entry.alias}: {exc}")
                break  # the entry's own certificate comes first; a chain may follow
    return read


def _public_keys(sections: list[Section], ledger: KeyLedger) -> dict[tuple[str, str], KeyInfo]:
    keys: dict[tuple[str, str], KeyInfo] = {}
    for section in sections:
        if section.tag is not Tag.VECSKEY:
            continue
        store, _, alias = section.args.partition("\t")
        label = f"{vecs_label(store)}/{alias}"
        try:
            spki = ledger.resolve(section.text)
            keys[(store, alias)] = KeyInfo(path=label, spki_sha256=spki)
        except ParseError:
            keys[(store, alias)] = KeyInfo(path=label, error="vecs-cli entry getkey gave no usable key")
    return keys


def _vecs_error(verb: str, section: Section) -> str:
    return f"vecs-cli {verb}: {section.error()}"
