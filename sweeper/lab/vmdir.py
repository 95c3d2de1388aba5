"""The lab's VMware Directory: a real OpenLDAP `slapd` holding the objects a vCenter needs.

One directory per lab (one SSO domain, shared by every vcsa node), built offline with
`slapadd` and served on a loopback port by the lab process. The appliance's OpenLDAP
clients (/opt/likewise/bin/ldap*) and the dir-cli/vmafd-cli stand-ins reach it through
`<lab>/vmdir/ldap.uri`. Names and layout follow DESIGN "A vCenter keeps working only if
these hold": ServicePrincipals, the STS TenantCredential/TrustedCertChain, Lookup Service
registrations (current, legacy and cis.vmonapi ghosts).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sweeper.lab.files import write_file
from sweeper.lab.mint import Authority
from sweeper.lab.paths import DNS_SUFFIX, LAB_HOST, SSO_DOMAIN, SSO_PASSWORD, LabError, LabPaths
from sweeper.lab.standins import install_tool
from sweeper.lab.vcsa import ON_START
from sweeper.pki import issue
from sweeper.pki.issue import Certificate, PrivateKey
from sweeper.platforms import vmdir as names
from sweeper.platforms.vcsa import MACHINE_SSL, MACHINE_SSL_ALIAS, SOLUTION_USERS

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
LDAP_CLIENTS = ("ldapsearch", "ldapmodify", "ldapdelete")
INVARIANTS = f"{ON_START}/10-vcenter-invariants"
"""The lab's check of what a vCenter's services need, run by its service-control before a start."""
MACHINE_ID_FILE = "/var/lib/vmware/vmafd/machine-id"
"""Where the lab's vmafd-cli stand-in keeps the node's machine ID (a real vmafd: its registry)."""

_OCTETS = "1.3.6.1.4.1.1466.115.121.1.40"
_STRING = "1.3.6.1.4.1.1466.115.121.1.15"
_ATTRIBUTES = {
    "userCertificate": _OCTETS,
    "vmwSTSPrivateKey": _OCTETS,
    "vmwLKUPSslTrustAnchor": _OCTETS,
    "vmwLKUPEndpointSslTrust": _STRING,
    "vmwLKUPURI": _STRING,
    "vmwLKUPType": _STRING,
    "vmwLKUPDeploymentNodeId": _STRING,
    "cACertificate": _OCTETS,
    "certificateRevocationList": _OCTETS,
}
_CLASSES = {
    "container": "",
    "vmwServicePrincipal": "userCertificate",
    "vmwSTSTenantCredential": "userCertificate $ vmwSTSPrivateKey",
    "vmwSTSTenantTrustedCertificateChain": "userCertificate",
    "vmwLKUPServiceRegistration": "vmwLKUPType $ vmwLKUPDeploymentNodeId",
    "vmwLKUPEndpointRegistration": "vmwLKUPURI $ vmwLKUPEndpointSslTrust",
    "vmwLKUPServiceEndpoint": "vmwLKUPURI $ vmwLKUPSslTrustAnchor",
    "vmwCertificationAuthority": "cACertificate $ certificateRevocationList",
}


def schema() -> str:
    """VMware's attribute and class names (OIDs under VMware's arc; just enough for the lab)."""
    lines = [
        "attributetype ( 0.9.2342.19200300.100.1.25 NAME 'dc' EQUALITY caseIgnoreIA5Match "
        "SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 SINGLE-VALUE )"
    ]
    for index, (name, syntax) in enumerate(_ATTRIBUTES.items(), 1):
        match = "octetStringMatch" if syntax == _OCTETS else "caseExactMatch"
        lines.append(
            f"attributetype ( 1.3.6.1.4.1.6876.40.10.{index} NAME '{name}' EQUALITY {match} SYNTAX {syntax} )"
        )
    lines.append("objectclass ( 1.3.6.1.4.1.6876.40.20.0 NAME 'dcObject' SUP top STRUCTURAL MUST dc )")
    for index, (name, may) in enumerate(_CLASSES.items(), 1):
        optional = f" MAY ( {may} )" if may else ""
        oid = f"1.3.6.1.4.1.6876.40.20.{index}"
        lines.append(f"objectclass ( {oid} NAME '{name}' SUP top STRUCTURAL MUST cn{optional} )")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class VcenterObjects:
    """What one vCenter registers in the directory: its machine ID, solution users, Machine SSL."""

    name: str
    machine_id: str
    solution_users: dict[str, bytes]
    """solution user -> the DER of its VECS certificate"""
    machine_ssl: bytes


@dataclass(frozen=True, slots=True)
class StsSigner:
    """The STS signing certificate (leaf, then its chain) and its key."""

    chain: tuple[Certificate, ...]
    key: PrivateKey


def write_directory(paths: LabPaths, vcenters: list[VcenterObjects], sts: StsSigner | None) -> None:
    """Config, schema and the initial database (slapadd); nothing runs yet.

    :raises LabError: OpenLDAP's slapd is not installed, or slapadd refuses the objects
    """
    home = paths.vmdir / "ldap"
    _require(SLAPADD)
    shutil.rmtree(home, ignore_errors=True)
    (home / "data").mkdir(parents=True)
    write_file(home / "vmware.schema", schema())
    write_file(home / "slapd.conf", _config(home), 0o600)
    write_file(home / "machine-account", SSO_PASSWORD, 0o600)
    ldif = "\n".join(_entries(vcenters, sts) + _authorities(paths))
    done = subprocess.run(
        [SLAPADD, "-q", "-f", str(home / "slapd.conf")], input=ldif.encode(), capture_output=True
    )
    if done.returncode != 0:
        raise LabError(f"slapadd refused the lab's directory: {done.stderr.decode(errors='replace')[:300]}")


def start_directory(paths: LabPaths) -> subprocess.Popen[bytes]:
    """slapd in the foreground on a free loopback port; its URI written to vmdir/ldap.uri."""
    home = paths.vmdir / "ldap"
    _require(SLAPD)
    port = _free_port()
    uri = f"ldap://{LAB_HOST}:{port}/"
    process = subprocess.Popen(
        [SLAPD, "-d", "0", "-f", str(home / "slapd.conf"), "-h", uri],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LabError(f"slapd exited with status {process.returncode} (config {home / 'slapd.conf'})")
        try:
            socket.create_connection((LAB_HOST, port), 0.2).close()
            break
        except OSError:
            time.sleep(0.02)
    else:
        process.kill()
        raise LabError("slapd did not listen within 10 s")
    write_file(paths.vmdir / "ldap.uri", uri + "\n")
    return process


def stop_directory(paths: LabPaths, process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    (paths.vmdir / "ldap.uri").unlink(missing_ok=True)


def _require(tool: str) -> None:
    if not os.access(tool, os.X_OK):
        raise LabError(f"{tool} not found: install OpenLDAP (apt-get install slapd ldap-utils)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LAB_HOST, 0))
        return probe.getsockname()[1]


def _config(home: Path) -> str:
    return (
        f"include {home / 'vmware.schema'}\n"
        f"pidfile {home / 'slapd.pid'}\n"
        "moduleload back_mdb\n"
        "database mdb\n"
        "maxsize 67108864\n"
        f'suffix "{names.domain_dn(SSO_DOMAIN)}"\n'
        f'rootdn "{names.admin_dn(SSO_DOMAIN)}"\n'
        f"rootpw {_ssha(SSO_PASSWORD)}\n"
        f"directory {home / 'data'}\n"
        "access to * by * none\n"  # like VMware Directory: nothing without a bind (rootdn passes)
    )


def _ssha(password: str) -> str:
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _entry(dn: str, object_class: str, **attributes: str | bytes | list[bytes]) -> str:
    lines = [f"dn: {dn}", f"objectClass: {object_class}", f"cn: {dn.split(',', 1)[0].split('=', 1)[1]}"]
    for name, value in attributes.items():
        for one in value if isinstance(value, list) else [value]:
            if isinstance(one, bytes):
                lines.append(f"{name}:: {base64.b64encode(one).decode()}")
            else:
                lines.append(f"{name}: {one}")
    return "\n".join(lines) + "\n"


def _entries(vcenters: list[VcenterObjects], sts: StsSigner | None) -> list[str]:
    domain = names.domain_dn(SSO_DOMAIN)
    found = [f"dn: {domain}\nobjectClass: dcObject\ndc: {SSO_DOMAIN.split('.')[0]}\n"]
    for container in names.containers(SSO_DOMAIN):
        found.append(_entry(container, "container"))
    for vc in vcenters:
        for su, cert in vc.solution_users.items():
            dn = names.service_principal_dn(SSO_DOMAIN, f"{su}-{vc.machine_id}")
            found.append(_entry(dn, "vmwServicePrincipal", userCertificate=cert))
        found += _registrations(vc)
    if sts is not None:
        chain = [issue.cert_der(c) for c in sts.chain]
        key = base64.b64decode(b"".join(issue.key_pem(sts.key).splitlines()[1:-1]))  # PKCS#8 DER
        found.append(
            _entry(
                names.tenant_credential_dn(SSO_DOMAIN, 1),
                "vmwSTSTenantCredential",
                userCertificate=chain,
                vmwSTSPrivateKey=key,
            )
        )
        found.append(
            _entry(
                names.trusted_chain_dn(SSO_DOMAIN, 1),
                "vmwSTSTenantTrustedCertificateChain",
                userCertificate=chain,
            )
        )
    return found


def _authorities(paths: LabPaths) -> list[str]:
    """The roots write_vmdir published, as VMware Directory holds them (dir-cli keeps both in step)."""
    found = []
    for folder in sorted((paths.vmdir / "certs").glob("*/")):
        dn = names.certificate_authority_dn(SSO_DOMAIN, folder.name)
        crl = folder / "crl.pem"
        extra = {"certificateRevocationList": _pem_der(crl)} if crl.exists() else {}
        found.append(
            _entry(dn, "vmwCertificationAuthority", cACertificate=_pem_der(folder / "cert.pem"), **extra)
        )
    return found


def _registrations(vc: VcenterObjects) -> list[str]:
    """The node's Lookup Service registrations: vCenter (current + legacy endpoint), a vmon ghost."""
    der = vc.machine_ssl
    one_line = base64.b64encode(der).decode()
    fqdn = f"{vc.name}.{DNS_SUFFIX}"
    found = []
    for service, uri in (
        ("vcenterserver", f"https://{fqdn}:443/sdk"),
        ("cis.vmonapi", "http://localhost:1080/"),
    ):
        registration = names.registration_dn(
            SSO_DOMAIN, str(uuid.uuid5(uuid.NAMESPACE_URL, f"{vc.machine_id}/{service}"))
        )
        found.append(
            _entry(
                registration,
                "vmwLKUPServiceRegistration",
                vmwLKUPType=service,
                vmwLKUPDeploymentNodeId=vc.machine_id,
            )
        )
        found.append(
            _entry(
                f"cn=Endpoint1,{registration}",
                "vmwLKUPEndpointRegistration",
                vmwLKUPURI=uri,
                vmwLKUPEndpointSslTrust=one_line,
            )
        )
        if service == "vcenterserver":  # a 5.5-era endpoint kept across upgrades
            found.append(
                _entry(
                    f"cn=Endpoint0,{registration}",
                    "vmwLKUPServiceEndpoint",
                    vmwLKUPURI=uri,
                    vmwLKUPSslTrustAnchor=der,
                )
            )
    return found


