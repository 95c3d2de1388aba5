"""The incident's inputs (scan --crl/--ioc/--compromised-ca/--ca/--expected-roots/--baseline), frozen.

Everything is read and checked before any node is contacted, so a typo in an IOC file
stops the run with one line naming the file and line (exit 2) instead of a sweep that
silently matched nothing. Private keys in IOC files are reduced to the SHA-256 of their
public half on the spot; no key material is kept or echoed in an error.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sweeper.errors import BadInput, CorruptInput, os_reason
from sweeper.model import CrlRecord, InputRef
from sweeper.pki.crl import crl_facts
from sweeper.pki.keys import load_blocklist
from sweeper.pki.parse import (
    CERT_LABELS,
    CRL_LABELS,
    ParseError,
    certificate_facts,
    pem_blocks,
    spki_sha256_from_private_key,
    spki_sha256_from_public_pem,
    split_certificates,
)
from sweeper.report import schema

IndicatorKind = Literal["sha256", "spki", "serial"]
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX = re.compile(r"[0-9a-f]+")
_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")
_PUBLIC_LABELS = {"PUBLIC KEY", "RSA PUBLIC KEY"}
_PRIVATE_LABELS = {"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "DSA PRIVATE KEY"}


@dataclass(frozen=True, slots=True)
class Indicator:
    """One IOC: a certificate fingerprint, an SPKI hash, or a serial (with its issuer's fingerprint)."""

    kind: IndicatorKind
    value: str
    source: str
    issuer: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class SourcedCert:
    """A certificate given on the command line, and where it came from."""

    der: bytes = field(repr=False)
    source: str


@dataclass(frozen=True, slots=True)
class ExpectedRoots:
    """The trust anchors the fleet should hold, by SHA-256 (with the certificates when a bundle gave them).

    A bundle (`--expected-roots`) names the same roots for every node. A baseline report
    names each node's own (`per_node`): a root planted on one node before the baseline was
    taken is expected there only. `sha256` is then what a node the baseline does not
    know is held to: the roots the baseline found on more than one node.
    """

    source: str
    sha256: frozenset[str]
    certificates: tuple[bytes, ...] = field(default=(), repr=False)
    per_node: Mapping[str, frozenset[str]] | None = None

    def for_node(self, node: str) -> frozenset[str]:
        """The roots this node is expected to trust."""
        if self.per_node is not None and node in self.per_node:
            return self.per_node[node]
        return self.sha256

    @property
    def anywhere(self) -> frozenset[str]:
        """Every root expected on some node."""
        return self.sha256.union(*(self.per_node or {}).values())


@dataclass(frozen=True, slots=True)
class Incident:
    """Everything the rules know about this incident beyond what the nodes hold."""

    crls: tuple[CrlRecord, ...] = ()
    issuers: tuple[SourcedCert, ...] = ()
    indicators: tuple[Indicator, ...] = ()
    compromised_cas: tuple[SourcedCert, ...] = ()
    expected_roots: ExpectedRoots | None = None
    badkeys_blocklist: Path | None = None
    inputs: tuple[InputRef, ...] = ()
    """Every file read, with its SHA-256: what the report records so the verdicts can be traced."""

    @property
    def certificates(self) -> tuple[bytes, ...]:
        """Every certificate the inputs brought: issuers for CRLs and OCSP, compromised CAs, roots."""
        given = [c.der for c in (*self.issuers, *self.compromised_cas)]
        roots = self.expected_roots.certificates if self.expected_roots else ()
        return (*given, *roots)


def load_incident(
    *,
    crls: Sequence[Path] = (),
    iocs: Sequence[Path] = (),
    compromised_cas: Sequence[Path] = (),
    cas: Sequence[Path] = (),
    expected_roots: Path | None = None,
    baseline: Path | None = None,
    badkeys_blocklist: Path | None = None,
) -> Incident:
    """Read and check every input. :raises BadInput: (CorruptInput naming file and line) on bad input."""
    if expected_roots is not None and baseline is not None:
        raise BadInput("give --expected-roots or --baseline, not both")
    crl_records: list[CrlRecord] = []
    issuers: list[SourcedCert] = []
    for path in crls:
        found_crls, found_certs = load_crl_input(path)
        crl_records.extend(found_crls)
        issuers.extend(found_certs)
    for path in cas:
        issuers.extend(load_certificates(path))
    if badkeys_blocklist is not None:
        try:
            load_blocklist(badkeys_blocklist)
        except ParseError as exc:
            raise CorruptInput(badkeys_blocklist, str(exc)) from None
    roots = None
    if expected_roots is not None:
        roots = load_expected_roots(expected_roots)
    elif baseline is not None:
        roots = load_baseline(baseline)
    given = {
        "crl": crls,
        "ioc": iocs,
        "compromised-ca": compromised_cas,
        "ca": cas,
        "expected-roots": [expected_roots] if expected_roots else [],
        "baseline": [baseline] if baseline else [],
        "badkeys-blocklist": [load_blocklist(badkeys_blocklist).path] if badkeys_blocklist else [],
    }
    return Incident(
        inputs=tuple(ref for kind, paths in given.items() for p in paths for ref in input_refs(kind, p)),
        crls=tuple(crl_records),
        issuers=tuple(issuers),
        indicators=tuple(i for path in iocs for i in load_iocs(path)),
        compromised_cas=tuple(c for path in compromised_cas for c in load_certificates(path)),
        expected_roots=roots,
        badkeys_blocklist=badkeys_blocklist,
    )


def input_refs(kind: str, path: Path) -> list[InputRef]:
    """A file's (or each file of a folder's) kind, absolute path and SHA-256, in the order read."""
    files = _folder_files(path) if path.is_dir() else [path]
    return [InputRef(kind, str(file.resolve()), file_sha256(file)) for file in files]


def file_sha256(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise CorruptInput(path, os_reason(exc)) from None


def _folder_files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CorruptInput(path, "no such file") from None
    except IsADirectoryError:
        raise CorruptInput(path, "is a directory, not a file") from None
    except OSError as exc:
        raise CorruptInput(path, os_reason(exc)) from None


def load_crl_input(path: Path) -> tuple[list[CrlRecord], list[SourcedCert]]:
    """CRLs (PEM or DER) from a file or every file of a folder; certificates found beside them are issuers."""
    files = _folder_files(path) if path.is_dir() else [path]
    crls: list[CrlRecord] = []
    certs: list[SourcedCert] = []
    for file in files:
        found_crls, found_certs = _crl_file(file)
        crls.extend(CrlRecord(source=str(file), der=der) for der in found_crls)
        certs.extend(SourcedCert(der, str(file)) for der in found_certs)
    if not crls:
        raise CorruptInput(path, "holds no CRL")
    return crls, certs


def _crl_file(path: Path) -> tuple[list[bytes], list[bytes]]:
    data = _read(path)
    try:
        if b"-----BEGIN" in data:
            blocks = pem_blocks(data)
            crls = [b.der for b in blocks if b.label.encode() in CRL_LABELS]
            certs = [b.der for b in blocks if b.label.encode() in CERT_LABELS]
        else:
            crls, certs = _der_crl_or_certificate(data)
        for der in crls:
            crl_facts(der)
        for der in certs:
            certificate_facts(der)
    except ParseError as exc:
        raise CorruptInput(path, str(exc)) from None
    if not crls and not certs:
        raise CorruptInput(path, "holds no CRL or certificate")
    return crls, certs


def _der_crl_or_certificate(data: bytes) -> tuple[list[bytes], list[bytes]]:
    try:
        crl_facts(data)
        return [data], []
    except ParseError:
        pass
    try:
        return [], split_certificates(data)
    except ParseError:
        raise ParseError("neither a CRL nor a certificate (PEM or DER)") from None


def load_certificates(path: Path) -> list[SourcedCert]:
    """Every certificate in a PEM bundle or a DER file."""
    try:
        ders = split_certificates(_read(path))
        for der in ders:
            certificate_facts(der)
    except ParseError as exc:
        raise CorruptInput(path, str(exc)) from None
    if not ders:
        raise CorruptInput(path, "holds no certificate")
    return [SourcedCert(der, str(path)) for der in ders]


def load_expected_roots(path: Path) -> ExpectedRoots:
    """The roots a bundle names: each certificate in it, by SHA-256."""
    certs = load_certificates(path)
    return ExpectedRoots(
        str(path), frozenset(certificate_facts(c.der).sha256 for c in certs), tuple(c.der for c in certs)
    )


def load_baseline(path: Path) -> ExpectedRoots:
    """Each swept node's trust-store certificates (`role` "trust") in a previous sweep's JSON report.

    Per node: a root one node held then is expected on that node only (see ExpectedRoots).
    """
    report = schema.load(path)
    per_node = {
        node.name: frozenset(cert.sha256 for cert in node.certificates if cert.role == "trust")
        for node in report.nodes
        if node.status == "ok"
    }
    holders = Counter(sha256 for roots in per_node.values() for sha256 in roots)
    if not holders:
        raise CorruptInput(path, "lists no trust-store certificate: every anchor would look rogue")
    shared = {sha256 for sha256, count in holders.items() if count > 1 or len(per_node) == 1}
    return ExpectedRoots(str(path), frozenset(shared), per_node=per_node)


def baseline_of(report: schema.Report, source: str) -> ExpectedRoots:
    """The anchors a sweep found, as the roots expected from then on on every node."""
    roots = {cert.sha256 for node in report.nodes for cert in node.certificates if cert.role == "trust"}
    if not roots:
        raise CorruptInput(source, "lists no trust-store certificate: every anchor would look rogue")
    return ExpectedRoots(source, frozenset(roots))


def reload_incident(inputs: Iterable[InputRef | schema.Input]) -> Incident:
    """The same incident again from the files a run recorded, each checked against its SHA-256, so
    a later run (a rotation's verify sweep) judges by exactly what the first one judged by.

    :raises CorruptInput: a file is gone or changed since it was recorded (one line, exit 2).
    """
    paths: dict[str, list[Path]] = {}
    for item in inputs:
        path = Path(item.path)
        if file_sha256(path) != item.sha256:
            raise CorruptInput(path, f"changed since the run that recorded it as its --{item.kind} input")
        paths.setdefault(item.kind, []).append(path)

    def one(kind: str) -> Path | None:
        return next(iter(paths.get(kind, [])), None)

    return load_incident(
        crls=paths.get("crl", []),
        iocs=paths.get("ioc", []),
        compromised_cas=paths.get("compromised-ca", []),
        cas=paths.get("ca", []),
        expected_roots=one("expected-roots"),
        baseline=one("baseline"),
        badkeys_blocklist=one("badkeys-blocklist"),
    )


def load_iocs(path: Path) -> list[Indicator]:
    """Indicators of one IOC file (format in DESIGN.md); a malformed line names file and line."""
    try:
        text = _read(path).decode("utf-8")
    except UnicodeDecodeError:
        raise CorruptInput(path, "not UTF-8 text") from None
    return list(_indicators(path, text.splitlines()))


def _indicators(path: Path, lines: list[str]) -> Iterator[Indicator]:
    index = 0
    while index < len(lines):
        where = f"{path}:{index + 1}"
        begin = _BEGIN.search(lines[index])
        if begin:
            end = _block_end(lines, index, begin.group(1))
            if end is None:
                raise CorruptInput(where, f"PEM block '{begin.group(1)}' has no END line")
            block = "\n".join([lines[index][begin.start() :], *lines[index + 1 : end + 1]])
            yield from _pem_indicators(where, begin.group(1), block)
            index = end + 1
            continue
        line = lines[index].split("#", 1)[0].strip()
        if line:
            yield _line_indicator(where, line)
        index += 1


def _block_end(lines: list[str], start: int, label: str) -> int | None:
    marker = f"-----END {label}-----"
    return next((i for i in range(start, len(lines)) if marker in lines[i]), None)


def _pem_indicators(where: str, label: str, block: str) -> Iterable[Indicator]:
    try:
        if label in {b.decode() for b in CERT_LABELS}:
            (pem,) = pem_blocks(block.encode())
            facts = certificate_facts(pem.der)
            note = f"certificate {facts.subject}"
            return [
                Indicator("sha256", facts.sha256, where, note=note),
                Indicator("spki", facts.spki_sha256, where, note=f"public key of {note}"),
            ]
        if label in _PUBLIC_LABELS:
            return [Indicator("spki", spki_sha256_from_public_pem(block.encode()), where, note="public key")]
        if label in _PRIVATE_LABELS:
            spki = spki_sha256_from_private_key(block.encode())
            return [Indicator("spki", spki, where, note="public half of a private key")]
    except ParseError as exc:
        raise CorruptInput(where, str(exc)) from None
    if label == "ENCRYPTED PRIVATE KEY":
        raise CorruptInput(where, "encrypted private key: put its public key in the IOC file instead")
    raise CorruptInput(
        where, f"unsupported PEM block '{label}' (certificate, public or private key expected)"
    )


def _line_indicator(where: str, line: str) -> Indicator:
    """A fingerprint, `spki:<sha256>` or `serial:<hex> [issuer:<sha256>]`; the line is never echoed."""
    kind, _, rest = line.partition(":")
    kind = kind.strip().lower()
    if kind == "spki":
        return Indicator("spki", _sha256(where, rest, "spki"), where)
    if kind == "serial":
        serial_text, _, issuer_text = rest.strip().partition(" ")
        serial = _hex(serial_text).removeprefix("0x").lstrip("0") or "0"
        if not _HEX.fullmatch(serial):
            raise CorruptInput(where, "serial: needs a hexadecimal serial number")
        issuer = None
        if issuer_text.strip():
            label, _, value = issuer_text.strip().partition(":")
            if label.strip().lower() != "issuer":
                raise CorruptInput(
                    where, "after the serial only 'issuer:<sha256 of the issuer certificate>' may follow"
                )
            issuer = _sha256(where, value, "issuer")
        return Indicator("serial", serial, where, issuer=issuer)
    value = _hex(line)
    if _HEX64.fullmatch(value):
        return Indicator("sha256", value, where)
    raise CorruptInput(
        where, "not an indicator (SHA-256 fingerprint, spki:, serial: or a PEM block expected)"
    )


def _hex(text: str) -> str:
    return text.strip().replace(":", "").lower()


def _sha256(where: str, text: str, what: str) -> str:
    value = _hex(text)
    if not _HEX64.fullmatch(value):
        raise CorruptInput(where, f"{what}: needs a SHA-256 (64 hex digits, colons allowed)")
    return value
