"""vCenter health, as vCert checks it after a change (DESIGN "A vCenter keeps working", 10):
read-only, one SSH session per vCenter, then a list of small checks over what was read.

Used by `sweeper check` and as the rotation's verify on vcsa nodes (a finding fails that node).
More checks are added by appending a function to CHECKS.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ssl
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from typing import Any

from sweeper.errors import BadInput, CommandFailed, NodeError
from sweeper.inventory import Inventory
from sweeper.model import Finding, Node, Profile, Report, Severity
from sweeper.pki.chain import issued_by
from sweeper.pki.parse import ParseError, certificate_facts, pem_blocks
from sweeper.platforms import vmdir as facts
from sweeper.platforms.vcdb import Source, vpx_ext_problems
from sweeper.platforms.vcsa import DIR_CLI, MACHINE_SSL, MACHINE_SSL_ALIAS, SOLUTION_USERS, TRUSTED_ROOT_CRLS
from sweeper.rotate import node as on_node
from sweeper.rotate import vmdir
from sweeper.rotate.steps.directory import STS_CLASSES, node_endpoints
from sweeper.rotate.steps.reissue import served_certificate
from sweeper.rotate.steps.vcdb import auth_proxy_certificate, read_rows, thumbprints_of
from sweeper.rotate.vmdir import sso_password_of
from sweeper.scan import ScanOptions, scan
from sweeper.shell import Tag, mark
from sweeper.shell import quote as q
from sweeper.ssh import Connector, Session
from sweeper.stores.ldif import LdifEntry

MAX_CRLS = 100
"""More CRLs than this in TRUSTED_ROOT_CRLS slows every vCenter service start (vCert warns)."""

RULES: Mapping[str, tuple[Severity, str]] = {
    "vcenter-missing-ca": (
        Severity.HIGH,
        "a VECS certificate that does not chain to a root published in VMware Directory",
    ),
    "vcenter-solution-user-mismatch": (
        Severity.HIGH,
        "a solution user's VECS certificate differs from its ServicePrincipal",
    ),
    "vcenter-sts-unpublished-root": (
        Severity.HIGH,
        "the STS signing chain ends at a root not published in VMware Directory",
    ),
    "vcenter-lookup-service-mismatch": (
        Severity.HIGH,
        "a Lookup Service registration pins another certificate than the one served",
    ),
    "vcenter-vpx-ext-mismatch": (
        Severity.HIGH,
        "a VCDB extension thumbprint (vpx_ext) that is not its certificate's",
    ),
    "vcenter-crl-count": (Severity.MEDIUM, f"more than {MAX_CRLS} CRLs in TRUSTED_ROOT_CRLS"),
    "vcenter-unchecked": (Severity.HIGH, "the vCenter could not be checked (the reason is given)"),
}
"""Rule id -> (severity, what): the check's part of the Rules contract."""


@dataclass(frozen=True, slots=True)
class VcenterState:
    """What one vCenter holds that its health depends on, as read (DER certificates)."""

    node: str
    machine_id: str
    vecs: dict[str, bytes]
    """store -> its certificate (Machine SSL and the solution users)"""
    principals: dict[str, bytes]
    """solution user -> userCertificate of `<su>-<machineID>` (absent: no such principal)"""
    published: list[bytes]
    sts_chains: list[list[bytes]]
    """userCertificate of each TenantCredential, highest N first"""
    endpoints: list[LdifEntry]
    served_sha256: str
    crl_count: int
    vpx_ext: Mapping[str, str | None]
    """VCDB's known extensions: ext_id -> thumbprint (empty where the node has no VCDB)"""
    thumbprints: Mapping[Source, str]
    """the thumbprint of each certificate an extension must name, as the node holds it"""


def _finding(
    rule: str,
    state: VcenterState,
    message: str,
    store: str | None = None,
    der: bytes | None = None,
    **evidence: object,
) -> Finding:
    sha = hashlib.sha256(der).hexdigest() if der else None
    return Finding(rule, RULES[rule][0], state.node, store, None, sha, message, dict(evidence))


