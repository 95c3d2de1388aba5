"""OCSP (opt-in with --ocsp): ask the responder each certificate's AIA names, and believe only signed answers.

Runs after the sweep, off the event loop, a few requests at a time, each with a timeout.
A failure of any kind (no issuer known, network, bad signature, stale answer) is
`ocsp-unknown` (info) and never `revoked`; a verified `revoked` answer feeds the
`revoked` rule.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from sweeper.detect import Context, finding, rule
from sweeper.detect.fleet import Fleet
from sweeper.model import Finding, Severity
from sweeper.pki.ocsp import OcspAnswer, ocsp_request, ocsp_urls, read_ocsp_response

MAX_PARALLEL = 8
MAX_RESPONSE_BYTES = 1 << 20

Asked = tuple[str, OcspAnswer]


def ocsp_answers(fleet: Fleet) -> dict[str, Asked]:
    """(responder URL, answer) per swept certificate that names a responder; empty without --ocsp."""
    context = fleet.context
    if not context.ocsp:
        return {}
    answers: dict[str, Asked] = {}
    jobs: list[tuple[str, bytes, bytes, str]] = []
    for sha256 in fleet.holders:
        der = fleet.der.get(sha256)
        if der is None or fleet.facts(sha256).self_signed:
            continue
        urls = ocsp_urls(der)
        if not urls:
            continue
        issuers = fleet.issuers(sha256)
        if not issuers:
            answers[sha256] = (
                urls[0],
                OcspAnswer("unknown", detail="issuer certificate not known: give it with --ca"),
            )
            continue
        jobs.append((sha256, der, fleet.der[issuers[0]], urls[0]))
    if jobs:
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(jobs))) as pool:
            asked = pool.map(lambda job: _ask(job[1], job[2], job[3], context), jobs)
            answers.update(zip([job[0] for job in jobs], asked, strict=True))
    return answers


def _ask(der: bytes, issuer_der: bytes, url: str, context: Context) -> Asked:
    if not url.startswith(("http://", "https://")):
        return url, OcspAnswer("unknown", detail="responder URL is not http(s)")
    request = ocsp_request(der, issuer_der)
    post = urllib.request.Request(
        url,
        data=request.der,
        headers={"Content-Type": "application/ocsp-request", "Accept": "application/ocsp-response"},
    )
    try:
        with urllib.request.urlopen(post, timeout=context.ocsp_timeout) as reply:
            data = reply.read(MAX_RESPONSE_BYTES)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return url, OcspAnswer("unknown", detail=f"no answer from responder ({reason})")
    return url, read_ocsp_response(data, request, der, issuer_der, context.now)


@rule("ocsp-unknown", Severity.INFO, "fleet")
def ocsp_unknown(fleet: Fleet, context: Context) -> Iterator[Finding]:
    """--ocsp could not get a verified status for a certificate (so revocation by OCSP is unknown)."""
    answers = fleet.analysis(ocsp_answers)
    for record in fleet.records:
        asked = answers.get(record.facts.sha256)
        if asked is not None and asked[1].status == "unknown":
            url, answer = asked
            yield finding(
                "ocsp-unknown",
                record,
                f"OCSP status unknown ({answer.detail}): {record.facts.subject}",
                ocsp_url=url,
                responder=answer.responder,
                detail=answer.detail,
            )
