"""ioc-match: a certificate, its key or its serial named in an --ioc file.

A `serial:` line with `issuer:` matches only a certificate that the named issuer
certificate really signed; a bare `serial:` matches that serial under any issuer, as the
analyst wrote it (the evidence says so).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from sweeper.detect import Context, finding, rule
from sweeper.detect.fleet import Fleet
from sweeper.incident import Indicator
from sweeper.model import Finding, Severity


def ioc_hits(fleet: Fleet) -> dict[str, list[Indicator]]:
    """Indicators that name each swept certificate (by SHA-256)."""
    by_kind: dict[tuple[str, str], list[Indicator]] = defaultdict(list)
    for indicator in fleet.context.incident.indicators:
        by_kind[(indicator.kind, indicator.value)].append(indicator)
    if not by_kind:
        return {}
    hits: dict[str, list[Indicator]] = {}
    for sha256, records in fleet.holders.items():
        record = records[0]
        named = [*by_kind.get(("sha256", sha256), []), *by_kind.get(("spki", record.facts.spki_sha256), [])]
        for indicator in by_kind.get(("serial", record.facts.serial), []):
            if indicator.issuer is None or indicator.issuer in fleet.issuers(sha256):
                named.append(indicator)
        if named:
            hits[sha256] = named
    return hits


@rule("ioc-match", Severity.CRITICAL, "fleet", needs=("ioc",))
def ioc_match(fleet: Fleet, context: Context) -> Iterator[Finding]:
    """Certificate, SPKI, serial or key named in an IOC file."""
    hits = fleet.analysis(ioc_hits)
    for record in fleet.records:
        named = hits.get(record.facts.sha256)
        if not named:
            continue
        yield finding(
            "ioc-match",
            record,
            f"named in {named[0].source} ({_describe(named[0])}): {record.facts.subject}",
            indicators=[
                {
                    "source": i.source,
                    "kind": i.kind,
                    "value": i.value,
                    "issuer": i.issuer,
                    "note": i.note
                    or ("serial under any issuer" if i.kind == "serial" and not i.issuer else None),
                }
                for i in named
            ],
        )


def _describe(indicator: Indicator) -> str:
    return {"sha256": "certificate fingerprint", "spki": "public key", "serial": "serial"}[indicator.kind]
