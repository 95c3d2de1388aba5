"""Certificate paths and CRLs of every RFC 5280 revocation shape, made with the openssl CLI.

Certificates: `openssl x509 -new` (one run each), distribution points and key usages from
an extension file. CRLs: `openssl ca` writes neither indirect CRLs (certificateIssuer
entries), nor entry extensions of our choosing, nor delta CRLs, so each CRL's TBSCertList
is written as an ASN.1 generator config, encoded by `openssl asn1parse -genconf`, signed
by `openssl dgst -sign`, and encoded again with its signature around it. Nothing here uses
sweeper's own (cryptography-based) code. EC P-256 keys, from a small pool made once:
certificates of different names may share a key, which no revocation rule looks at.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .openssl_pki import openssl

ORG = "Sweeper Conformance"
KEY_POOL = 8

REASON_CODES = {
    "unspecified": 0,
    "keyCompromise": 1,
    "cACompromise": 2,
    "affiliationChanged": 3,
    "superseded": 4,
    "cessationOfOperation": 5,
    "certificateHold": 6,
    "removeFromCRL": 8,
    "privilegeWithdrawn": 9,
    "aACompromise": 10,
}
REASON_BITS = {  # ReasonFlags bit numbers (RFC 5280 §4.2.1.13)
    "keyCompromise": 1,
    "cACompromise": 2,
    "affiliationChanged": 3,
    "superseded": 4,
    "cessationOfOperation": 5,
    "certificateHold": 6,
    "privilegeWithdrawn": 7,
    "aACompromise": 8,
}
_OPENSSL_REASONS = {"cACompromise": "CACompromise", "aACompromise": "AACompromise"}
_USAGES = {
    "leaf": "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n",
    "ca": "basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n",
    "ca-no-crl-sign": "basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign\n",
    "crl-signer": "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, cRLSign\n",
}


@dataclass(frozen=True, slots=True)
class Point:
    """One CRL distribution point of a certificate; names are CNs under ORG, or a URI."""

    uri: str | None = None
    dn: str | None = None
    relative: str | None = None
    """A CN appended to the CRL issuer's name (nameRelativeToCRLIssuer)."""
    reasons: tuple[str, ...] = ()
    crl_issuer: str | None = None


@dataclass(frozen=True, slots=True)
class Partition:
    """An issuing distribution point: what part of its issuer's certificates a CRL is for."""

    uri: str | None = None
    dn: str | None = None
    relative: str | None = None
    only_user: bool = False
    only_ca: bool = False
    only_attribute: bool = False
    reasons: tuple[str, ...] = ()
    indirect: bool = False


@dataclass(frozen=True, slots=True)
class Entry:
    """One revoked serial; `certificate_issuer` (a CN) starts an indirect CRL's run of another CA."""

    serial: int
    reason: str | None = "keyCompromise"
    certificate_issuer: str | None = None
    unknown_critical: bool = False


@dataclass(frozen=True, slots=True)
class Made:
    """A certificate made here: its name in the case, CN, PEM path and DER bytes, key, serial."""

    name: str
    cn: str
    pem: Path
    der: bytes
    key: Path
    serial: int


