"""revoked-present: a revoked or compromised certificate still sitting in a trust store.

Choice (no mode switch): this fires on every trust-store entry that is revoked (CRL or
OCSP), issued by or itself a compromised CA, named in an IOC file, or carries a known
broken key — *in addition* to the finding that says what is wrong with it (`revoked`,
`compromised-issuer`, `ioc-match`, `known-compromised-key`, all critical). Those say what
the certificate is; this one says where a copy still has to be purged: a trust-store
entry is what lets an impersonator in, and rotation's purge phase works from this list.
Before rotation it appears beside the critical finding; after a rotation, any
`revoked-present` left is a purge that did not happen (a root VMware Directory re-synced,
a castore.pem restored from backup).
"""

from __future__ import annotations

from collections.abc import Iterator

from sweeper.detect import Context, finding, rule
from sweeper.detect.broken import broken_keys
from sweeper.detect.compromise import compromised
from sweeper.detect.fleet import Fleet
from sweeper.detect.ioc import ioc_hits
from sweeper.detect.revocation import revocations
from sweeper.model import Finding, Severity


@rule("revoked-present", Severity.MEDIUM, "fleet")
def revoked_present(fleet: Fleet, context: Context) -> Iterator[Finding]:
    """A revoked/compromised cert still sits in a trust store (purge it; also reported after rotation)."""
    revoked = fleet.analysis(revocations)
    bad_issuer = fleet.analysis(compromised)
    named = fleet.analysis(ioc_hits)
    broken = fleet.analysis(broken_keys)
    for record in fleet.records:
        if record.role != "trust":
            continue
        reasons = [
            rule_id
            for rule_id, hit in (
                ("revoked", record.facts.sha256 in revoked),
                ("compromised-issuer", record.facts.sha256 in bad_issuer),
                ("ioc-match", record.facts.sha256 in named),
                ("known-compromised-key", record.facts.spki_sha256 in broken),
            )
            if hit
        ]
        if reasons:
            yield finding(
                "revoked-present",
                record,
                f"still trusted on {record.node} though {' and '.join(reasons)}: {record.facts.subject}",
                because=reasons,
            )
