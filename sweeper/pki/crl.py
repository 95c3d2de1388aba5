"""CRLs as facts, and RFC 5280's rules for which certificates one CRL speaks for.

`crl_facts` reads a CRL once: issuer, number, delta base, dates, its issuing distribution
point, and its entries, each filed under the issuer it really speaks for — an indirect
CRL's `certificateIssuer` entry extension holds for that entry and every entry after it
until the next one (§5.3.3); before the first, entries are the CRL issuer's. An unknown
critical extension, on the CRL or on any entry, marks the CRL unusable (§5.2, §5.3).

`distribution_points` reads what a certificate asks of CRLs, with names made absolute
(a name relative to the CRL issuer is appended to the cRLIssuer, else to the certificate's
issuer). `scope_mismatch` applies §6.3.3 (b) and (d) between one CRL and one point: the
CRL issuer (an indirect CRL only when the point names it in cRLIssuer), the distribution
point names of every form, onlyContainsUserCerts / CACerts / AttributeCerts, and the
reasons both cover. Who signed a CRL is checked here (`crl_signature_valid`,
`may_sign_crls`); whether that signer may speak for a certificate (same anchor, itself not
revoked: §6.3.3 (f)) needs the whole fleet and is decided in `detect.status`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from types import MappingProxyType
from typing import TypeVar

from cryptography import x509

from sweeper.pki.parse import MALFORMED, ParseError, load_certificate
from sweeper.pki.spki import public_key_of

_E = TypeVar("_E", bound=x509.ExtensionType)

ALL_REASONS = frozenset(
    {
        "keyCompromise",
        "cACompromise",
        "affiliationChanged",
        "superseded",
        "cessationOfOperation",
        "certificateHold",
        "privilegeWithdrawn",
        "aACompromise",
    }
)
"""The ReasonFlags a distribution point or an onlySomeReasons can name: a CRL for all of them is complete."""
HOLD = "certificateHold"
REMOVE = "removeFromCRL"


@dataclass(frozen=True, slots=True)
class CrlEntry:
    """One listed serial: when, why (RFC 5280 reason name) and whose certificate it is (RFC 4514)."""

    serial: int
    revoked_at: datetime
    reason: str | None
    issuer: str | None
    """The certificate issuer this entry speaks for; None when its certificateIssuer names no DN."""


@dataclass(frozen=True, slots=True)
class CrlScope:
    """The issuing distribution point (RFC 5280 §5.2.5); the default is every certificate of the issuer."""

    names: frozenset[str] | None = None
    only_user: bool = False
    only_ca: bool = False
    only_attribute: bool = False
    reasons: frozenset[str] | None = None
    indirect: bool = False


@dataclass(frozen=True, slots=True)
class CrlFacts:
    """What the rules need from one CRL, parsed once per process."""

    sha256: str
    issuer: str
    number: int | None
    delta_base: int | None
    this_update: datetime
    next_update: datetime | None
    scope: CrlScope
    entries: Mapping[tuple[str | None, int], CrlEntry]
    unsupported: str | None

    @property
    def delta(self) -> bool:
        return self.delta_base is not None

    def entry(self, issuer: str, serial: int) -> CrlEntry | None:
        """The entry for the certificate `issuer` issued with `serial`, if the CRL lists it."""
        return self.entries.get((issuer, serial))

    def stale(self, now: datetime) -> bool:
        return self.next_update is not None and self.next_update < now


@dataclass(frozen=True, slots=True)
class DistributionPoint:
    """One CRL distribution point of a certificate (RFC 5280 §4.2.1.13), its names made absolute."""

    names: frozenset[str] | None = None
    """The point's names; None when the distributionPoint field is absent."""
    reasons: frozenset[str] | None = None
    """The reasons its CRLs cover; None: all."""
    crl_issuers: frozenset[str] | None = None
    """Who issues its CRLs (RFC 4514 DNs); None: the certificate's own issuer."""


