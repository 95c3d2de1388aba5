"""VMware Directory on a vCenter, over its session: the machine ID, LDAP reads and writes with the
appliance's OpenLDAP clients, `dir-cli service update`, and the journal's LDAP backups.

The SSO password reaches the OpenLDAP clients on a descriptor fed by a pipe (`-y /dev/fd/4`) and
dir-cli on its stdin, from printf (a shell builtin) in a script that itself comes in on stdin:
never argv and never a file, so `ps` never shows it and no disk holds it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import weakref

from sweeper.errors import BadInput, CommandFailed
from sweeper.model import Node, Profile
from sweeper.pki.parse import pem_blocks
from sweeper.platforms import vmdir as facts
from sweeper.platforms.vcsa import DIR_CLI
from sweeper.rotate import remote
from sweeper.rotate.node import SsoPassword, run
from sweeper.rotate.steps.base import BackupKind, StepContext
from sweeper.shell import Output, RunTime, Tag, mark
from sweeper.shell import quote as q
from sweeper.ssh import Connector, Session
from sweeper.stores.ldif import LdifEntry, add_ldif, parse_ldif, replace_ldif

NO_SUCH_OBJECT = 32
"""ldapsearch/ldapdelete exit status when the object is not there."""
RDN_ATTRIBUTES = ("objectclass", "cn")
"""Never replaced on restore: the class and the naming attribute stay what they are."""


def sso_password_of(connector: Connector) -> SsoPassword:
    """The SSO password of each vCenter, from its inventory variable (or a prompt), through the
    connector's credentials: loaded once, handed only to that vCenter."""

    def password(node: Node) -> str:
        """Only a vCenter's own SSO password, and only to that vCenter."""
        if node.profile is not Profile.VCSA or not node.sso_password_env:
            raise BadInput(
                f"node '{node.name}': no SSO login for a node that is not a vCenter with sso_password_env"
            )
        return connector.credentials.secret(node.sso_password_env, "SSO password")

    return password


def login_of(node: Node) -> str:
    return node.sso_user or "administrator@vsphere.local"


def domain_of(node: Node) -> str:
    """The node's SSO domain, from its SSO login (administrator@vsphere.local by default)."""
    return login_of(node).partition("@")[2] or "vsphere.local"


def machine_id_script(node: Node) -> str:
    return (
        mark(Tag.DIRCLI, "m0")
        + f"sw_run {q(node.path(facts.VMAFD_CLI))} get-machine-id --server-name localhost\n"
    )


_MACHINE_IDS: weakref.WeakKeyDictionary[Session, asyncio.Task[str]] = weakref.WeakKeyDictionary()
"""Asked once per session (one connection to one vCenter): each solution user needs it, and its
steps may ask at the same time."""


async def machine_id(session: Session) -> str:
    """The vCenter's machine ID (`vmafd-cli get-machine-id`), checked to be a plain identifier."""
    if session not in _MACHINE_IDS:
        _MACHINE_IDS[session] = asyncio.ensure_future(_ask_machine_id(session))
    return await asyncio.shield(_MACHINE_IDS[session])


async def _ask_machine_id(session: Session) -> str:
    output = await run(session, machine_id_script(session.node), "vmafd-cli get-machine-id")
    error = output.error("m0")
    found = output.text("m0").strip()
    if error or not found or len(found) > 64 or not all(c.isalnum() or c == "-" for c in found):
        raise CommandFailed(f"vmafd-cli get-machine-id: {error or 'no machine ID'}")
    return found


PASSWORD_FD = 4
"""The client reads the password from this descriptor (`-y /dev/fd/4`), fed by a pipe from printf
(a shell builtin): it never sits on a command line or on the node's disk. sw_run uses 3."""


def _client(node: Node, tool: str, password: str, tail: str) -> str:
    """`printf PASSWORD | sw_run <client> ... TAIL 4<&0`: the bind's password on descriptor 4."""
    path = {"ldapsearch": facts.LDAPSEARCH, "ldapmodify": facts.LDAPMODIFY, "ldapdelete": facts.LDAPDELETE}[
        tool
    ]
    bind = f"-x -H {facts.LDAP_URI} -D {q(facts.bind_dn(login_of(node)))} -y /dev/fd/{PASSWORD_FD}"
    return f"printf '%s' {q(password)} | sw_run {q(node.path(path))} {bind} {tail} {PASSWORD_FD}<&0"


def search_script(
    node: Node, password: str, base: str, scope: str = "base", ldap_filter: str = "(objectClass=*)"
) -> str:
    query = f"-LLL -o ldif-wrap=no -b {q(base)} -s {scope} {q(ldap_filter)} '*'"
    return mark(Tag.DIRCLI, "s0") + _client(node, "ldapsearch", password, query) + "\n"


async def search(
    session: Session,
    sso_password: SsoPassword,
    base: str,
    scope: str = "base",
    ldap_filter: str = "(objectClass=*)",
) -> list[LdifEntry]:
    """Objects under `base` (none when it does not exist); any other failure fails the step."""
    node = session.node
    output = await run(
        session, search_script(node, sso_password(node), base, scope, ldap_filter), "ldapsearch"
    )
    if output.error("s0") and not _no_such_object(output, "s0"):
        raise CommandFailed(f"ldapsearch {base}: {output.error('s0')}")
    return parse_ldif(output.text("s0"))


