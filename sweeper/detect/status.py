"""Revocation status per certificate and per path, as RFC 5280 §6.3.3 decides it from the sweep's CRLs.

A certificate's own status is `revoked`, `good` or `unknown`:

* Only complete CRLs in scope count (`pki.crl.scope_mismatch`: CRL issuer, indirect CRLs,
  distribution points, onlyContains*, reasons), each signed by a certificate that may speak
  for this one: named as the CRL issuer, cRLSign, chaining to the same anchor as the
  certificate, and itself not revoked (§6.3.3 (f)); a CRL signer's own CRL may clear it
  (PKITS 4.14.30), though any other usable CRL that lists it still revokes it. A delta CRL
  counts only on top of such a complete CRL (same issuer and scope, base <= number < its own).
* Listed with any reason but certificateHold or removeFromCRL: revoked, for good. On hold:
  revoked until the newest CRL of that scope (with its delta) no longer lists it, or a delta
  says removeFromCRL. A stale CRL (nextUpdate passed) still revokes, but cannot clear.
* Good only when fresh CRLs that do not list it cover every reason (§6.3.3 (d)); otherwise
  unknown, with the reason why. A verified OCSP answer (--ocsp) decides where CRLs did not.

A path is judged above a certificate: the CA certificates that issued it, up to a
self-signed anchor, through whichever issuer the fleet holds is best (good, then unknown,
then revoked). `PathStatus.revoked_ca` is set when every path crosses a revoked CA.

Statuses depend on each other (a CRL signer's own status), so both walks are iterative,
depth-first with an explicit stack, each certificate evaluated once; in a cycle the
certificate still being evaluated is taken as not revoked.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sweeper.detect.crls import SeenCrl, seen_crls
from sweeper.detect.fleet import Fleet
from sweeper.detect.ocsp import Asked, ocsp_answers
from sweeper.pki.crl import (
    ALL_REASONS,
    HOLD,
    REMOVE,
    CrlEntry,
    DistributionPoint,
    distribution_points,
    interim_reasons,
    scope_mismatch,
)
from sweeper.pki.parse import CertFacts

MAX_DEPTH = 8
"""Levels walked up from a certificate to find its anchors (as pki.chain)."""
MAX_UNKNOWN = 20
"""CAs of unknown status kept per path, nearest first."""

MAX_REASONS = 3
"""Why-not reasons quoted in one status."""

State = Literal["good", "revoked", "unknown"]


@dataclass(frozen=True, slots=True)
class Status:
    """One certificate's own revocation status and what decided it."""

    state: State
    why: str | None = None
    """Unknown: why nothing decided it."""
    entry: CrlEntry | None = None
    crl: SeenCrl | None = None
    """Revoked: the CRL that lists it; good: one that covers it."""
    signer: str | None = None
    """SHA-256 of the certificate whose key signed `crl`."""
    delta: SeenCrl | None = None
    """The delta CRL that decided, when one did."""
    stale: bool = False
    ocsp: Asked | None = None
    """The verified OCSP answer that decided, when one did."""

    @property
    def hold(self) -> bool:
        return self.entry is not None and self.entry.reason == HOLD


ANCHOR = Status("good", why="a self-signed anchor is not subject to revocation")


@dataclass(frozen=True, slots=True)
class PathStatus:
    """The best path above a certificate: the revoked CA every path crosses, or the unknown CAs on it
    (the nearest MAX_UNKNOWN: a chain of a thousand CAs must not cost a thousand per certificate)."""

    revoked_ca: str | None = None
    unknown: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Use:
    """A complete CRL that speaks for the certificate, who signed it, and the reasons it covers."""

    crl: SeenCrl
    signer: str
    reasons: frozenset[str]


@dataclass(slots=True)
class _Judgement:
    """What the usable CRLs say, gathered before a verdict."""

    revoked: list[Status] = field(default_factory=list)
    held: list[Status] = field(default_factory=list)
    covered: set[str] = field(default_factory=set)
    stale: list[SeenCrl] = field(default_factory=list)


