"""Reissue phase: per node, new keys made on the node, new leaves from the new root installed
atomically and read back, then the node's persist and restart commands and a TLS check."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

from sweeper import stores
from sweeper.errors import CommandFailed
from sweeper.model import Node, Role, StoreKind, StoreSpec
from sweeper.pki import rotation
from sweeper.pki.parse import spki_sha256_from_openssl_output
from sweeper.rotate import node as on_node
from sweeper.rotate import remote, vmdir
from sweeper.rotate.steps.base import (
    BackupKind,
    BackupTarget,
    FileBackup,
    Phase,
    ScriptContext,
    Step,
    StepContext,
    VecsBackup,
)
from sweeper.shell import RunTime, Tag, run_node_script
from sweeper.ssh import Session

NEW_CERTIFICATE = RunTime("the new certificate, signed by the new root for the key the node just made")


@dataclass(frozen=True, slots=True)
class OldCertificate:
    """The certificate being replaced: what the new CA's revocation list needs of it."""

    sha256: str
    serial: str
    issuer: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Reissue(Step):
    """A new key made on the node, proven, and a certificate for it with the plan's approved profile."""

    key_kind: str
    """What the node makes: rsa2048 or ec-p256 (the platform's key policy decided)."""
    rsa_only: bool
    profile: rotation.LeafProfile
    old: OldCertificate
    dropped: tuple[str, ...] = ()
    """Names the old certificate carried that the inventory does not allow this node."""

    def describe(self) -> str:
        names = ", ".join(self.profile.names)
        said = f"new {self.key_kind} key + certificate for {self.target}: CN={self.profile.common_name}"
        said += f", names {names}" + (" (+clientAuth)" if self.profile.client_auth else "")
        return said + (f"; dropped, not allowed: {', '.join(self.dropped)}" if self.dropped else "")

    def _keygen(self, pending: str) -> str:
        return remote.ensure_pending_key(pending, self.key_kind, RunTime("a fresh nonce"))

    async def _issue(self, ctx: StepContext, session: Session, pending: str) -> tuple[bytes, bytes, str]:
        """(public key, new certificate, its sha256): the key proven, the certificate recorded as issued."""
        policy = rotation.KeyPolicy(rsa_only=self.rsa_only)
        public_pem = await on_node.new_key(session, pending, self.key_kind, policy)
        new_pem = await asyncio.to_thread(
            rotation.issue_leaf, self.profile, public_pem, ctx.ca, ctx.leaf_days
        )
        new_sha = rotation.certificate_sha256(new_pem)
        await ctx.journal.record_issued(
            session.node.name, self.target, rotation.certificate_serial(new_pem), new_sha
        )
        return public_pem, new_pem, new_sha


