"""Key custody: one key on several nodes, a key file that does not match its certificate or is exposed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from sweeper.detect import Context, finding, rule
from sweeper.detect.fleet import Fleet
from sweeper.model import CertRecord, Finding, Severity
from sweeper.platforms import is_identity

MAX_LISTED = 20
GROUP_OTHER_READ = 0o044


@rule("key-reuse", Severity.HIGH, "fleet")
def key_reuse(fleet: Fleet, context: Context) -> Iterator[Finding]:
    """The same public key is the identity of more than one node.

    Identities only (leaf certificates with their key, VECS private-key entries): a CA
    that sits in every trust store is shared on purpose and is not reuse.
    """
    holders: dict[str, list[CertRecord]] = defaultdict(list)
    for record in fleet.records:
        if is_identity(record):
            holders[record.facts.spki_sha256].append(record)
    for spki, records in holders.items():
        nodes = sorted({r.node for r in records})
        if len(nodes) < 2:
            continue
        for record in records:
            others = [n for n in nodes if n != record.node]
            yield finding(
                "key-reuse",
                record,
                f"same key as the identity of {len(others)} other node(s) ({', '.join(others[:3])}"
                f"{', …' if len(others) > 3 else ''}): {record.facts.subject}",
                spki_sha256=spki,
                other_nodes=others[:MAX_LISTED],
                nodes_total=len(nodes),
                locations=[
                    {"node": r.node, "store": r.store, "entry": r.entry, "sha256": r.facts.sha256}
                    for r in records[:MAX_LISTED]
                ],
            )


@rule("key-mismatch", Severity.HIGH, "cert")
def key_mismatch(record: CertRecord, context: Context) -> Iterator[Finding]:
    """A leaf whose private key does not match its certificate."""
    key = record.key
    if key is not None and key.matches is False:
        yield finding(
            "key-mismatch",
            record,
            f"private key {key.path} does not match the certificate: {record.facts.subject}",
            key_path=key.path,
            key_spki_sha256=key.spki_sha256,
            cert_spki_sha256=record.facts.spki_sha256,
        )


@rule("key-exposed", Severity.HIGH, "cert")
def key_exposed(record: CertRecord, context: Context) -> Iterator[Finding]:
    """A private key file readable by group or others."""
    key = record.key
    if key is None or not key.mode:
        return
    try:
        mode = int(key.mode, 8)
    except ValueError:
        return
    if mode & GROUP_OTHER_READ:
        yield finding(
            "key-exposed",
            record,
            f"private key {key.path} is readable by {_who(mode)} (mode {key.mode}): {record.facts.subject}",
            key_path=key.path,
            mode=key.mode,
            owner=key.owner,
            group=key.group,
        )


def _who(mode: int) -> str:
    readers = [name for bit, name in ((0o040, "group"), (0o004, "others")) if mode & bit]
    return " and ".join(readers)
