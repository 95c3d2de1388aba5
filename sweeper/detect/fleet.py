"""The swept fleet seen as one: each distinct certificate once, who issued whom, analyses memoised.

Fleets repeat the same roots thousands of times, so every question is asked per distinct
certificate (by SHA-256) and answered once per sweep; rules then fan the answer out to
every store entry that holds the certificate. Certificates the incident's inputs brought
(--ca, --crl folders, --compromised-ca, --expected-roots) count as possible issuers too.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

from sweeper.model import CertRecord, NodeResult
from sweeper.pki.chain import issued_by
from sweeper.pki.parse import CertFacts, ParseError, certificate_facts

if TYPE_CHECKING:
    from sweeper.detect import Context

T = TypeVar("T")


class OutOfTime(Exception):
    """A rule went past its time budget (`Context.rule_budget`)."""


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
        self._facts = {sha256: certificate_facts(der) for sha256, der in self.der.items()}
        self._by_subject: dict[str, list[str]] = defaultdict(list)
        self._by_subject_key: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        self._by_issuer: dict[str, list[str]] = defaultdict(list)
        for sha256, facts in self._facts.items():
            self._by_subject[facts.subject].append(sha256)
            self._by_subject_key[facts.subject][facts.spki_sha256].append(sha256)
            self._by_issuer[facts.issuer].append(sha256)
        self._issuers: dict[str, tuple[str, ...]] = {}
        self._verified: dict[tuple[str, str], bool] = {}
        self._memo: dict[Callable[[Fleet], object], object] = {}
        self.deadline: float | None = None
        """When the running rule's time is up (monotonic clock); `detect()` sets it per rule."""

    def spend(self) -> None:
        """Go on only if the running rule is within its time budget.

        :raises OutOfTime: past the deadline
        """
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise OutOfTime(f"ran past its {self.context.rule_budget:g}s time budget")

    def facts(self, sha256: str) -> CertFacts:
        return self._facts[sha256]

    def with_subject(self, subject: str) -> list[str]:
        """Known certificates (by SHA-256) whose subject is this RFC 4514 name."""
        return self._by_subject.get(subject, [])

    def named_children(self, sha256: str) -> list[str]:
        """Known certificates whose issuer name is this one's subject (no signature checked yet)."""
        return [c for c in self._by_issuer.get(self.facts(sha256).subject, []) if c != sha256]

    def issued(self, sha256: str, issuer: str) -> bool:
        """True if the certificate `issuer` (its name and key) issued this one.

        One signature check per certificate and issuer key: N copies of one CA (same name,
        same key) cost one check, not N.
        """
        above = self.facts(issuer)
        if above.subject != self.facts(sha256).issuer:
            return False
        key = (sha256, above.spki_sha256)
        if key not in self._verified:
            self.spend()
            self._verified[key] = _issued_by(self.der[sha256], self.der[issuer])
        return self._verified[key]

    def issuers(self, sha256: str) -> tuple[str, ...]:
        """Known certificates that issued this one (name matches, signature verifies), itself excluded.

        Candidates are grouped by key: one signature check per distinct issuer key, so N
        copies of one anchor cost N checks over the fleet, not N²; a self-signed
        certificate is checked against its own key only, so N same-name anchors with N
        keys cost N too.
        """
        if sha256 not in self._issuers:
            found: list[str] = []
            facts = self.facts(sha256)
            groups = self._by_subject_key.get(facts.issuer, {})
            if facts.self_signed:  # its signature verifies under its own key, so under no other
                groups = {facts.spki_sha256: groups.get(facts.spki_sha256, [])}
            for copies in groups.values():
                if self.issued(sha256, copies[0]):
                    found.extend(c for c in copies if c != sha256)
            self._issuers[sha256] = tuple(found)
        return self._issuers[sha256]

    def issued_under(self, seeds: Iterable[str]) -> dict[str, str | None]:
        """Every known certificate issued, through known CAs however deep, under one of `seeds`.

        Maps each to the certificate it was reached from (None for a seed). Breadth first
        down from the seeds, each certificate reached once at its shortest distance, levels
        in sorted order: the same answer whatever order the nodes came in, no recursion.
        """
        below: dict[str, str | None] = {sha256: None for sha256 in seeds if sha256 in self.der}
        level = sorted(below)
        while level:
            reached: list[str] = []
            for issuer in level:
                self.spend()
                for sha256 in self.named_children(issuer):
                    if sha256 not in below and self.issued(sha256, issuer):
                        below[sha256] = issuer
                        reached.append(sha256)
            level = sorted(reached)
        return below

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
