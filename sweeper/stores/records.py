"""Turn bytes read from a store into CertRecords and CrlRecords, plus the store's outcome."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from sweeper.model import CertRecord, CrlRecord, KeyInfo, Role, StoreKind, StoreResult
from sweeper.pki.parse import (
    ParseError,
    certificate_facts,
    spki_sha256_from_openssl_output,
    split_certificates,
    split_crls,
)


@dataclass(slots=True)
class StoreRead:
    """What one store contributed; mutable while a store module fills it."""

    label: str
    kind: StoreKind
    role: Role
    certificates: list[CertRecord] = field(default_factory=list)
    crls: list[CrlRecord] = field(default_factory=list)
    status: str = "ok"
    error: str | None = None
    more_errors: int = 0

    def fail(self, status: str, error: str) -> None:
        """Keep the first failure, which explains the others, and count the rest: a folder of
        several unreadable files says so, not only the first one's name."""
        if self.status == "ok":
            self.status, self.error = status, error
        else:
            self.more_errors += 1

    def result(self) -> StoreResult:
        more = f" (and {self.more_errors} more problem(s) in this store)" if self.more_errors else ""
        return StoreResult(
            label=self.label,
            kind=self.kind,
            role=self.role,
            status=self.status,
            error=self.error and self.error + more,
            certificates=len(self.certificates),
        )


@dataclass(slots=True)
class KeyLedger:
    """Public keys of a node's private keys: derived on the node now, or known from the key cache."""

    known: Mapping[str, str] = field(default_factory=dict)
    learned: dict[str, str] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)

    def resolve(self, text: str) -> str:
        """SPKI SHA-256 from a `hash <h>` line plus, when the key was new, openssl's output.

        :raises ParseError: when neither gives a public key
        """
        first, _, rest = text.partition("\n")
        key_hash = first.removeprefix("hash ").strip() if first.startswith("hash ") else ""
        if "BEGIN PUBLIC KEY" in rest:
            spki = spki_sha256_from_openssl_output(rest)
            if key_hash:
                self.learned[key_hash] = spki
                self.seen.add(key_hash)
            return spki
        if key_hash in self.known:
            self.seen.add(key_hash)
            return self.known[key_hash]
        return spki_sha256_from_openssl_output(rest or first)


def certificate_record(
    node: str,
    store: str,
    entry: str,
    role: str,
    der: bytes,
    entry_type: str | None = None,
    key: KeyInfo | None = None,
) -> CertRecord:
    facts = certificate_facts(der)
    if key is not None and key.spki_sha256 is not None:
        key = replace(key, matches=key.spki_sha256 == facts.spki_sha256)
    return CertRecord(node, store, entry, role, facts, entry_type=entry_type, key=key, der=der)


def add_file_contents(
    read: StoreRead,
    node: str,
    path: str,
    data: bytes,
    *,
    key: KeyInfo | None = None,
    must_hold_certificates: bool = True,
) -> bool:
    """Record every certificate and CRL in one file; False if it held neither."""
    try:
        crls = split_crls(data) if b"CRL" in data or not data.startswith(b"-----") else []
    except ParseError:
        crls = []
    try:
        ders = split_certificates(data)
    except ParseError as exc:
        if crls:
            ders = []
        elif must_hold_certificates:
            read.fail("corrupt", f"{path}: {exc}")
            return False
        else:
            return False
    read.crls.extend(
        CrlRecord(source=f"{node}:{path}", der=der, node=node, store=read.label, entry=path) for der in crls
    )
    for index, der in enumerate(ders, start=1):
        entry = path if len(ders) == 1 else f"{path}#{index}"
        try:
            record = certificate_record(
                node, read.label, entry, read.role, der, key=key if index == 1 else None
            )
        except ParseError as exc:
            read.fail("corrupt", f"{entry}: {exc}")
            continue
        read.certificates.append(record)
    return bool(ders or crls)
