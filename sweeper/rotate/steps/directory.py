"""VMware Directory objects a rotation changes besides roots: the STS signing certificate (once per
SSO domain, right after the trust phase) and each vCenter's Lookup Service registrations.

Every object is backed up (LDIF, sealed) before it changes and read back after; rollback
restores it exactly (`BackupKind.LDAP`).
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from sweeper.errors import CommandFailed
from sweeper.model import Node
from sweeper.pki import rotation
from sweeper.pki.chain import issued_by
from sweeper.pki.parse import pem_blocks
from sweeper.platforms import vmdir as facts
from sweeper.platforms.vcsa import MACHINE_SSL, MACHINE_SSL_ALIAS
from sweeper.rotate import node as on_node
from sweeper.rotate import remote, vmdir
from sweeper.rotate.steps.base import BackupKind, Phase, ScriptContext, Step, StepContext
from sweeper.shell import RunTime
from sweeper.shell import quote as q
from sweeper.ssh import Session
from sweeper.stores.ldif import LdifEntry

STS_CLASSES = "(|(objectClass=vmwSTSTenantCredential)(objectClass=vmwSTSTenantTrustedCertificateChain))"
PKCS8_B64 = '$(openssl pkcs8 -topk8 -nocrypt -outform DER -in "$k" | openssl base64 -A)'
"""The new STS key as vmwSTSPrivateKey wants it (PKCS#8 DER), made into LDIF on the node itself."""
ENDPOINT_CLASSES = "(|(objectClass=vmwLKUPEndpointRegistration)(objectClass=vmwLKUPServiceEndpoint))"


def _der(pem: bytes) -> bytes:
    return next(b.der for b in pem_blocks(pem) if b.label == "CERTIFICATE")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaceSts(Step):
    """The STS signing certificate: every TenantCredential/TrustedCertChain deleted, `-1` added with
    a new leaf (key made on the node, proven) signed by the new root, chain = the new root."""

    kind: Literal["replace-sts"] = "replace-sts"
    PHASE: ClassVar[Phase] = Phase.TRUST
    domain: str
    profile: rotation.LeafProfile
    key_kind: str = "rsa2048"

    @property
    def uses_sso(self) -> bool:
        return True

    @property
    def target(self) -> str:
        return f"STS {self.domain}"

    def describe(self) -> str:
        return (
            f"replace the STS signing certificate of {self.domain} in VMware Directory "
            f"(CN={self.profile.common_name}, signed by the new root)"
        )

    def journal_targets(self, ctx: ScriptContext, node: Node) -> tuple[tuple[BackupKind, str], ...]:
        tenant = facts.tenant_dn(self.domain)
        return (
            (BackupKind.LDAP, f"cn=TenantCredential-*,{tenant}".lower()),
            (BackupKind.LDAP, f"cn=TrustedCertChain-*,{tenant}".lower()),
        )

    def _pending(self, node: Node) -> str:
        return node.path(f"{remote.PENDING_DIR}/sts-{self.domain}/key.pem")

    def _install(self, node: Node, password: str, leaf_pem: bytes | RunTime, ca_pem: bytes) -> str:
        """The new objects as LDIF made on the node: the private key never leaves it."""
        chain = [_line(leaf_pem), _line(ca_pem)]
        credential = facts.tenant_credential_dn(self.domain, 1)
        trusted = facts.trusted_chain_dn(self.domain, 1)
        ldif = "\n".join(
            [
                f"dn: {credential}",
                "objectClass: vmwSTSTenantCredential",
                "cn: TenantCredential-1",
                *(f"userCertificate:: {c}" for c in chain),
                f"vmwSTSPrivateKey:: {PKCS8_B64}",
                "",
                f"dn: {trusted}",
                "objectClass: vmwSTSTenantTrustedCertificateChain",
                "cn: TrustedCertChain-1",
                *(f"userCertificate:: {c}" for c in chain),
            ]
        )
        body = f"k={q(self._pending(node))}\n" + vmdir.modify_script(
            node, password, ldif, add=True, expand=True
        )
        return body

    def scripts(self, ctx: ScriptContext, node: Node) -> list[tuple[str, str]]:
        password = ctx.sso_password(node)
        return [
            (
                "make the new key on the node",
                remote.ensure_pending_key(self._pending(node), self.key_kind, RunTime("a fresh nonce")),
            ),
            (
                "add TenantCredential-1 and TrustedCertChain-1",
                self._install(node, password, RunTime("the new STS certificate"), ctx.ca.cert_pem),
            ),
        ]

    async def apply(self, ctx: StepContext, session: Session) -> dict[str, Any]:
        node = session.node
        tenant = facts.tenant_dn(self.domain)
        found = await vmdir.search(session, ctx.sso_password, tenant, "sub", STS_CLASSES)
        if self._done(ctx, found):
            return {"sts_sha256": rotation.certificate_sha256(found[0].values("userCertificate")[0])}
        targets = [e.dn for e in found]
        for dn in (facts.tenant_credential_dn(self.domain, 1), facts.trusted_chain_dn(self.domain, 1)):
            if dn.lower() not in {t.lower() for t in targets}:
                targets.append(dn)
        await vmdir.back_up_entries(ctx, session, found, targets)
        policy = rotation.KeyPolicy(rsa_only=True)
        public_pem = await on_node.new_key(session, self._pending(node), self.key_kind, policy)
        leaf_pem = await asyncio.to_thread(
            rotation.issue_leaf, self.profile, public_pem, ctx.ca, ctx.leaf_days
        )
        new_sha = rotation.certificate_sha256(leaf_pem)
        await ctx.journal.record_issued(
            node.name, self.target, rotation.certificate_serial(leaf_pem), new_sha
        )
        for entry in found:
            await vmdir.delete(session, ctx.sso_password, entry.dn)
        await on_node.run(
            session,
            self._install(node, ctx.sso_password(node), leaf_pem, ctx.ca.cert_pem),
            "add the STS objects",
        )
        after = await vmdir.search(session, ctx.sso_password, tenant, "sub", STS_CLASSES)
        if not self._done(ctx, after):
            raise CommandFailed(
                f"STS {self.domain}: the new signing certificate is not in place after adding it"
            )
        await on_node.run(
            session, remote.remove_tree(node.path(f"{remote.PENDING_DIR}/sts-{self.domain}")), "clean up"
        )
        return {"sts_sha256": new_sha, "replaced": len(found)}

    def _done(self, ctx: StepContext, entries: list[LdifEntry]) -> bool:
        """Exactly one credential and one chain, each [leaf, new root] with a leaf the new root signed."""
        if len(entries) != 2 or {e.dn.split(",", 1)[0].lower() for e in entries} != {
            "cn=tenantcredential-1",
            "cn=trustedcertchain-1",
        }:
            return False
        root = _der(ctx.ca.cert_pem)
        chains = [e.values("userCertificate") for e in entries]
        same = all(len(c) == 2 and c[1] == root and c[0] == chains[0][0] for c in chains)
        return same and issued_by(chains[0][0], root)


def _line(pem: bytes | RunTime) -> str:
    if isinstance(pem, RunTime):
        return f"<base64 of {pem}>"
    return base64.b64encode(_der(pem)).decode()


@dataclass(frozen=True, slots=True, kw_only=True)
class RepinLookupService(Step):
    """Every Lookup Service registration of this vCenter (current, legacy, cis.vmonapi ghosts) pinned
    to the Machine SSL certificate it now serves (after that certificate was re-issued)."""

    kind: Literal["repin-lookup-service"] = "repin-lookup-service"
    PHASE: ClassVar[Phase] = Phase.REISSUE
    domain: str

    @property
    def uses_sso(self) -> bool:
        return True

    @property
    def target(self) -> str:
        return "Lookup Service registrations"

    def describe(self) -> str:
        return "pin this vCenter's Lookup Service registrations to its new Machine SSL certificate"

    def journal_targets(self, ctx: ScriptContext, node: Node) -> tuple[tuple[BackupKind, str], ...]:
        return ((BackupKind.LDAP, f"*,{facts.registrations_dn(self.domain)}".lower()),)

    async def apply(self, ctx: StepContext, session: Session) -> dict[str, Any]:
        entries = await on_node.vecs_entries(session, MACHINE_SSL)
        pem = next((e.pem for e in entries if e.alias == MACHINE_SSL_ALIAS and e.pem), None)
        if pem is None:
            raise CommandFailed("MACHINE_SSL_CERT has no __MACHINE_CERT to pin")
        der = _der(pem.encode())
        endpoints = await node_endpoints(session, ctx.sso_password, self.domain)
        stale = [e for e in endpoints if not pinned(e, der)]
        await vmdir.back_up_entries(ctx, session, stale, [e.dn for e in stale])
        records = []
        for entry in stale:
            changes = []
            if entry.values(facts.LKUP_TRUST):
                changes.append((facts.LKUP_TRUST, [base64.b64encode(der)]))
            if entry.values(facts.LKUP_ANCHOR):
                changes.append((facts.LKUP_ANCHOR, [der]))
            records.append(vmdir.replace_ldif(entry.dn, changes))
        if records:  # one ldapmodify for all of them: it applies the records in order, stops at a failure
            await vmdir.modify(session, ctx.sso_password, "\n".join(records))
        after = await node_endpoints(session, ctx.sso_password, self.domain)
        wrong = [e.dn for e in after if not pinned(e, der)]
        if wrong:
            raise CommandFailed(f"Lookup Service: {wrong[0]} still pins another certificate")
        return {"endpoints": len(after), "repinned": len(stale)}


async def node_endpoints(session: Session, sso_password: vmdir.SsoPassword, domain: str) -> list[LdifEntry]:
    """The endpoints (with a pinned certificate) of every registration this vCenter owns."""
    node_id = await vmdir.machine_id(session)
    base = facts.registrations_dn(domain)
    owned = await vmdir.search(session, sso_password, base, "one", f"({facts.LKUP_NODE}={node_id})")
    parents = {e.dn.lower() for e in owned}
    endpoints = await vmdir.search(session, sso_password, base, "sub", ENDPOINT_CLASSES)
    return [e for e in endpoints if e.dn.split(",", 1)[1].lower() in parents]


def pinned(entry: LdifEntry, der: bytes) -> bool:
    """Whether every pin the endpoint carries is this certificate."""
    trust = [base64.b64decode(v, validate=False) for v in entry.values(facts.LKUP_TRUST)]
    return all(v == der for v in trust + entry.values(facts.LKUP_ANCHOR))
