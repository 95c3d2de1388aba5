"""What rules and reports know of one certificate: plain values, so holding them needs no cryptography."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class CertFacts:
    """The fields a report and the rules need from one certificate, parsed once by `certificate_facts`."""

    subject: str
    issuer: str
    serial: str
    not_before: datetime
    not_after: datetime
    sha256: str
    spki_sha256: str
    key_type: str
    key_bits: int
    signature_algorithm: str
    is_ca: bool
    self_signed: bool
    sans: tuple[str, ...]
    common_name: str | None = None
    """The subject's (last) CN, when it has one."""
