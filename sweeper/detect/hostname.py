"""Names: hostname-mismatch (a node's own TLS certificate whose SANs do not name the node) and
unapproved-name (a node's certificate names a host the inventory does not allow it).

Judged: leaf files (rui.crt, server.crt …) and a vcsa's Machine SSL certificate. Not
judged: CA certificates, and the other VECS stores — solution-user certificates (machine,
vpxd, vpxd-extension, vsphere-webclient, hvc, wcp) are client identities towards the STS
whose subject is the solution user (CN=vpxd, OU=mID-<machine id>), SMS and
data-encipherment are internal, BACKUP_STORE holds old copies. A short host name
(`vc01`) names `vc01.corp.example` and the other way round; wildcards cover one label.
"""

from __future__ import annotations

from collections.abc import Iterator

from sweeper.detect import Context, finding, rule
from sweeper.model import CertRecord, Finding, NodeResult, Severity, vecs_store_of
from sweeper.names import ip_form
from sweeper.platforms import host_names, is_identity
from sweeper.platforms.vcsa import MACHINE_SSL


def _served(record: CertRecord) -> bool:
    return is_identity(record) and vecs_store_of(record.store) in (None, MACHINE_SSL)


def names_host(san: str, host: str) -> bool:
    """True if the SAN value names `host` (exact, IP-equal, one-label wildcard, or short vs full name)."""
    san, host = san.strip().lower().rstrip("."), host.strip().lower().rstrip(".")
    san_ip, host_ip = ip_form(san), ip_form(host)
    if san_ip is not None and host_ip is not None:
        return san_ip == host_ip
    if san == host:
        return True
    if san.startswith("*."):
        first, _, rest = host.partition(".")
        return bool(first) and rest == san[2:]
    san_first, host_first = san.split(".", 1)[0], host.split(".", 1)[0]
    return ("." not in san or "." not in host) and san_first == host_first and host_ip is None


@rule("hostname-mismatch", Severity.LOW, "node")
def hostname_mismatch(node: NodeResult, context: Context) -> Iterator[Finding]:
    """A leaf whose SANs do not name the node's host."""
    hosts = sorted({node.host, node.name})
    for record in node.certificates:
        if not _served(record):
            continue
        if any(names_host(san, host) for san in record.facts.sans for host in hosts):
            continue
        named = ", ".join(record.facts.sans[:5]) or "no subjectAltName at all"
        yield finding(
            "hostname-mismatch",
            record,
            f"SANs ({named}) do not name {' or '.join(hosts)}: {record.facts.subject}",
            sans=list(record.facts.sans),
            node_host=node.host,
            node_name=node.name,
        )


@rule("unapproved-name", Severity.HIGH, "cert")
def unapproved_name(record: CertRecord, context: Context) -> Iterator[Finding]:
    """A node's own certificate names a host the inventory does not allow it (never re-issued)."""
    policy = context.names.get(record.node)
    if policy is None or not is_identity(record):
        return
    _, refused = policy.split(host_names(record))
    if refused:
        yield finding(
            "unapproved-name",
            record,
            f"names {', '.join(refused[:5])} that the inventory does not allow this node "
            f"(add them to its `names` to keep them; a rotation drops them): {record.facts.subject}",
            names=list(refused),
        )
