"""OCSP requests and the verification of their answers (the HTTP exchange lives in detect.ocsp).

An answer counts only when its signature verifies under the certificate's issuer, or
under a delegated responder certificate that the issuer signed and that carries the
OCSPSigning usage (RFC 6960 §4.2.2.2). Anything else — unsigned, wrong signer, another
certificate's status, out of date, nonce mismatch — is `unknown`, never `revoked`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from sweeper.pki.chain import issued_by, verify_signature
from sweeper.pki.parse import load_certificate
from sweeper.pki.spki import public_key_of

CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class OcspRequest:
    der: bytes
    nonce: bytes


@dataclass(frozen=True, slots=True)
class OcspAnswer:
    """A verified status (`good`, `revoked`) or `unknown` with the reason in `detail`."""

    status: str
    responder: str | None = None
    revoked_at: datetime | None = None
    reason: str | None = None
    this_update: datetime | None = None
    detail: str | None = None


def ocsp_urls(cert_der: bytes) -> tuple[str, ...]:
    """The OCSP responders named in the certificate's AIA extension."""
    try:
        aia = load_certificate(cert_der).extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    except x509.ExtensionNotFound:
        return ()
    return tuple(
        d.access_location.value
        for d in aia.value
        if d.access_method == AuthorityInformationAccessOID.OCSP
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
    )


def ocsp_request(cert_der: bytes, issuer_der: bytes) -> OcspRequest:
    """A request for one certificate's status, with a fresh nonce (SHA-1 CertID, as responders expect)."""
    nonce = os.urandom(16)
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(load_certificate(cert_der), load_certificate(issuer_der), hashes.SHA1())
        .add_extension(x509.OCSPNonce(nonce), critical=False)
        .build()
    )
    return OcspRequest(request.public_bytes(Encoding.DER), nonce)


def read_ocsp_response(
    data: bytes, request: OcspRequest, cert_der: bytes, issuer_der: bytes, now: datetime
) -> OcspAnswer:
    """Check a responder's bytes against the request, the issuer and the clock."""
    try:
        response = ocsp.load_der_ocsp_response(data)
    except ValueError as exc:
        return OcspAnswer("unknown", detail=f"not an OCSP response ({exc})")
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return OcspAnswer("unknown", detail=f"responder said {response.response_status.name.lower()}")
    issuer = load_certificate(issuer_der)
    signer = _signer(response, issuer, issuer_der)
    if signer is None:
        return OcspAnswer("unknown", detail="response not signed by the issuer or a responder it authorised")
    responder = signer.subject.rfc4514_string()
    if not verify_signature(
        public_key_of(signer),
        response.signature,
        response.tbs_response_bytes,
        response.signature_hash_algorithm,
    ):
        return OcspAnswer("unknown", responder, detail="response signature does not verify")
    problem = _mismatch(response, ocsp.load_der_ocsp_request(request.der), request.nonce, now)
    if problem:
        return OcspAnswer("unknown", responder, detail=problem)
    single = _single(response, load_certificate(cert_der).serial_number)
    if single is None:
        return OcspAnswer("unknown", responder, detail="response does not cover this certificate")
    status = single.certificate_status
    if status == ocsp.OCSPCertStatus.REVOKED:
        reason = single.revocation_reason.value if single.revocation_reason else None
        return OcspAnswer("revoked", responder, single.revocation_time_utc, reason, single.this_update_utc)
    if status == ocsp.OCSPCertStatus.GOOD:
        return OcspAnswer("good", responder, this_update=single.this_update_utc)
    return OcspAnswer("unknown", responder, detail="responder does not know this certificate")


def _signer(
    response: ocsp.OCSPResponse, issuer: x509.Certificate, issuer_der: bytes
) -> x509.Certificate | None:
    if _names_responder(response, issuer):
        return issuer
    for candidate in response.certificates:
        if not _names_responder(response, candidate):
            continue
        candidate_der = candidate.public_bytes(Encoding.DER)
        if issued_by(candidate_der, issuer_der) and _may_sign_ocsp(candidate):
            return candidate
    return None


def _names_responder(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    if response.responder_key_hash is not None:
        key = public_key_of(cert)
        if key is None:
            return False
        return response.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(key).digest  # type: ignore[arg-type]
    return response.responder_name == cert.subject


def _may_sign_ocsp(cert: x509.Certificate) -> bool:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.OCSP_SIGNING in usages


def _mismatch(
    response: ocsp.OCSPResponse, request: ocsp.OCSPRequest, nonce: bytes, now: datetime
) -> str | None:
    try:
        echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        echoed = None
    if echoed is not None and echoed != nonce:
        return "nonce does not match the request"
    single = _single(response, request.serial_number)
    if single is None or (single.issuer_key_hash, single.issuer_name_hash) != (
        request.issuer_key_hash,
        request.issuer_name_hash,
    ):
        return "response is for another certificate"
    if single.this_update_utc > now + CLOCK_SKEW:
        return f"response is from the future (thisUpdate {single.this_update_utc:%Y-%m-%d %H:%M})"
    if single.next_update_utc is not None and single.next_update_utc < now - CLOCK_SKEW:
        return f"response is out of date (nextUpdate {single.next_update_utc:%Y-%m-%d %H:%M})"
    return None


def _single(response: ocsp.OCSPResponse, serial: int) -> ocsp.OCSPSingleResponse | None:
    return next((s for s in response.responses if s.serial_number == serial), None)