@dataclass(frozen=True, slots=True, kw_only=True)
class ReissueFile(Reissue):
    """A leaf file and its key file: a new key made on the node, a new certificate for it, key first."""

    kind: Literal["reissue-file"] = "reissue-file"
    PHASE: ClassVar[Phase] = Phase.REISSUE
    cert: str
    key: str

    @property
    def target(self) -> str:
        return self.cert

    def backups(self) -> tuple[BackupTarget, ...]:
        return (FileBackup(self.cert), FileBackup(self.key, secret=True))

    def _install(self, node: Node, cert_pem: bytes, cert_meta: tuple, key_meta: tuple) -> str:
        key_path = node.path(self.key)
        return remote.install_leaf(
            node.path(self.cert), cert_pem, cert_meta, key_path, remote.pending_key_path(key_path), key_meta
        )

    def scripts(self, ctx: ScriptContext, node: Node) -> list[tuple[str, str]]:
        pending = remote.pending_key_path(node.path(self.key))
        kept = (RunTime("owner"), RunTime("group"), RunTime("mode"))
        return [
            ("make the new key on the node", self._keygen(pending)),
            ("install key and certificate", self._install(node, NEW_CERTIFICATE, kept, kept)),
        ]

    async def apply(self, ctx: StepContext, session: Session) -> dict[str, Any]:
        node = session.node
        cert_path, key_path = node.path(self.cert), node.path(self.key)
        old_cert = ctx.backup_of(node.name, BackupKind.FILE, cert_path)
        old_key = ctx.backup_of(node.name, BackupKind.FILE, key_path)
        _, new_pem, new_sha = await self._issue(ctx, session, remote.pending_key_path(key_path))
        key_mode = "0400" if old_key.mode == "0400" else "0600"
        body = self._install(
            node,
            new_pem,
            (old_cert.owner, old_cert.group, old_cert.mode or "0644"),
            (old_key.owner, old_key.group, key_mode),
        )
        await self._install_and_verify(session, body, new_sha, key_mode)
        return {"new_sha256": new_sha, "old_sha256": self.old.sha256, "key_mode": key_mode}

    async def _install_and_verify(self, session: Session, body: str, new_sha: str, key_mode: str) -> None:
        """Install (always: this attempt's certificate is new), then read the pair back with the scan's
        own reader, in one round trip: the new certificate, its key, the mode."""
        probe = replace(
            session.node, stores=(StoreSpec(StoreKind.PEM, Role.LEAF, cert=self.cert, key=self.key),)
        )
        script = remote.HELPERS + body + stores.read_script(probe)
        output = await run_node_script(session, script, f"install {self.cert} and read it back")
        read = await asyncio.to_thread(stores.parse, probe, output)
        cert = read.certificates[0] if read.certificates else None
        if cert is None or cert.facts.sha256 != new_sha:
            raise CommandFailed(f"{self.cert}: the new certificate is not in place after installing it")
        if cert.key is None or cert.key.matches is not True or cert.key.mode != key_mode:
            raise CommandFailed(f"{self.key}: the new key does not match or has the wrong mode")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReissueVecs(Reissue):
    """A VECS certificate+key entry (Machine SSL, a solution user, SMS...): new key, new certificate."""

    kind: Literal["reissue-vecs"] = "reissue-vecs"
    PHASE: ClassVar[Phase] = Phase.REISSUE
    ALONGSIDE: ClassVar[bool] = True  # one VECS entry (and its ServicePrincipal) each: independent
    store: str
    alias: str
    service_principal: bool = False
    """A solution user: its ServicePrincipal in VMware Directory gets the certificate first."""

    @property
    def target(self) -> str:
        return f"{self.store}/{self.alias}"

    @property
    def uses_sso(self) -> bool:
        return self.service_principal

    def backups(self) -> tuple[BackupTarget, ...]:
        return (VecsBackup(self.store, self.alias),)

    def journal_targets(self, ctx: ScriptContext, node: Node) -> tuple[tuple[BackupKind, str], ...]:
        found = super(ReissueVecs, self).journal_targets(ctx, node)
        if self.service_principal:
            found += ((BackupKind.LDAP, f"cn={self.store}-*,cn=serviceprincipals,*".lower()),)
        return found

    def _work(self, node: Node) -> str:
        return node.path(f"{remote.PENDING_DIR}/{_safe(self.store)}__{_safe(self.alias)}")

    def scripts(self, ctx: ScriptContext, node: Node) -> list[tuple[str, str]]:
        work = self._work(node)
        replace_entry = remote.vecs_replace_entry(node, self.store, self.alias, work, NEW_CERTIFICATE)
        register = []
        if self.service_principal:
            name = RunTime(f"{self.store}-machineID")
            update = vmdir.service_update_script(node, ctx.sso_password(node), name, NEW_CERTIFICATE)
            register = [("update the ServicePrincipal in VMware Directory first", update)]
        return [
            ("make the new key on the node", self._keygen(f"{work}/key.pem")),
            *register,
            ("replace the entry", replace_entry),
            ("clean up", remote.remove_tree(work)),
        ]

    async def apply(self, ctx: StepContext, session: Session) -> dict[str, Any]:
        node = session.node
        ctx.backup_of(node.name, BackupKind.VECS, self.target)
        work = self._work(node)
        public_pem, new_pem, new_sha = await self._issue(ctx, session, f"{work}/key.pem")
        registered = {}
        if self.service_principal:  # VMware Directory first, then VECS (vCert's order)
            registered["service_principal"] = await vmdir.register_solution_user(
                ctx, session, self.store, new_pem
            )
        # One round trip: replace (this attempt's certificate is new, so always), then read the entry
        # and its key's public half back; the work folder goes only once both are checked.
        body = (
            remote.vecs_replace_entry(node, self.store, self.alias, work, new_pem)
            + remote.vecs_entry_list(node, self.store, "e0")
            + remote.vecs_key_public(node, self.store, self.alias)
        )
        output = await on_node.run(session, body, "vecs-cli create")
        entries = on_node.store_entries_of(on_node.entries_in(output, self.store, "e0"))
        if next((e.sha256 for e in entries if e.alias == self.alias), None) != new_sha:
            raise CommandFailed(f"vecs {self.target}: the new certificate is not there after replacing it")
        if on_node.key_spki_in(output, self.target) != spki_sha256_from_openssl_output(public_pem.decode()):
            raise CommandFailed(f"vecs {self.target}: the stored key is not the new certificate's")
        await on_node.run(session, remote.remove_tree(work), "clean up")
        return {"new_sha256": new_sha, "old_sha256": self.old.sha256, **registered}


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


