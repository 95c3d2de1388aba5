"""OCSP (opt-in with --ocsp): ask the responder each certificate's AIA names, and believe only signed answers.

A certificate is node data, so the URL it names is too: sweeper posts only to responders
the operator allows (`--ocsp-allow URL-prefix|host`), never follows a redirect, and stops
asking when the run's OCSP time (`--ocsp-budget`) is spent. Runs after the sweep, off the
event loop, a few requests at a time, each with a timeout. A failure of any kind (not
allowed, no issuer known, network, bad signature, stale answer, no time left) is
`ocsp-unknown` (info) and never `revoked`; a verified `revoked` answer feeds the
`revoked` rule.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from sweeper.detect import Context, finding, rule
from sweeper.detect.fleet import Fleet
from sweeper.errors import BadInput
from sweeper.model import Finding, Severity
from sweeper.pki.ocsp import OcspAnswer, ocsp_request, ocsp_urls, read_ocsp_response

MAX_PARALLEL = 8
MAX_RESPONSE_BYTES = 1 << 20
MAX_URL = 200

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
        url = next((u for u in urls if responder_allowed(u, context.ocsp_allow)), None)
        if url is None:
            answers[sha256] = (urls[0][:MAX_URL], OcspAnswer("unknown", detail=_not_allowed(context)))
            continue
        issuers = fleet.issuers(sha256)
        if not issuers:
            answers[sha256] = (
                url,
                OcspAnswer("unknown", detail="issuer certificate not known: give it with --ca"),
            )
            continue
        jobs.append((sha256, der, fleet.der[issuers[0]], url))
    if jobs:
        deadline = time.monotonic() + context.ocsp_budget
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(jobs))) as pool:
            asked = pool.map(lambda job: _ask(job[1], job[2], job[3], context, deadline), jobs)
            answers.update(zip([job[0] for job in jobs], asked, strict=True))
    return answers


def responder_allowed(url: str, allow: Sequence[str]) -> bool:
    """True if `url` is an http(s) URL under one of the operator's `--ocsp-allow` entries.

    An entry with a scheme is a URL prefix: same scheme, host and port, and a path at or
    below its path (`http://ocsp.corp.example/ca1` allows `/ca1` and `/ca1/x`, not `/ca10`).
    An entry without one is a host name: any http(s) URL on that host.
    """
    try:
        target = urlsplit(url)
        if target.scheme not in ("http", "https") or not target.hostname:
            return False
        for entry in allow:
            if "://" not in entry:
                if target.hostname == entry.lower().rstrip("."):
                    return True
                continue
            rule = urlsplit(entry)
            same_origin = (rule.scheme, rule.hostname, rule.port) == (
                target.scheme,
                target.hostname,
                target.port,
            )
            if same_origin and _path_under(target.path or "/", rule.path or "/"):
                return True
    except ValueError:  # a port that is not a number, an unbalanced IPv6 bracket
        return False
    return False


def check_allowed(entries: Sequence[str]) -> tuple[str, ...]:
    """The `--ocsp-allow` entries, each an http(s) URL prefix with a host or a bare host name.

    :raises BadInput: for any other entry (one line, exit 2)
    """
    for entry in entries:
        try:
            parts = urlsplit(entry if "://" in entry else f"http://{entry}")
            parts.port  # noqa: B018 - a port that is not a number raises here
        except ValueError:
            parts = None
        bare_ok = "://" in entry or not any(c in entry for c in "/?#@")
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not bare_ok:
            raise BadInput(f"--ocsp-allow {entry!r}: expected an http(s) URL prefix or a host name")
    return tuple(entries)


def _path_under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def _not_allowed(context: Context) -> str:
    if not context.ocsp_allow:
        return "not asked: no responder is allowed (give --ocsp-allow URL-prefix|host)"
    return "not asked: the responder it names is not among --ocsp-allow"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer from somewhere the operator did not allow: refuse it."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _ask(der: bytes, issuer_der: bytes, url: str, context: Context, deadline: float) -> Asked:
    left = deadline - time.monotonic()
    if left <= 0:
        return url, OcspAnswer(
            "unknown", detail=f"not asked: the --ocsp-budget of {context.ocsp_budget:g}s ran out"
        )
    request = ocsp_request(der, issuer_der)
    post = urllib.request.Request(
        url,
        data=request.der,
        headers={"Content-Type": "application/ocsp-request", "Accept": "application/ocsp-response"},
    )
    try:
        with _OPENER.open(post, timeout=min(context.ocsp_timeout, left)) as reply:
            data = reply.read(MAX_RESPONSE_BYTES)
    except urllib.error.HTTPError as exc:
        moved = ", a redirect is not followed" if 300 <= exc.code < 400 else ""
        return url, OcspAnswer("unknown", detail=f"no answer from responder (HTTP {exc.code}{moved})")
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
