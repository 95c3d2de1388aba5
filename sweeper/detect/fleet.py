"""The swept fleet seen as one: each distinct certificate once, who issued whom, analyses memoised.

Fleets repeat the same roots thousands of times, so every question is asked per distinct
certificate (by SHA-256) and answered once per sweep; rules then fan the answer out to
every store entry that holds the certificate. Certificates the incident's inputs brought
(--ca, --crl folders, --compromised-ca, --expected-roots) count as possible issuers too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from sweeper.model import CertRecord, NodeResult
from sweeper.pki.chain import issued_by
from sweeper.pki.parse import CertFacts, ParseError, certificate_facts

if TYPE_CHECKING:
    from sweeper.detect import Context

T = TypeVar("T")


class Fleet:
    """Indexes over the swept nodes' certificates; built once per `detect()` call."""

    def __init__(self, nodes: Sequence[NodeResult], context: Context) -> None:
        self.nodes = tuple(nodes)
        self.context = context
        self.records: tuple[CertRecord, ...] = tuple(r for n in self.nodes for r in n.certificates)
        self.der: dict[str, bytes] = {}
        self.holders: dict[str, list[CertRecord]] = defaultdict(list)
        for record in self.records:
            self.holders[record.facts.sha256].append(record)
            if record.der:
                self.der.setdefault(record.facts.sha256, record.der)
        for der in context.incident.certificates:
            self.der.setdefault(certificate_facts(der).sha256, der)
        self._by_subject: dict[str, list[str]] = defaultdict(list)
        self._by_issuer: dict[str, list[str]] = defaultdict(list)
        for sha256, der in self.der.items():
            facts = certificate_facts(der)
            self._by_subject[facts.subject].append(sha256)
            self._by_issuer[facts.issuer].append(sha256)
        self._issuers: dict[str, tuple[str, ...]] = {}
        self._memo: dict[Callable[[Fleet], object], object] = {}

    def facts(self, sha256: str) -> CertFacts:
        return certificate_facts(self.der[sha256])

    def with_subject(self, subject: str) -> list[str]:
        """Known certificates (by SHA-256) whose subject is this RFC 4514 name."""
        return self._by_subject.get(subject, [])

    def named_issuers(self, sha256: str) -> list[str]:
        """Known certificates whose subject is this one's issuer name (no signature checked yet)."""
        der = self.der.get(sha256)
        if der is None:
            return []
        return [c for c in self.with_subject(certificate_facts(der).issuer) if c != sha256]

    def named_children(self, sha256: str) -> list[str]:
        """Known certificates whose issuer name is this one's subject (no signature checked yet)."""
        return [c for c in self._by_issuer.get(self.facts(sha256).subject, []) if c != sha256]

    def issued(self, sha256: str, issuer: str) -> bool:
        """True if the certificate `issuer`'s key verifies this one's signature."""
        return _issued_by(self.der[sha256], self.der[issuer])

    def issuers(self, sha256: str) -> tuple[str, ...]:
        """Known certificates that issued this one (name matches, signature verifies), itself excluded."""
        if sha256 not in self._issuers:
            self._issuers[sha256] = tuple(c for c in self.named_issuers(sha256) if self.issued(sha256, c))
        return self._issuers[sha256]

    def analysis(self, compute: Callable[[Fleet], T]) -> T:
        """`compute(self)`, once per fleet: rules that need the same answer share it."""
        if compute not in self._memo:
            self._memo[compute] = compute(self)
        return self._memo[compute]  # type: ignore[return-value]


def _issued_by(der: bytes, issuer_der: bytes) -> bool:
    try:
        return issued_by(der, issuer_der)
    except ParseError:
        return False


def describe(fleet: Fleet, sha256: str) -> dict[str, str]:
    """A certificate as evidence: its subject and fingerprint."""
    return {"subject": fleet.facts(sha256).subject, "sha256": sha256}