def vcenter_objects(root: Path, name: str, vecs: str) -> VcenterObjects:
    """A written vcsa node's machine ID (made now, kept in its tree) and the certificates its
    directory objects must match, read from the node's VECS files."""
    machine_id = str(uuid.uuid4())
    write_file(root / MACHINE_ID_FILE.lstrip("/"), machine_id + "\n", 0o600)
    store = root / vecs.lstrip("/")
    users = {su: _pem_der(store / su / su / "cert.pem") for su in SOLUTION_USERS}
    return VcenterObjects(
        name, machine_id, users, _pem_der(store / MACHINE_SSL / MACHINE_SSL_ALIAS / "cert.pem")
    )


def sts_signer(issuer: Authority, host: str, now: datetime) -> StsSigner:
    """The domain's STS signing certificate, as the first vCenter's VMCA made it at install."""
    key = issue.generate_key("rsa2048")
    cert = issue.issue_leaf(
        issuer.cert,
        issuer.key,
        "ssoserverSign",
        [f"{host}.{DNS_SUFFIX}"],
        key.public_key(),
        now - timedelta(days=30),
        now + timedelta(days=700),
    )
    return StsSigner((cert, issuer.cert), key)


def install_vcenter_tools(root: Path) -> None:
    """The appliance's OpenLDAP clients, vmafd-cli and vdcadmintool at their real paths, and the
    check that makes service-control's starts fail when an invariant is broken (as the real services do)."""
    for client in LDAP_CLIENTS:
        install_tool(root, f"{names.LDAP_BIN}/{client}", "ldap-client")
    install_tool(root, names.VMAFD_CLI, "vmafd-cli")
    install_tool(root, names.VDCADMINTOOL, "vdcadmintool")
    install_tool(root, INVARIANTS, "vcenter-invariants")


def _pem_der(path: Path) -> bytes:
    lines = path.read_bytes().splitlines()
    return base64.b64decode(b"".join(line for line in lines if not line.startswith(b"-----")))