class Revocation:
    """Every certificate's status and path status for one fleet; ask `status()` and `path()`."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.crls = fleet.analysis(seen_crls)
        self._ocsp = fleet.analysis(ocsp_answers)
        self._by_issuer: dict[str, list[SeenCrl]] = defaultdict(list)
        for crl in self.crls:
            if crl.facts is not None:
                self._by_issuer[crl.facts.issuer].append(crl)
        self._status: dict[str, Status] = {}
        self._paths: dict[str, PathStatus] = {}
        self._tops: dict[str, frozenset[str]] = {}
        self._candidates: dict[str, tuple[SeenCrl, ...]] = {}

    def status(self, sha256: str) -> Status:
        """The certificate's own status (evaluating the CRL signers it depends on first)."""
        _walk(sha256, self._status, self._signer_candidates, self._evaluate)
        return self._status[sha256]

    def path(self, sha256: str) -> PathStatus:
        """The status of the best path above the certificate (its own status left out)."""
        if sha256 not in self._paths:
            self._settle(sha256)
        return self._paths[sha256]

    def _settle(self, start: str) -> None:
        """The best paths of `start` and of every certificate above it that is not settled yet.

        Every one starts at "no path yet" and improves, round after round, until none
        changes: the least fixpoint, the same whatever order the certificates came in. A
        walk that cut a cross-certification cycle where it happened to enter it would give
        the certificate it entered by a clean path, and let one node's copy of a CA hide
        another's revoked issuer. Farthest first, so a chain settles in one round.
        """
        above: list[str] = []
        seen = {start}
        frontier = [start]
        while frontier:
            self.fleet.spend()
            above.extend(frontier)
            frontier = [
                i for sha in frontier for i in self._ca_issuers(sha) if i not in seen and i not in self._paths
            ]
            seen.update(frontier)
        pending = above[::-1]
        values: dict[str, PathStatus | None] = dict.fromkeys(pending)
        for _ in range(len(pending) + 1):
            self.fleet.spend()
            changed = False
            for sha256 in pending:
                settled = self._best_path(sha256, values)
                if settled != values[sha256]:
                    values[sha256], changed = settled, True
            if not changed:
                break
        for sha256 in pending:
            self._paths[sha256] = values[sha256] or PathStatus()  # only cycles above it: no anchor known

    def candidates(self, sha256: str) -> tuple[SeenCrl, ...]:
        """The CRLs that may speak for the certificate: of its issuer, or of a cRLIssuer it names.

        Once per certificate: its walk asks before evaluating it (for the signers it waits on), and again.
        """
        if sha256 not in self._candidates:
            found: dict[str, SeenCrl] = {}
            for name in self.crl_issuers(sha256):
                for crl in self._by_issuer.get(name, ()):
                    found.setdefault(crl.sha256, crl)
            self._candidates[sha256] = tuple(found.values())
        return self._candidates[sha256]

    def crl_issuers(self, sha256: str) -> set[str]:
        """The names whose CRLs may speak for the certificate: its issuer's and the cRLIssuers it names."""
        names = {self.fleet.facts(sha256).issuer}
        for point in distribution_points(self.fleet.der[sha256]):
            names.update(point.crl_issuers or ())
        return names

    def _signer_candidates(self, sha256: str) -> Iterable[str]:
        if self.fleet.facts(sha256).self_signed:
            return ()
        return {s for crl in self.candidates(sha256) for s in crl.signers if s != sha256}

    def _ca_issuers(self, sha256: str) -> Iterable[str]:
        return [i for i in self.fleet.issuers(sha256) if not self.fleet.facts(i).self_signed]

    def _evaluate(self, sha256: str) -> Status:
        facts = self.fleet.facts(sha256)
        if facts.self_signed:
            return ANCHOR
        by_crl = self._from_crls(sha256, facts)
        asked = self._ocsp.get(sha256)
        says = asked[1].status if asked is not None else None
        if says == "revoked" and by_crl.state != "revoked":
            return Status("revoked", ocsp=asked)
        if says == "good" and by_crl.state == "unknown":
            return Status("good", ocsp=asked)
        return by_crl

    def _from_crls(self, sha256: str, facts: CertFacts) -> Status:
        issuers = self.fleet.issuers(sha256)
        if not issuers:
            return Status("unknown", why="its issuer's certificate is not known (give it with --ca)")
        candidates = self.candidates(sha256)
        if not candidates:
            names = ", ".join(sorted(self.crl_issuers(sha256)))
            return Status("unknown", why=f"no CRL of {names} was found")
        points = distribution_points(self.fleet.der[sha256])
        tops = self._top(sha256)
        uses: list[_Use] = []
        deltas: list[SeenCrl] = []
        refused: list[str] = []
        for crl in candidates:
            if crl.problem is not None:
                refused.append(f"{crl.label} cannot be used: {crl.problem.detail}")
                continue
            assert crl.facts is not None
            if crl.facts.delta:
                deltas.append(crl)
            elif (reasons := self._reasons(crl, facts, points, refused)) is not None:
                signer = self._signer(crl, tops, issuers, refused)
                if signer is not None:
                    uses.append(_Use(crl, signer, reasons))
        return self._decide(facts, uses, deltas, tops, issuers, refused)

    def _reasons(
        self, crl: SeenCrl, facts: CertFacts, points: tuple[DistributionPoint, ...], refused: list[str]
    ) -> frozenset[str] | None:
        """The reasons the CRL answers for through any of the certificate's points; None if out of scope."""
        assert crl.facts is not None
        covered: frozenset[str] = frozenset()
        mismatch = None
        for point in points:
            why = scope_mismatch(crl.facts, facts.issuer, facts.is_ca, point)
            if why is None:
                covered |= interim_reasons(crl.facts, point)
            mismatch = mismatch or why
        if covered:
            return covered
        refused.append(f"{crl.label} does not cover it: {mismatch}")
        return None

    def _signer(
        self, crl: SeenCrl, tops: frozenset[str], issuers: tuple[str, ...], refused: list[str]
    ) -> str | None:
        """A signer of the CRL that may speak for the certificate (§6.3.3 (f)), its own issuer first."""
        why = "no signer"
        for signer in sorted(crl.signers, key=lambda s: s not in issuers):
            subject = self.fleet.facts(signer).subject
            if not self._top(signer) & tops:
                why = f"its signer {subject} does not chain to the certificate's anchor"
            elif (known := self._status.get(signer)) is not None and known.state == "revoked":
                why = f"its signer {subject} is itself revoked"
            else:
                return signer
        refused.append(f"{crl.label} cannot speak for it: {why}")
        return None

    def _decide(
        self,
        facts: CertFacts,
        uses: list[_Use],
        deltas: list[SeenCrl],
        tops: frozenset[str],
        issuers: tuple[str, ...],
        refused: list[str],
    ) -> Status:
        seen = _Judgement()
        series: dict[tuple[object, ...], list[_Use]] = defaultdict(list)
        for use in uses:
            assert use.crl.facts is not None
            series[(use.crl.facts.issuer, use.crl.facts.scope)].append(use)
        for group in series.values():
            *older, newest = sorted(group, key=lambda u: _newness(u.crl))
            delta = self._delta(newest, deltas, tops, issuers)
            self._judge(older, newest, delta, facts, seen)
        return _verdict(seen, uses, refused)

    def _judge(
        self, older: list[_Use], newest: _Use, delta: _Use | None, facts: CertFacts, seen: _Judgement
    ) -> None:
        """What one issuer's CRLs of one scope say of the certificate: the newest (with its delta) decides
        holds; a revocation in an older one stands."""
        now = self.fleet.context.now
        serial = int(facts.serial, 16)
        for use in older:  # a revocation that is not a hold does not end
            entry = _listed(use.crl, facts.issuer, serial)
            if entry is not None and entry.reason != HOLD:
                seen.revoked.append(_revoked(use, entry, now))
        said_by, entry = newest, _listed(newest.crl, facts.issuer, serial)
        change = delta.crl.facts.entry(facts.issuer, serial) if delta and delta.crl.facts else None
        if delta is not None and change is not None:
            if change.reason != REMOVE:
                said_by, entry = delta, change
            elif entry is not None and entry.reason == HOLD:
                entry = None  # the hold is over
        if entry is not None:
            (seen.held if entry.reason == HOLD else seen.revoked).append(_revoked(said_by, entry, now))
        elif _stale(newest.crl, now) and (delta is None or _stale(delta.crl, now)):
            seen.stale.append(newest.crl)
        else:
            seen.covered |= newest.reasons

    def _delta(
        self, base: _Use, deltas: list[SeenCrl], tops: frozenset[str], issuers: tuple[str, ...]
    ) -> _Use | None:
        """The newest delta CRL that extends `base`, signed by a key that may speak for the certificate."""
        number = base.crl.facts.number  # type: ignore[union-attr]
        if number is None:
            return None
        fitting = [
            d
            for d in deltas
            if d.facts is not None
            and d.facts.issuer == base.crl.facts.issuer  # type: ignore[union-attr]
            and d.facts.scope == base.crl.facts.scope  # type: ignore[union-attr]
            and d.facts.delta_base is not None
            and d.facts.number is not None
            and d.facts.delta_base <= number < d.facts.number
        ]
        for delta in sorted(fitting, key=_newness, reverse=True):
            signer = self._signer(delta, tops, issuers, [])
            if signer is not None:
                return _Use(delta, signer, base.reasons)
        return None

    def _top(self, sha256: str) -> frozenset[str]:
        """The anchors above the certificate: self-signed, or with no known issuer (bounded walk up)."""
        if sha256 not in self._tops:
            self._tops[sha256] = _tops(sha256, self.fleet)
        return self._tops[sha256]

    def _best_path(self, sha256: str, values: dict[str, PathStatus | None]) -> PathStatus | None:
        """The best path through the issuers' current paths; None while none of them has one yet."""
        options = []
        waiting = False
        for issuer in self.fleet.issuers(sha256):
            if self.fleet.facts(issuer).self_signed:
                return PathStatus()
            own = self.status(issuer)
            above = self._paths.get(issuer) or values.get(issuer)
            if own.state == "revoked":
                options.append(PathStatus(revoked_ca=issuer))
            elif above is None:
                waiting = True  # not settled yet (a cycle of cross-certificates, or later this round)
            elif above.revoked_ca is not None:
                options.append(above)
            else:
                options.append(
                    PathStatus(
                        unknown=(((issuer,) if own.state == "unknown" else ()) + above.unknown)[:MAX_UNKNOWN]
                    )
                )
        if not options:
            return None if waiting else PathStatus()
        return min(options, key=_rank)