class RevocationPki:
    """Makes certificates and CRLs in `directory`; `now` anchors every date."""

    def __init__(self, directory: Path, now: datetime | None = None) -> None:
        self.directory = directory
        self.now = now or datetime.now(UTC).replace(microsecond=0)
        directory.mkdir(parents=True, exist_ok=True)
        self.keys = [self._key(index) for index in range(KEY_POOL)]

    def _key(self, index: int) -> tuple[Path, Path]:
        key, public = self.directory / f"pool{index}.key", self.directory / f"pool{index}.pub"
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
        openssl("pkey", "-in", key, "-pubout", "-out", public)
        return key, public

    def certificate(
        self,
        name: str,
        cn: str,
        *,
        issuer: Made | None,
        key: int,
        serial: int,
        usage: str = "leaf",
        points: Sequence[Point] = (),
    ) -> Made:
        """`openssl x509 -new`: self-signed with pool key `key` (issuer None), or signed by `issuer`."""
        private, public = self.keys[key % KEY_POOL]
        pem = self.directory / f"{name}.crt"
        extensions = self.directory / f"{name}.ext"
        extensions.write_text(_extension_config(usage, points))
        args = ["x509", "-new", "-subj", f"/O={ORG}/CN={cn}", "-days", "365", "-sha256", "-out", pem]
        args += ["-set_serial", str(serial), "-extfile", extensions, "-extensions", "x"]
        if issuer is None:
            args += ["-key", private]
        else:
            args += ["-CA", issuer.pem, "-CAkey", issuer.key, "-force_pubkey", public]
        openssl(*args)
        return Made(name, cn, pem, pem_der(pem), private, serial)

    def crl(
        self,
        name: str,
        *,
        issuer_cn: str,
        signer: Made,
        number: int = 1,
        entries: Sequence[Entry] = (),
        partition: Partition | None = None,
        delta_base: int | None = None,
        stale: bool = False,
        unknown_critical: bool = False,
    ) -> Path:
        """A DER CRL named as `issuer_cn`'s, signed with `signer`'s key; its path."""
        this_update = self.now - (timedelta(days=30) if stale else timedelta(hours=1))
        next_update = self.now - timedelta(days=1) if stale else self.now + timedelta(days=30)
        config = _Asn1()
        extensions = [_extension("2.5.29.20", f"INTEGER:{number}")]
        if delta_base is not None:
            extensions.append(_extension("2.5.29.27", f"INTEGER:{delta_base}", critical=True))
        if partition is not None:
            extensions.append(_extension("2.5.29.28", _idp(config, partition), critical=True))
        if unknown_critical:
            extensions.append(_extension("1.3.6.1.4.1.55555.1", "NULL", critical=True))
        algorithm = f"SEQUENCE:{config.section(['OID:ecdsa-with-SHA256'])}"
        fields = ["INTEGER:1", algorithm]
        fields += [f"SEQUENCE:{_name(config, issuer_cn)}", _time(this_update), _time(next_update)]
        if entries:
            fields.append(f"SEQUENCE:{config.section([_entry(config, e, this_update) for e in entries])}")
        fields.append(f"EXPLICIT:0,SEQUENCE:{config.section([config.inline(e) for e in extensions])}")
        tbs = config.section(fields)
        signature = openssl("dgst", "-sha256", "-sign", signer.key, stdin=self._encode(config, tbs, name))
        crl = config.section([f"SEQUENCE:{tbs}", algorithm, f"FORMAT:HEX,BITSTRING:{signature.hex()}"])
        path = self.directory / f"{name}.crl"
        path.write_bytes(self._encode(config, crl, name))
        return path

    def _encode(self, config: _Asn1, root: str, name: str) -> bytes:
        """`openssl asn1parse -genconf`: the DER of section `root` (the same section encodes the same)."""
        genconf = self.directory / f"{name}.{root}.cnf"
        genconf.write_text(config.text(root))
        return openssl("asn1parse", "-genconf", genconf, "-out", "/dev/stdout", "-noout")


def pem_der(path: Path) -> bytes:
    """The DER inside the one PEM block openssl wrote."""
    lines = path.read_text().splitlines()
    return base64.b64decode("".join(line for line in lines if not line.startswith("-----")))


class _Asn1:
    """An `openssl asn1parse -genconf` file: named sections of ordered fields."""

    def __init__(self) -> None:
        self.sections: dict[str, list[str]] = {}

    def section(self, fields: Sequence[str]) -> str:
        name = f"s{len(self.sections)}"
        self.sections[name] = list(fields)
        return name

    def inline(self, fields: Sequence[str]) -> str:
        """A SEQUENCE of `fields`, as one field of another section."""
        return f"SEQUENCE:{self.section(fields)}"

    def text(self, root: str) -> str:
        lines = [f"asn1 = SEQUENCE:{root}"]
        for name, fields in self.sections.items():
            lines += ["", f"[{name}]", *(f"f{index} = {value}" for index, value in enumerate(fields))]
        return "\n".join(lines) + "\n"


def _name(config: _Asn1, cn: str) -> str:
    rdns = []
    for oid, value in (("organizationName", ORG), ("commonName", cn)):
        attribute = config.section([f"OID:{oid}", f"UTF8:{value}"])
        rdns.append(f"SET:{config.section([f'SEQUENCE:{attribute}'])}")
    return config.section(rdns)


