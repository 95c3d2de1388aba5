"""Write vcsa nodes (VECS stores behind vecs-cli/dir-cli stand-ins) and the shared vmdir.

The file layout written here is the one the sh stand-ins in sweeper/lab/bin read; see
the header of bin/vecs-cli and bin/dir-cli.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from sweeper.lab.files import write_file
from sweeper.lab.incident import Placement
from sweeper.lab.mint import Authority, Mint
from sweeper.lab.paths import DNS_SUFFIX, SSO_DOMAIN, SSO_PASSWORD, LabPaths
from sweeper.lab.plan import COMPROMISED_ROOT, NodeSpec
from sweeper.lab.standins import install_service, install_tool
from sweeper.pki import issue
from sweeper.pki.issue import CRL, Certificate, PrivateKey

BIN = "/usr/lib/vmware-vmafd/bin"
VECS = "/var/lib/vmware/vmafd/vecs"
TRUSTED_ROOTS = "TRUSTED_ROOTS"
TRUSTED_ROOT_CRLS = "TRUSTED_ROOT_CRLS"
MACHINE_SSL = "MACHINE_SSL_CERT"
BACKUP_STORE = "BACKUP_STORE"
# VECS stores of a vCenter 8.0, in the order `vecs-cli store list` shows them.
STORES = (
    MACHINE_SSL,
    TRUSTED_ROOTS,
    TRUSTED_ROOT_CRLS,
    "machine",
    "vsphere-webclient",
    "vpxd",
    "vpxd-extension",
    "hvc",
    "data-encipherment",
    "APPLMGMT_PASSWORD",
    "SMS",
    "wcp",
)
_SOLUTION_USERS = ("machine", "vsphere-webclient", "vpxd", "vpxd-extension", "hvc", "wcp")


def rsa_keys_needed(node: NodeSpec) -> int:
    """How many RSA-2048 keys `write_vcsa` will take for this node."""
    return len(_keyed_entries(node))


def vmdir_id(cert: Certificate) -> str:
    """VMware Directory's id for a trusted root: its SKI in upper-case hex."""
    return (issue.subject_key_id(cert) or issue.fingerprint(cert, "sha1")).upper()


def write_vmdir(paths: LabPaths, anchors: tuple[Authority, ...], crls: dict[str, CRL]) -> None:
    """Publish the domain's trusted roots (and each root's CRL) as dir-cli would."""
    vmdir = paths.vmdir
    write_file(vmdir / "domain", SSO_DOMAIN + "\n")
    digest = hashlib.sha256(SSO_PASSWORD.encode()).hexdigest()
    write_file(vmdir / "sso.sha256", digest + "\n", 0o600)
    for anchor in anchors:
        entry = vmdir / "certs" / vmdir_id(anchor.cert)
        write_file(entry / "cert.pem", issue.cert_pem(anchor.cert))
        write_file(entry / "sha1", issue.fingerprint(anchor.cert, "sha1") + "\n")
        write_file(entry / "subject", anchor.cert.subject.rfc4514_string() + "\n")
        if anchor.slug in crls:
            write_file(entry / "crl.pem", issue.crl_pem(crls[anchor.slug]))


def write_vcsa(
    root: Path, node: NodeSpec, mint: Mint, anchors: tuple[Authority, ...], crls: dict[str, CRL]
) -> list[Placement]:
    """The VECS stores of one vCenter, already synced with vmdir, and its tool stand-ins."""
    for tool in ("vecs-cli", "dir-cli"):
        install_tool(root, f"{BIN}/{tool}", tool)
    install_service(root, "/usr/bin/service-control", "service-control", restarts=("--start", "--restart"))
    vecs = root / VECS.lstrip("/")
    stores = STORES + ((BACKUP_STORE,) if node.backup_store else ())
    write_file(vecs / ".stores", "".join(f"{s}\n" for s in stores), 0o600)
    for store in stores:
        (vecs / store).mkdir(parents=True, exist_ok=True)

    placed = []
    for store, alias, common_name, plant in _keyed_entries(node):
        leaf = mint.leaf(node.name, plant, rsa=True, common_name=common_name)
        _entry(vecs, store, alias, cert=leaf.cert, key=leaf.key)
        if plant:
            ref = {"kind": "vecs", "store": store}
            placed.append(Placement(plant, node.name, node.profile, ref, leaf.cert, entry=alias))
    secret = os.urandom(24).hex().encode() + b"\n"
    write_file(vecs / "APPLMGMT_PASSWORD" / "location_password_default" / "secret", secret, 0o600)
    for anchor in anchors:
        alias = issue.fingerprint(anchor.cert, "sha1")
        _entry(vecs, TRUSTED_ROOTS, alias, cert=anchor.cert)
        if anchor is mint.authorities.compromised:
            ref = {"kind": "vecs", "store": TRUSTED_ROOTS}
            placed.append(Placement(COMPROMISED_ROOT, node.name, node.profile, ref, anchor.cert, entry=alias))
        if anchor.slug in crls:
            crl_dir = vecs / TRUSTED_ROOT_CRLS / vmdir_id(anchor.cert).lower()
            write_file(crl_dir / "crl.pem", issue.crl_pem(crls[anchor.slug]), 0o600)
    return placed


def _keyed_entries(node: NodeSpec) -> list[tuple[str, str, str, str | None]]:
    """(store, alias, common name, plant) of every certificate+key entry of the node."""
    fqdn = f"{node.name}.{DNS_SUFFIX}"
    entries = [(MACHINE_SSL, "__MACHINE_CERT", fqdn, node.machine_ssl_plant)]
    entries += [(su, su, f"{su}-{node.name}", None) for su in _SOLUTION_USERS]
    entries += [
        ("data-encipherment", "data-encipherment", f"data-encipherment-{node.name}", None),
        ("SMS", "sms_self_signed", f"sms-{node.name}", None),
    ]
    if node.backup_store:
        # What certificate-manager keeps for its revert: old certificates and their keys.
        entries += [
            (BACKUP_STORE, "bkp___MACHINE_CERT", fqdn, None),
            (BACKUP_STORE, "bkp_vpxd", f"vpxd-{node.name}", None),
        ]
    return entries


def _entry(vecs: Path, store: str, alias: str, cert: Certificate, key: PrivateKey | None = None) -> None:
    folder = vecs / store / alias
    write_file(folder / "cert.pem", issue.cert_pem(cert), 0o600)
    if key is not None:
        write_file(folder / "key.pem", issue.key_pem(key), 0o600)