def _rank(path: PathStatus) -> tuple[bool, int, tuple[str, ...], str]:
    """Better paths first: not through a revoked CA, fewest unknown CAs; ties broken by value, not order."""
    return path.revoked_ca is not None, len(path.unknown), path.unknown, path.revoked_ca or ""


def revocation_status(fleet: Fleet) -> Revocation:
    """The fleet's revocation view, built once per sweep (`fleet.analysis(revocation_status)`)."""
    return Revocation(fleet)


def _walk(
    start: str,
    done: dict[str, object],
    depends_on: Callable[[str], Iterable[str]],
    evaluate: Callable[[str], object],
) -> None:
    """Evaluate `start` after what it depends on, depth first with an explicit stack (no recursion)."""
    stack = [start]
    opened: set[str] = set()
    while stack:
        current = stack[-1]
        if current in done:
            stack.pop()
            continue
        if current not in opened:
            opened.add(current)
            waiting = [d for d in depends_on(current) if d not in done and d not in opened]
            if waiting:
                stack.extend(waiting)
                continue
        done[current] = evaluate(current)
        stack.pop()


def _tops(sha256: str, fleet: Fleet) -> frozenset[str]:
    seen = {sha256}
    frontier = [sha256]
    tops: set[str] = set()
    for _ in range(MAX_DEPTH):
        above = []
        for current in frontier:
            issuers = fleet.issuers(current)
            if fleet.facts(current).self_signed or not issuers:
                tops.add(current)
            above += [i for i in issuers if i not in seen]
            seen.update(issuers)
        if not above:
            break
        frontier = above
    else:
        tops.update(frontier)
    return frozenset(tops or seen)