@lru_cache(maxsize=4096)
def crl_facts(der: bytes) -> CrlFacts:
    """Parse a DER CRL. :raises ParseError: if it is not one."""
    try:
        crl = x509.load_der_x509_crl(der)
        idp = _extension(crl.extensions, x509.IssuingDistributionPoint)
        number = _extension(crl.extensions, x509.CRLNumber)
        delta = _extension(crl.extensions, x509.DeltaCRLIndicator)
        entries, entry_problem = _entries(crl)
        return CrlFacts(
            sha256=hashlib.sha256(der).hexdigest(),
            issuer=crl.issuer.rfc4514_string(),
            number=number.crl_number if number is not None else None,
            delta_base=delta.crl_number if delta is not None else None,
            this_update=crl.last_update_utc,
            next_update=crl.next_update_utc,
            scope=_scope(idp, crl.issuer),
            entries=MappingProxyType(entries),
            unsupported=_unknown_critical(crl.extensions, "CRL") or entry_problem,
        )
    except MALFORMED as exc:
        raise ParseError(f"malformed CRL ({exc})") from None


def _entries(
    crl: x509.CertificateRevocationList,
) -> tuple[dict[tuple[str | None, int], CrlEntry], str | None]:
    """Entries by (certificate issuer, serial), certificateIssuer inherited; and an unknown critical one."""
    entries: dict[tuple[str | None, int], CrlEntry] = {}
    issuers: tuple[str | None, ...] = (crl.issuer.rfc4514_string(),)
    problem = None
    for revoked in crl:
        problem = problem or _unknown_critical(revoked.extensions, "entry")
        named = _extension(revoked.extensions, x509.CertificateIssuer)
        if named is not None:
            issuers = tuple(_directory_names(named)) or (None,)
        reason = _extension(revoked.extensions, x509.CRLReason)
        for issuer in issuers:
            entries.setdefault(
                (issuer, revoked.serial_number),
                CrlEntry(
                    revoked.serial_number,
                    revoked.revocation_date_utc,
                    reason.reason.value if reason is not None else None,
                    issuer,
                ),
            )
    return entries, problem


def _unknown_critical(extensions: x509.Extensions, where: str) -> str | None:
    for ext in extensions:
        if ext.critical and isinstance(ext.value, x509.UnrecognizedExtension):
            return f"unknown critical {where} extension {ext.oid.dotted_string}"
    return None


def _scope(idp: x509.IssuingDistributionPoint | None, issuer: x509.Name) -> CrlScope:
    if idp is None:
        return CrlScope()
    return CrlScope(
        names=_point_names(idp.full_name, idp.relative_name, (issuer,)),
        only_user=idp.only_contains_user_certs,
        only_ca=idp.only_contains_ca_certs,
        only_attribute=idp.only_contains_attribute_certs,
        reasons=_reason_names(idp.only_some_reasons),
        indirect=idp.indirect_crl,
    )


@lru_cache(maxsize=65536)
def distribution_points(cert_der: bytes) -> tuple[DistributionPoint, ...]:
    """Where the certificate's CRLs are; without the extension, one point: all reasons, from its issuer."""
    try:
        cert = load_certificate(cert_der)
        points = _extension(cert.extensions, x509.CRLDistributionPoints)
    except (ValueError, ParseError):
        points = None
    if not points:
        return (DistributionPoint(),)
    found = []
    for point in points:
        crl_issuers = [n.value for n in point.crl_issuer or () if isinstance(n, x509.DirectoryName)]
        bases = crl_issuers if point.crl_issuer else [cert.issuer]
        found.append(
            DistributionPoint(
                names=_point_names(point.full_name, point.relative_name, bases),
                reasons=_reason_names(point.reasons),
                crl_issuers=frozenset(n.rfc4514_string() for n in crl_issuers) if point.crl_issuer else None,
            )
        )
    return tuple(found)