def _no_such_object(output: Output, section: str) -> bool:
    return any(s.rc == NO_SUCH_OBJECT for s in output.of(section))


def modify_script(
    node: Node, password: str, ldif: str | RunTime, add: bool = False, expand: bool = False
) -> str:
    """ldapmodify with `ldif` on its stdin; `expand`: the node's shell fills in `$(...)` (a value
    computed there, such as a private key that never leaves the node)."""
    end = "SWEEPER_LDIF" if expand else "'SWEEPER_LDIF'"
    command = _client(node, "ldapmodify", password, "-a" if add else "")
    return mark(Tag.DIRCLI, "w0") + f"{command} <<{end}\n{ldif}\nSWEEPER_LDIF\n"


async def modify(session: Session, sso_password: SsoPassword, ldif: str, add: bool = False) -> None:
    node = session.node
    output = await run(session, modify_script(node, sso_password(node), ldif, add), "ldapmodify")
    if output.error("w0"):
        raise CommandFailed(f"ldapmodify: {output.error('w0')}")


async def delete(session: Session, sso_password: SsoPassword, dn: str) -> None:
    """Delete one object; one already gone is no error."""
    node = session.node
    body = mark(Tag.DIRCLI, "x0") + _client(node, "ldapdelete", sso_password(node), q(dn)) + "\n"
    output = await run(session, body, "ldapdelete")
    if output.error("x0") and not _no_such_object(output, "x0"):
        raise CommandFailed(f"ldapdelete {dn}: {output.error('x0')}")


def service_update_script(node: Node, password: str, name: str, cert_pem: bytes | RunTime) -> str:
    """`dir-cli service update --name <su>-<machineID> --cert F`, the password on its stdin."""
    work = node.path(f"{remote.PENDING_DIR}/su-{hashlib.sha256(name.encode()).hexdigest()[:12]}")
    cli = q(node.path(DIR_CLI))
    return (
        remote.put_file(f"{work}/cert.pem", cert_pem, None, None, "0600")
        + mark(Tag.DIRCLI, "d0")
        + f"printf '%s\\n' {q(password)} | sw_run {cli} service update --name {q(name)}"
        + f" --cert {q(work + '/cert.pem')} --login {q(login_of(node))}\n"
        + remote.remove_tree(work)
    )


async def back_up_entries(
    ctx: StepContext, session: Session, entries: list[LdifEntry], dns: list[str]
) -> None:
    """Each DN's first state in the journal (sealed: STS objects hold a private key); a DN that
    is not among `entries` is recorded as absent, so rollback deletes what the step creates.
    Targets are lower-case: DNs compare without case, whatever case the server answers in."""
    found = {e.dn.lower(): e for e in entries}
    for dn in dns:
        entry = found.get(dn.lower())
        content = json.dumps({"ldif": add_ldif(entry)}).encode() if entry else None
        await ctx.journal.backup(
            session.node.name,
            BackupKind.LDAP,
            dn.lower(),
            existed=entry is not None,
            content=content,
            secret=True,
        )


async def restore_entry(
    ctx: StepContext, session: Session, dn: str, existed: bool, content: bytes | None
) -> None:
    """Put one object back as the backup holds it: attributes replaced in their order, the object
    added again if it was deleted, or deleted if the rotation created it. Read back to compare."""
    now = await search(session, ctx.sso_password, dn)
    if not existed:
        if now:
            await delete(session, ctx.sso_password, dn)
        return
    (saved,) = parse_ldif(json.loads(content or b"{}").get("ldif", ""))
    if not now:
        await modify(session, ctx.sso_password, add_ldif(saved), add=True)
    else:
        names = list(dict.fromkeys(n for n, _ in saved.attributes if n.lower() not in RDN_ATTRIBUTES))
        extra = {n for n, _ in now[0].attributes if n.lower() not in RDN_ATTRIBUTES} - set(names)
        changes = [(n, saved.values(n)) for n in names] + [(n, []) for n in sorted(extra)]
        await modify(session, ctx.sso_password, replace_ldif(dn, changes))
    after = await search(session, ctx.sso_password, dn)
    if not after or add_ldif(after[0]) != add_ldif(saved):
        raise CommandFailed(f"{dn}: not identical to the backup after restoring it")


async def register_solution_user(ctx: StepContext, session: Session, store: str, cert_pem: bytes) -> str:
    """VMware Directory first: the solution user's ServicePrincipal (`<su>-<machineID>`) gets the
    new certificate with `dir-cli service update`, backed up before and read back after."""
    node = session.node
    name = f"{store}-{await machine_id(session)}"
    dn = facts.service_principal_dn(domain_of(node), name)
    entries = await search(session, ctx.sso_password, dn)
    if not entries:
        raise CommandFailed(f"ServicePrincipal {name} is not in VMware Directory")
    await back_up_entries(ctx, session, entries, [dn])
    new_der = next(b.der for b in pem_blocks(cert_pem) if b.label == "CERTIFICATE")
    if entries[0].values("userCertificate") != [new_der]:
        output = await run(
            session,
            service_update_script(node, ctx.sso_password(node), name, cert_pem),
            "dir-cli service update",
        )
        if output.error("d0"):
            raise CommandFailed(f"dir-cli service update --name {name}: {output.error('d0')}")
    after = await search(session, ctx.sso_password, dn)
    if not after or after[0].values("userCertificate") != [new_der]:
        raise CommandFailed(f"ServicePrincipal {name}: the new certificate is not there after updating it")
    return name