def _chains_to_published(der: bytes, published: list[bytes]) -> bool:
    try:
        return der in published or any(issued_by(der, root) for root in published)
    except ParseError:
        return False


def missing_ca(state: VcenterState) -> list[Finding]:
    return [
        _finding(
            "vcenter-missing-ca",
            state,
            f"{store}: {_subject(der)} does not chain to a root published in VMware Directory",
            store,
            der,
        )
        for store, der in state.vecs.items()
        if not _chains_to_published(der, state.published)
    ]


def solution_user_mismatch(state: VcenterState) -> list[Finding]:
    found = []
    for su in SOLUTION_USERS:
        if su not in state.vecs:
            continue
        name = f"{su}-{state.machine_id}"
        principal = state.principals.get(su)
        if principal is None:
            found.append(
                _finding(
                    "vcenter-solution-user-mismatch",
                    state,
                    f"MISMATCH: ServicePrincipal {name} is missing",
                    su,
                    state.vecs[su],
                )
            )
        elif principal != state.vecs[su]:
            found.append(
                _finding(
                    "vcenter-solution-user-mismatch",
                    state,
                    f"MISMATCH: {su} in VECS differs from ServicePrincipal {name} in VMware Directory",
                    su,
                    state.vecs[su],
                    vmdir_sha256=hashlib.sha256(principal).hexdigest(),
                )
            )
    return found


def sts_unpublished_root(state: VcenterState) -> list[Finding]:
    if not state.sts_chains:
        return [
            _finding("vcenter-sts-unpublished-root", state, "no STS signing certificate in VMware Directory")
        ]
    chain = state.sts_chains[0]
    if chain and _chains_to_published(chain[-1], state.published):
        return []
    last = chain[-1] if chain else None
    return [
        _finding(
            "vcenter-sts-unpublished-root",
            state,
            f"the STS signing chain ends at {_subject(last)}, not published in VMware Directory",
            der=last,
        )
    ]


def lookup_service_mismatch(state: VcenterState) -> list[Finding]:
    found = []
    for endpoint in state.endpoints:
        pins = [base64.b64decode(v) for v in endpoint.values(facts.LKUP_TRUST)] + endpoint.values(
            facts.LKUP_ANCHOR
        )
        for pin in pins:
            if hashlib.sha256(pin).hexdigest() != state.served_sha256:
                found.append(
                    _finding(
                        "vcenter-lookup-service-mismatch",
                        state,
                        f"{endpoint.dn}: pins {_subject(pin)}, not the certificate served on 443",
                        der=pin,
                        served_sha256=state.served_sha256,
                    )
                )
                break
    return found


def crl_count(state: VcenterState) -> list[Finding]:
    if state.crl_count <= MAX_CRLS:
        return []
    return [
        _finding(
            "vcenter-crl-count",
            state,
            f"{state.crl_count} CRLs in TRUSTED_ROOT_CRLS (more than {MAX_CRLS})",
            TRUSTED_ROOT_CRLS,
        )
    ]


def vpx_ext_mismatch(state: VcenterState) -> list[Finding]:
    rows = {ext: value for ext, value in state.vpx_ext.items() if value}  # NULL: no certificate login
    return [
        _finding(
            "vcenter-vpx-ext-mismatch",
            state,
            str(problem),
            extension=problem.ext_id,
            source=str(problem.source),
        )
        for problem in vpx_ext_problems(rows, state.thumbprints)
    ]


CHECKS: tuple[Callable[[VcenterState], list[Finding]], ...] = (
    missing_ca,
    solution_user_mismatch,
    sts_unpublished_root,
    lookup_service_mismatch,
    vpx_ext_mismatch,
    crl_count,
)


def _subject(der: bytes | None) -> str:
    if der is None:
        return "nothing"
    try:
        return certificate_facts(der).subject
    except ParseError:
        return "an unreadable certificate"