def scope_mismatch(crl: CrlFacts, issuer: str, is_ca: bool, point: DistributionPoint) -> str | None:
    """Why `crl` does not speak for a certificate of `issuer` through `point` (§6.3.3 (b), (d)), or None."""
    scope = crl.scope
    if point.crl_issuers is not None:
        if crl.issuer not in point.crl_issuers:
            return f"the certificate asks for CRLs of {_listed(point.crl_issuers)}"
        if crl.issuer != issuer and not scope.indirect:
            return "the certificate's issuer is another CA and the CRL is not marked indirect"
    elif crl.issuer != issuer:
        return "the certificate does not name its issuer as a cRLIssuer"
    if scope.names is not None:
        wanted = point.names if point.names is not None else _dn_keys(point.crl_issuers or ())
        if not scope.names & wanted:
            theirs = _listed(wanted) if wanted else "none"
            return f"it is for distribution point {_listed(scope.names)}, the certificate's is {theirs}"
    if scope.only_attribute:
        return "it lists attribute certificates only"
    if scope.only_user and is_ca:
        return "it lists end-entity certificates only"
    if scope.only_ca and not is_ca:
        return "it lists CA certificates only"
    if not interim_reasons(crl, point):
        return "it covers none of the reasons the certificate's distribution point asks for"
    return None


def interim_reasons(crl: CrlFacts, point: DistributionPoint) -> frozenset[str]:
    """The revocation reasons this CRL answers for through this point (§6.3.3 (d))."""
    mine = ALL_REASONS if crl.scope.reasons is None else crl.scope.reasons
    asked = ALL_REASONS if point.reasons is None else point.reasons
    return mine & asked


@lru_cache(maxsize=65536)
def crl_signature_valid(crl_der: bytes, cert_der: bytes) -> bool:
    """True if the certificate's subject is the CRL's issuer and its key verifies the CRL's signature."""
    try:
        crl = x509.load_der_x509_crl(crl_der)
        cert = load_certificate(cert_der)
        key = public_key_of(cert)
        if crl.issuer != cert.subject or key is None:
            return False
        return crl.is_signature_valid(key)  # type: ignore[arg-type]
    except MALFORMED:
        return False


@lru_cache(maxsize=65536)
def may_sign_crls(cert_der: bytes) -> bool:
    """False if the certificate's key usage leaves out cRLSign (§6.3.3 (f))."""
    try:
        usage = _extension(load_certificate(cert_der).extensions, x509.KeyUsage)
    except (ValueError, ParseError):
        return False
    return usage is None or usage.crl_sign


def _extension(extensions: x509.Extensions, kind: type[_E]) -> _E | None:
    try:
        return extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _point_names(
    full: Iterable[x509.GeneralName] | None,
    relative: x509.RelativeDistinguishedName | None,
    bases: Iterable[x509.Name],
) -> frozenset[str] | None:
    """A distribution point's names as comparable keys; a relative name is appended to each base DN."""
    if full is not None:
        return frozenset(_name_key(name) for name in full)
    if relative is not None:
        return frozenset(_dn_key(x509.Name([*base.rdns, relative])) for base in bases)
    return None


def _name_key(name: x509.GeneralName) -> str:
    if isinstance(name, x509.DirectoryName):
        return _dn_key(name.value)
    return f"{type(name).__name__}:{name.value}"


def _dn_key(name: x509.Name) -> str:
    return "DN:" + name.rfc4514_string()


def _dn_keys(names: Iterable[str]) -> frozenset[str]:
    return frozenset("DN:" + name for name in names)


def _directory_names(names: x509.CertificateIssuer) -> list[str]:
    return [n.value.rfc4514_string() for n in names if isinstance(n, x509.DirectoryName)]


def _reason_names(flags: Iterable[x509.ReasonFlags] | None) -> frozenset[str] | None:
    return None if flags is None else frozenset(flag.value for flag in flags)


def _listed(names: Iterable[str]) -> str:
    return ", ".join(sorted(names))