def _general_names(config: _Asn1, uri: str | None, dn: str | None) -> str:
    names = [f"IMPLICIT:6,IA5:{uri}"] if uri else []
    names += [f"EXPLICIT:4,SEQUENCE:{_name(config, dn)}"] if dn else []
    return config.section(names)


def _idp(config: _Asn1, part: Partition) -> str:
    fields = []
    if part.uri or part.dn:
        full = f"IMPLICIT:0,SEQUENCE:{_general_names(config, part.uri, part.dn)}"
        fields.append(f"IMPLICIT:0,SEQUENCE:{config.section([full])}")
    elif part.relative:
        attribute = config.section(["OID:commonName", f"UTF8:{part.relative}"])
        rdn = f"IMPLICIT:1,SET:{config.section([f'SEQUENCE:{attribute}'])}"
        fields.append(f"IMPLICIT:0,SEQUENCE:{config.section([rdn])}")
    if part.only_user:
        fields.append("IMPLICIT:1,BOOLEAN:TRUE")
    if part.only_ca:
        fields.append("IMPLICIT:2,BOOLEAN:TRUE")
    if part.reasons:
        bits = ",".join(str(REASON_BITS[r]) for r in part.reasons)
        fields.append(f"IMPLICIT:3,FORMAT:BITLIST,BITSTRING:{bits}")
    if part.indirect:
        fields.append("IMPLICIT:4,BOOLEAN:TRUE")
    if part.only_attribute:
        fields.append("IMPLICIT:5,BOOLEAN:TRUE")
    return f"SEQUENCE:{config.section(fields)}"


def _entry(config: _Asn1, entry: Entry, when: datetime) -> str:
    extensions = []
    if entry.reason is not None:
        extensions.append(_extension("2.5.29.21", f"ENUMERATED:{REASON_CODES[entry.reason]}"))
    if entry.certificate_issuer is not None:
        names = _general_names(config, None, entry.certificate_issuer)
        extensions.append(_extension("2.5.29.29", f"SEQUENCE:{names}", critical=True))
    if entry.unknown_critical:
        extensions.append(_extension("1.3.6.1.4.1.55555.2", "NULL", critical=True))
    fields = [f"INTEGER:{entry.serial}", _time(when)]
    if extensions:
        fields.append(f"SEQUENCE:{config.section([config.inline(e) for e in extensions])}")
    return f"SEQUENCE:{config.section(fields)}"


def _extension(oid: str, value: str, critical: bool = False) -> list[str]:
    return [f"OID:{oid}", *(["BOOLEAN:TRUE"] if critical else []), f"OCTWRAP,{value}"]


def _time(when: datetime) -> str:
    if when.year < 2050:
        return f"UTCTIME:{when:%y%m%d%H%M%S}Z"
    return f"GENTIME:{when:%Y%m%d%H%M%S}Z"


def _extension_config(usage: str, points: Sequence[Point]) -> str:
    """An openssl extension file: section [x] with the usage and the distribution points."""
    lines = ["[x]", _USAGES[usage].rstrip("\n")]
    names: list[str] = []  # the DN and RDN sections the points refer to
    if points:
        lines.append("crlDistributionPoints = " + ", ".join(f"dp{i}" for i in range(len(points))))
    for index, point in enumerate(points):
        fields = []
        if point.uri:
            fields.append(f"fullname = URI:{point.uri}")
        if point.dn:
            fields.append(f"fullname = dirName:dp{index}_dn")
            names += _dn_section(f"dp{index}_dn", point.dn)
        if point.relative:
            fields.append(f"relativename = dp{index}_rel")
            names += ["", f"[dp{index}_rel]", f"CN = {point.relative}"]
        if point.reasons:
            fields.append("reasons = " + ", ".join(_OPENSSL_REASONS.get(r, r) for r in point.reasons))
        if point.crl_issuer:
            fields.append(f"CRLissuer = dirName:dp{index}_issuer")
            names += _dn_section(f"dp{index}_issuer", point.crl_issuer)
        lines += ["", f"[dp{index}]", *fields]
    return "\n".join(lines + names) + "\n"


def _dn_section(name: str, cn: str) -> list[str]:
    return ["", f"[{name}]", f"O = {ORG}", f"CN = {cn}"]
