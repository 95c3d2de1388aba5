"""CRLs as facts, who signed them, and which certificates they speak for.

A CRL only counts when its signature verifies under its issuer's key, and an entry only
revokes a certificate the same key issued (issuer AND serial, never serial alone).
Scope rules handled here (RFC 5280 §5.2.5, §6.3.3): onlyContainsUserCerts/CACerts/
AttributeCerts, distribution-point names against the certificate's CRL DP, delta CRLs
(their entries revoke too), and unknown critical extensions (the CRL is then unusable).
Entries that name another issuer (indirect CRLs) are not used. Holds (certificateHold,
removeFromCRL) are judged in detect.revocation, which sees the whole series of CRLs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from types import MappingProxyType
from typing import TypeVar

from cryptography import x509

from sweeper.pki.parse import ParseError, load_certificate

_E = TypeVar("_E", bound=x509.ExtensionType)


@dataclass(frozen=True, slots=True)
class CrlEntry:
    """One revoked serial: when, and why (RFC 5280 reason name, e.g. keyCompromise)."""

    serial: int
    revoked_at: datetime
    reason: str | None


@dataclass(frozen=True, slots=True)
class CrlFacts:
    """What the rules need from one CRL, parsed once per process."""

    sha256: str
    issuer: str
    number: int | None
    this_update: datetime
    next_update: datetime | None
    entries: Mapping[int, CrlEntry]
    delta: bool
    only_user: bool
    only_ca: bool
    only_attribute: bool
    scope_uris: tuple[str, ...]
    unsupported: str | None


@lru_cache(maxsize=4096)
def crl_facts(der: bytes) -> CrlFacts:
    """Parse a DER CRL. :raises ParseError: if it is not one."""
    try:
        crl = x509.load_der_x509_crl(der)
        unsupported = _unsupported(crl)
        idp = _extension(crl.extensions, x509.IssuingDistributionPoint)
        number = _extension(crl.extensions, x509.CRLNumber)
        entries: dict[int, CrlEntry] = {}
        for revoked in crl:
            if _extension(revoked.extensions, x509.CertificateIssuer) is not None:
                continue  # names another issuer: indirect CRLs are not used
            reason = _extension(revoked.extensions, x509.CRLReason)
            entries[revoked.serial_number] = CrlEntry(
                revoked.serial_number,
                revoked.revocation_date_utc,
                reason.reason.value if reason is not None else None,
            )
        return CrlFacts(
            sha256=hashlib.sha256(der).hexdigest(),
            issuer=crl.issuer.rfc4514_string(),
            number=number.crl_number if number is not None else None,
            this_update=crl.last_update_utc,
            next_update=crl.next_update_utc,
            entries=MappingProxyType(entries),
            delta=_extension(crl.extensions, x509.DeltaCRLIndicator) is not None,
            only_user=bool(idp and idp.only_contains_user_certs),
            only_ca=bool(idp and idp.only_contains_ca_certs),
            only_attribute=bool(idp and idp.only_contains_attribute_certs),
            scope_uris=_uris(idp.full_name if idp else None),
            unsupported=unsupported,
        )
    except (ValueError, TypeError) as exc:
        raise ParseError(f"malformed CRL ({exc})") from None


def _unsupported(crl: x509.CertificateRevocationList) -> str | None:
    """Why the CRL cannot be used: an unknown critical extension (CRL or entry), or None."""
    for ext in crl.extensions:
        if ext.critical and isinstance(ext.value, x509.UnrecognizedExtension):
            return f"unknown critical CRL extension {ext.oid.dotted_string}"
    for revoked in crl:
        for ext in revoked.extensions:
            if ext.critical and isinstance(ext.value, x509.UnrecognizedExtension):
                return f"unknown critical entry extension {ext.oid.dotted_string}"
    return None


def _extension(extensions: x509.Extensions, kind: type[_E]) -> _E | None:
    try:
        return extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _uris(names: list[x509.GeneralName] | None) -> tuple[str, ...]:
    if not names:
        return ()
    return tuple(sorted(n.value for n in names if isinstance(n, x509.UniformResourceIdentifier)))


@lru_cache(maxsize=65536)
def crl_signed_by(crl_der: bytes, issuer_der: bytes) -> bool:
    """True if `issuer_der` is the CRL's issuer: same name, may sign CRLs, signature verifies."""
    crl = x509.load_der_x509_crl(crl_der)
    issuer = load_certificate(issuer_der)
    if crl.issuer != issuer.subject:
        return False
    usage = _extension(issuer.extensions, x509.KeyUsage)
    if usage is not None and not usage.crl_sign:
        return False
    try:
        return crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


@lru_cache(maxsize=65536)
def crl_covers(crl_der: bytes, cert_der: bytes) -> bool:
    """True if the CRL's scope (IDP) includes this certificate."""
    facts = crl_facts(crl_der)
    if facts.only_attribute:
        return False
    cert = load_certificate(cert_der)
    constraints = _extension(cert.extensions, x509.BasicConstraints)
    is_ca = bool(constraints and constraints.ca)
    if (facts.only_user and is_ca) or (facts.only_ca and not is_ca):
        return False
    if facts.scope_uris:
        points = _extension(cert.extensions, x509.CRLDistributionPoints) or []
        cert_uris = {u for point in points for u in _uris(point.full_name)}
        if cert_uris and not cert_uris & set(facts.scope_uris):
            return False
    return True