def _newness(crl: SeenCrl) -> tuple[int, object]:
    facts = crl.facts
    assert facts is not None
    return (facts.number if facts.number is not None else -1, facts.this_update)


def _listed(crl: SeenCrl, issuer: str, serial: int) -> CrlEntry | None:
    entry = crl.facts.entry(issuer, serial) if crl.facts is not None else None
    return None if entry is None or entry.reason == REMOVE else entry


def _stale(crl: SeenCrl, now: datetime) -> bool:
    return crl.facts is not None and crl.facts.stale(now)


def _revoked(use: _Use, entry: CrlEntry, now: datetime) -> Status:
    crl = use.crl
    delta = crl if crl.facts is not None and crl.facts.delta else None
    return Status("revoked", entry=entry, crl=crl, signer=use.signer, delta=delta, stale=_stale(crl, now))


def _verdict(seen: _Judgement, uses: list[_Use], refused: list[str]) -> Status:
    if seen.revoked:
        return max(seen.revoked, key=lambda s: _newness(s.crl))  # type: ignore[arg-type]
    if seen.held:
        return seen.held[0]
    if seen.covered >= ALL_REASONS:
        return Status("good", crl=uses[0].crl, signer=uses[0].signer)
    if seen.stale:
        when = seen.stale[0].facts.next_update  # type: ignore[union-attr]
        why = f"{seen.stale[0].label} is past its nextUpdate ({when:%Y-%m-%d}): it cannot clear it"
    elif seen.covered:
        missing = ", ".join(sorted(ALL_REASONS - seen.covered))
        why = f"the CRLs found do not cover the reasons {missing}"
    else:
        why = _first(refused) or "no usable CRL"
    return Status("unknown", why=why)


def _first(reasons: list[str]) -> str:
    """The distinct reasons, the first few of them: a node may plant thousands of CRLs."""
    distinct = list(dict.fromkeys(reasons))
    more = len(distinct) - MAX_REASONS
    return "; ".join(distinct[:MAX_REASONS]) + (f"; and {more} more" if more > 0 else "")