def _der(pem: str) -> bytes | None:
    return next((b.der for b in pem_blocks(pem.encode()) if b.label == "CERTIFICATE"), None)


async def read_state(session: Session, sso_password: vmdir.SsoPassword) -> VcenterState:
    """Everything the checks need, read without changing anything on the node. The reads run side
    by side over the one connection (the session bounds its channels): a real vCenter's vecs-cli
    and dir-cli take a good part of a second each, and there are some seventeen of them."""
    node = session.node
    domain = vmdir.domain_of(node)
    vecs, principals, credentials, served, published, endpoints, crls, vpx_ext, proxy = await together(
        _vecs_certificates(session),
        _principals(session, sso_password, domain),
        _sts_credentials(session, sso_password, domain),
        _served_sha256(node),
        published_roots(session, sso_password),
        node_endpoints(session, sso_password, domain),
        on_node.vecs_entries(session, TRUSTED_ROOT_CRLS),
        read_rows(session),
        auth_proxy_certificate(session),
    )
    if not served and MACHINE_SSL in vecs:
        served = hashlib.sha256(vecs[MACHINE_SSL]).hexdigest()
    return VcenterState(
        node=node.name,
        machine_id=await vmdir.machine_id(session),
        vecs=vecs,
        principals=principals,
        published=published,
        sts_chains=[e.values("userCertificate") for e in credentials],
        endpoints=endpoints,
        served_sha256=served,
        crl_count=len(crls),
        vpx_ext=vpx_ext or {},
        thumbprints=thumbprints_of(vecs, proxy),
    )


async def together(*reads: Coroutine[Any, Any, Any]) -> list[Any]:
    """The reads' results, run side by side. The first to fail stops the others and is raised as
    itself, as if they had run one after another."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(read) for read in reads]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


async def _vecs_certificates(session: Session) -> dict[str, bytes]:
    """The certificate of Machine SSL and of each solution user, by store, as VECS holds them."""
    pairs = ((MACHINE_SSL, MACHINE_SSL_ALIAS), *((su, su) for su in SOLUTION_USERS))
    found = await together(*(_vecs_certificate(session, store, alias) for store, alias in pairs))
    return {store: der for (store, _), der in zip(pairs, found, strict=True) if der is not None}


async def _vecs_certificate(session: Session, store: str, alias: str) -> bytes | None:
    try:
        entries = await on_node.vecs_entries(session, store)
    except CommandFailed:
        return None  # a store this vCenter does not have (wcp before 7.0)
    return next((d for e in entries if e.alias == alias and e.pem and (d := _der(e.pem))), None)


async def _principals(session: Session, sso_password: vmdir.SsoPassword, domain: str) -> dict[str, bytes]:
    """Each solution user's certificate as its ServicePrincipal in VMware Directory holds it."""
    machine_id = await vmdir.machine_id(session)
    principals = {}
    for entry in await vmdir.search(
        session, sso_password, facts.service_principals_dn(domain), "one", f"(cn=*-{machine_id})"
    ):
        name = entry.dn.split(",", 1)[0].partition("=")[2]
        su = name.removesuffix(f"-{machine_id}")
        if su in SOLUTION_USERS and entry.first("userCertificate"):
            principals[su] = entry.first("userCertificate") or b""
    return principals


async def _sts_credentials(session: Session, sso_password: vmdir.SsoPassword, domain: str) -> list[LdifEntry]:
    """The STS signing credentials (TenantCredential-N), newest first."""
    credentials = [
        e
        for e in await vmdir.search(session, sso_password, facts.tenant_dn(domain), "sub", STS_CLASSES)
        if "tenantcredential-" in e.dn.lower()
    ]
    return sorted(credentials, key=lambda e: _index(e.dn), reverse=True)


