"""Revocation rules: revoked, revoked-issuer, revocation-unknown, crl-stale, crl-unverified.

The verdicts come from `detect.status` (RFC 5280 §6.3.3 over every CRL of the sweep and
the inputs, and verified OCSP answers with --ocsp). `revoked`: a usable, in-scope CRL lists
the certificate. `revoked-issuer`: every path above it runs through a revoked CA — its own
serial is listed nowhere, so it is not `revoked`, but no relying party that checks
revocation accepts it, and under a CA revoked for compromise it may be forged.
`revocation-unknown`: per node and leaf (a certificate of a leaf store, or any end-entity
certificate), nothing decided its status or a CA's on its path.

CRL findings are one per CRL and cause, naming in `nodes` the nodes whose certificates
the CRL was meant for (those of its issuer, or naming it as cRLIssuer); CRLs meant for no
swept certificate are summed up in one finding per cause, so a folder of unrelated CRLs is
one line, not a hundred.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from sweeper.detect import Context, finding, located_finding, rule
from sweeper.detect.crls import MAX_LISTED, CrlProblem, SeenCrl
from sweeper.detect.fleet import Fleet, describe
from sweeper.detect.status import Revocation, Status, revocation_status
from sweeper.model import CertRecord, Finding, Role, Severity


def revocations(fleet: Fleet) -> dict[str, dict[str, Any]]:
    """Swept certificates (by SHA-256) that a usable CRL or a verified OCSP answer revokes, with evidence."""
    view = fleet.analysis(revocation_status)
    found = {}
    for sha256 in fleet.holders:
        if sha256 in fleet.der and (status := view.status(sha256)).state == "revoked":
            found[sha256] = _evidence(fleet, status)
    return found


def _evidence(fleet: Fleet, status: Status) -> dict[str, Any]:
    if status.ocsp is not None:
        url, answer = status.ocsp
        return {
            "source": "ocsp",
            "ocsp_url": url,
            "responder": answer.responder,
            "revoked_at": answer.revoked_at.isoformat() if answer.revoked_at else None,
            "reason": answer.reason,
            "this_update": answer.this_update.isoformat() if answer.this_update else None,
        }
    assert status.entry is not None and status.crl is not None
    return {
        "source": "crl",
        "serial": format(status.entry.serial, "x"),
        "revoked_at": status.entry.revoked_at.isoformat(),
        "reason": status.entry.reason,
        "hold": status.hold,
        "issuer": describe(fleet, status.signer) if status.signer else None,
        "stale": status.stale,
        **status.crl.evidence(),
    }


def _said_by(evidence: dict[str, Any]) -> str:
    if evidence["source"] == "ocsp":
        return f"OCSP responder {evidence['ocsp_url']}"
    kind = "delta CRL" if evidence["delta"] else "CRL"
    return f"{kind} #{evidence['crl_number']} of {evidence['crl_issuer']}"


def _what(evidence: dict[str, Any]) -> str:
    if evidence.get("hold"):
        return "on hold (certificateHold)"
    return f"revoked ({evidence['reason'] or 'no reason given'})"


@rule("revoked", Severity.CRITICAL, "fleet", needs=("crl", "ca"))
def revoked(fleet: Fleet, context: Context) -> Iterator[Finding]:
    """Listed in a usable, in-scope CRL whose signer is validated (RFC 5280 §6.3.3), or revoked by OCSP."""
    found = fleet.analysis(revocations)
    for record in fleet.records:
        evidence = found.get(record.facts.sha256)
        if evidence is not None:
            message = f"{_what(evidence)} per {_said_by(evidence)}: {record.facts.subject}"
            yield finding("revoked", record, message, **evidence)


@rule("revoked-issuer", Severity.HIGH, "fleet", needs=("crl", "ca"))
def revoked_issuer(fleet: Fleet, context: Context) -> Iterator[Finding]:
    """Issued (directly or through a chain) under a CA that is revoked, on every path the fleet holds."""
    view = fleet.analysis(revocation_status)
    found = fleet.analysis(revocations)
    for record in fleet.records:
        sha256 = record.facts.sha256
        if sha256 not in fleet.der or sha256 in found:
            continue
        ca = view.path(sha256).revoked_ca
        if ca is None:
            continue
        evidence = _evidence(fleet, view.status(ca))
        message = (
            f"issued under {fleet.facts(ca).subject}, {_what(evidence)} per {_said_by(evidence)}: "
            f"{record.facts.subject}"
        )
        yield finding(
            "revoked-issuer", record, message, revoked_ca=describe(fleet, ca), ca_revocation=evidence
        )


@rule("revocation-unknown", Severity.LOW, "fleet", needs=("crl", "ca"))
def revocation_unknown(fleet: Fleet, context: Context) -> Iterator[Finding]:
    """A leaf (or a CA on its path) that no usable, in-scope CRL or OCSP answer covers, per node."""
    view = fleet.analysis(revocation_status)
    reported: set[tuple[str, str]] = set()
    for record in fleet.records:
        sha256 = record.facts.sha256
        leaf = record.role == Role.LEAF or not record.facts.is_ca  # an end entity pinned in a trust store too
        if not leaf or sha256 not in fleet.der or (record.node, sha256) in reported:
            continue
        unknown = _unknown(view, sha256)
        if unknown:
            reported.add((record.node, sha256))
            yield _unknown_finding(fleet, view, record, unknown)


def _unknown(view: Revocation, sha256: str) -> tuple[str, ...]:
    """The certificate and the CAs above it whose status is unknown; none when anything is revoked."""
    own = view.status(sha256)
    path = view.path(sha256)
    if own.state == "revoked" or path.revoked_ca is not None:
        return ()
    return ((sha256,) if own.state == "unknown" else ()) + path.unknown


def _unknown_finding(fleet: Fleet, view: Revocation, record: CertRecord, unknown: tuple[str, ...]) -> Finding:
    first = unknown[0]
    why = view.status(first).why
    if first == record.facts.sha256:
        message = f"revocation status unknown ({why}): {record.facts.subject}"
    else:
        message = (
            f"revocation status of CA {fleet.facts(first).subject} unknown ({why}): {record.facts.subject}"
        )
    listed = [{**describe(fleet, sha), "why": view.status(sha).why} for sha in unknown]
    return finding("revocation-unknown", record, message, unknown=listed)


def crl_nodes(fleet: Fleet) -> dict[str, tuple[str, ...]]:
    """Per CRL issuer name, the nodes holding a certificate that asks that issuer for its CRLs."""
    view = fleet.analysis(revocation_status)
    nodes: dict[str, set[str]] = defaultdict(set)
    for sha256, records in fleet.holders.items():
        if sha256 not in fleet.der or fleet.facts(sha256).self_signed:
            continue
        for name in view.crl_issuers(sha256):
            nodes[name].update(r.node for r in records)
    return {name: tuple(sorted(found)) for name, found in nodes.items()}


def _meant_for(fleet: Fleet, crl: SeenCrl) -> tuple[str, ...]:
    if crl.facts is None:
        return crl.found_on
    return fleet.analysis(crl_nodes).get(crl.facts.issuer, ())


@rule("crl-stale", Severity.INFO, "fleet", needs=("crl", "ca"))
def crl_stale(fleet: Fleet, context: Context) -> Iterator[Finding]:
    """A CRL past nextUpdate: its entries still revoke, but it cannot show a certificate is not revoked."""
    for crl in fleet.analysis(revocation_status).crls:
        nodes = _meant_for(fleet, crl)
        if crl.problem is None and crl.facts is not None and crl.facts.stale(context.now) and nodes:
            message = (
                f"{crl.label} is out of date (nextUpdate passed): its entries still revoke, "
                "but it cannot show a certificate is not revoked"
            )
            yield _crl_finding("crl-stale", crl, nodes, message)


@rule("crl-unverified", Severity.INFO, "fleet", needs=("crl", "ca"))
def crl_unverified(fleet: Fleet, context: Context) -> Iterator[Finding]:
    """A CRL that cannot be used, and why: unreadable, unsupported, no valid signer, no base CRL."""
    view = fleet.analysis(revocation_status)
    unrelated: dict[str, list[tuple[SeenCrl, CrlProblem]]] = defaultdict(list)
    for crl in view.crls:
        problem = crl.problem or _revoked_signer(fleet, view, crl)
        if problem is None:
            continue
        nodes = _meant_for(fleet, crl)
        if nodes:
            yield _crl_finding(
                "crl-unverified", crl, nodes, f"{crl.label} ignored: {problem.detail}", problem
            )
        else:
            unrelated[problem.kind].append((crl, problem))
    for kind, ignored in unrelated.items():
        yield located_finding(
            "crl-unverified",
            f"{len(ignored)} CRL(s) that concern no certificate swept here cannot be used ({kind})",
            kind=kind,
            crl_count=len(ignored),
            crl_sources=[crl.sources[0] for crl, _ in ignored[:MAX_LISTED]],
            problems=[problem.detail for _, problem in ignored[:MAX_LISTED]],
        )


def _revoked_signer(fleet: Fleet, view: Revocation, crl: SeenCrl) -> CrlProblem | None:
    """Every certificate that signed the CRL is itself revoked: it speaks for nobody (§6.3.3 (f))."""
    if not crl.signers or any(view.status(s).state != "revoked" for s in crl.signers):
        return None
    subjects = ", ".join(sorted({fleet.facts(s).subject for s in crl.signers}))
    return CrlProblem("signer-revoked", f"it is signed by {subjects}, itself revoked")


def _crl_finding(
    rule_id: str, crl: SeenCrl, nodes: tuple[str, ...], message: str, problem: CrlProblem | None = None
) -> Finding:
    extra = {"problem": problem.detail, "kind": problem.kind} if problem else {}
    return located_finding(
        rule_id,
        message,
        node=nodes[0] if len(nodes) == 1 else None,
        entry=crl.sources[0],
        nodes=list(nodes),
        **crl.evidence(),
        **extra,
    )