async def run_command(session: Session, command: str, what: str) -> None:
    """Run a node's own command (persist, restart) in its own shell; a non-zero status fails the step."""
    output = await on_node.run(session, remote.run_command(command), what)
    status = next((s.section_id for s in output.tagged(Tag.STATUS)), "?")
    if status != "0":
        raise CommandFailed(f"{what} command exited with status {status}: {command}")


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeCommand(Step):
    """A command the inventory (or the platform) gives the node, run in its own shell."""

    command: str

    def scripts(self, ctx: ScriptContext, node: Node) -> list[tuple[str, str]]:
        return [(self.kind, remote.run_command(self.command))]

    async def apply(self, ctx: StepContext, session: Session) -> dict[str, Any]:
        await run_command(session, self.command, self.kind)
        return {"command": self.command}


@dataclass(frozen=True, slots=True, kw_only=True)
class Persist(NodeCommand):
    """The node's persist command (ESXi: auto-backup.sh) after a phase changed its files."""

    kind: Literal["persist"] = "persist"
    PHASE: ClassVar[Phase] = Phase.REISSUE
    after: Phase
    """The phase whose file changes this makes permanent; the step runs at its end."""

    @property
    def phase(self) -> Phase:
        return self.after

    @property
    def target(self) -> str:
        return "files"

    def describe(self) -> str:
        return f"make the changes survive a reboot: {self.command}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Restart(NodeCommand):
    """The node's restart command, so its services load the new certificates."""

    kind: Literal["restart"] = "restart"
    PHASE: ClassVar[Phase] = Phase.REISSUE

    @property
    def target(self) -> str:
        return "services"

    def describe(self) -> str:
        return f"run: {self.command}"


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyTls(Step):
    """A real TLS handshake on the node's port must present one of its new certificates."""

    kind: Literal["verify-tls"] = "verify-tls"
    PHASE: ClassVar[Phase] = Phase.REISSUE
    host: str
    port: int

    @property
    def target(self) -> str:
        return str(self.port)

    def describe(self) -> str:
        return f"TLS handshake on port {self.port} must show the new certificate"

    async def apply(self, ctx: StepContext, session: Session) -> dict[str, Any]:
        node = session.node
        expected = {s.detail.get("new_sha256") for s in ctx.journal.steps(Phase.REISSUE, node.name)}
        served = ""
        for _ in range(20):  # the service may still be coming back from its restart
            try:
                if node.jump:  # we cannot reach it directly: go through the node's own connection
                    async with session.forward(self.host, self.port) as local_port:
                        served = await served_certificate("127.0.0.1", local_port, self.host)
                else:
                    served = await served_certificate(self.host, self.port, self.host)
            except (OSError, ssl.SSLError, TimeoutError):
                served = ""
            if served in expected:
                return {"served_sha256": served}
            await asyncio.sleep(0.5)
        raise CommandFailed(
            f"TLS on {self.host}:{self.port} serves {served or 'nothing'}, not the new certificate"
        )


async def served_certificate(host: str, port: int, server_name: str) -> str:
    # No CA store: we compare the exact certificate instead (create_default_context would load the
    # system's every time, ~60 ms that block the event loop for every node of the rotation).
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    opening = asyncio.open_connection(host, port, ssl=context, server_hostname=server_name)
    reader, writer = await asyncio.wait_for(opening, 5)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    return hashlib.sha256(der).hexdigest()