async def _served_sha256(node: Node) -> str:
    """SHA-256 of the certificate the node's TLS port presents, or "" when it cannot be reached."""
    if not node.tls_port:
        return ""
    try:
        return await served_certificate(node.host, node.tls_port, node.host)
    except (OSError, ssl.SSLError, TimeoutError):
        return ""


def _index(dn: str) -> int:
    tail = dn.split(",", 1)[0].rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


async def published_roots(session: Session, sso_password: vmdir.SsoPassword) -> list[bytes]:
    """The roots VMware Directory publishes (`dir-cli trustedcert list`, then `get` each)."""
    node = session.node
    cli = q(node.path(DIR_CLI))
    password, login = q(sso_password(node)), q(vmdir.login_of(node))
    listing = await on_node.run(
        session,
        mark(Tag.DIRCLI, "t0")
        + f"printf '%s\\n' {password} | sw_run {cli} trustedcert list --login {login}\n",
        "dir-cli trustedcert list",
    )
    if listing.error("t0"):
        raise CommandFailed(f"dir-cli trustedcert list: {listing.error('t0')}")
    ids = [
        line.split(":", 1)[1].strip()
        for line in listing.text("t0").splitlines()
        if line.startswith("CN(id):")
    ]
    ids = [i for i in ids if i and all(c.isalnum() for c in i)][:1000]
    body = ""
    for index, cert_id in enumerate(ids):  # to its stdout: the check writes nothing on the node
        get = f"{cli} trustedcert get --id {q(cert_id)} --outcert /dev/stdout --login {login}"
        body += mark(Tag.DIRCLI, f"g{index}") + f"printf '%s\\n' {password} | {get} 2>/dev/null\n"
    output = await on_node.run(session, body, "dir-cli trustedcert get")
    return [der for index in range(len(ids)) if (der := _der(output.text(f"g{index}")))]


async def check_node(session: Session, sso_password: vmdir.SsoPassword) -> list[Finding]:
    state = await read_state(session, sso_password)
    return [finding for check in CHECKS for finding in check(state)]


async def check_vcenters(
    nodes: list[Node], connector: Connector, sso_password: vmdir.SsoPassword
) -> list[Finding]:
    """Every check on every vcsa node, concurrently; a node that cannot be read is a finding too."""

    async def one(node: Node) -> list[Finding]:
        try:
            found, _ = await connector.with_session(node, lambda s: check_node(s, sso_password))
            return found
        except NodeError as exc:
            severity = RULES["vcenter-unchecked"][0]
            return [
                Finding("vcenter-unchecked", severity, node.name, None, None, None, f"not checked: {exc}")
            ]

    vcenters = [n for n in nodes if n.profile is Profile.VCSA]
    results = await asyncio.gather(*(one(n) for n in vcenters))
    return [finding for found in results for finding in found]


def vcenter_findings(nodes: list[Node], options: ScanOptions) -> list[Finding]:
    """The checks on the vcsa nodes among `nodes`, with a connector of their own."""
    vcenters = [n for n in nodes if n.profile is Profile.VCSA]
    if not vcenters:
        return []

    async def go() -> list[Finding]:
        connector = Connector(vcenters, options.retry, options.ask, options.env, options.max_node_bytes)
        try:
            return await check_vcenters(vcenters, connector, sso_password_of(connector))
        finally:
            await connector.close()

    return asyncio.run(go())


def check(inventory: Inventory, nodes: tuple[Node, ...], options: ScanOptions, argv: list[str]) -> Report:
    """`sweeper check`: the vCenters' certificates as a scan reads them, and the health findings.

    :raises BadInput: no vCenter among the nodes
    """
    vcenters = tuple(n for n in nodes if n.profile is Profile.VCSA)
    if not vcenters:
        raise BadInput('no vCenter (profile = "vcsa") among the chosen nodes: nothing to check')
    swept = scan(inventory, vcenters, options, argv=argv)
    findings = sorted(vcenter_findings(list(vcenters), options), key=lambda f: -f.severity)
    return replace(swept, run=replace(swept.run, kind="check"), findings=tuple(findings))
