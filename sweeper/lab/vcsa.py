"""Write vcsa nodes (VECS stores behind vecs-cli/dir-cli stand-ins) and the shared vmdir.

The file layout written here is the one the sh stand-ins in sweeper/lab/bin read; see
the header of bin/vecs-cli and bin/dir-cli.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from contextlib import closing
from pathlib import Path

from sweeper.lab.files import write_file
from sweeper.lab.incident import Placement
from sweeper.lab.mint import Authority, Mint
from sweeper.lab.paths import DNS_SUFFIX, SSO_DOMAIN, SSO_PASSWORD, LabPaths
from sweeper.lab.plan import COMPROMISED_ROOT, NodeSpec
from sweeper.lab.standins import install_sqlite3, install_tool
from sweeper.pki import issue
from sweeper.pki.issue import CRL, Certificate, PrivateKey
from sweeper.platforms.vcdb import EXTENSIONS, PSQL, VMCAM_CERT, Source, thumbprint
from sweeper.platforms.vcsa import (
    APPLMGMT_PASSWORD,
    BACKUP_STORES,
    DATA_ENCIPHERMENT,
    DIR_CLI,
    MACHINE_CSR_ALIAS,
    MACHINE_SSL,
    MACHINE_SSL_ALIAS,
    SERVICE_CONTROL,
    SMS,
    SMS_SELF_SIGNED,
    SOLUTION_USERS,
    STORES,
    STS_INTERNAL_SSL,
    TRUSTED_ROOT_CRLS,
    TRUSTED_ROOTS,
    VECS_CLI,
    VMON_START_PROFILE,
)

VECS = "/var/lib/vmware/vmafd/vecs"
"""Where the lab's vecs-cli stand-in keeps the stores (a real VECS is a database)."""
BACKUP_STORE, BACKUP_STORE_H5C = BACKUP_STORES
VCDB = "/storage/db/vpostgres/VCDB.sqlite"
"""Where the lab's psql stand-in keeps VCDB (a real one is PostgreSQL)."""
ON_START = "/usr/lib/sweeper-lab/on-start"
"""What the lab's service-control runs before it starts services: each may refuse, saying why."""
OTHER_EXTENSIONS = ("com.vmware.vim.sms", "com.vmware.cis.cls")
"""Rows of vpx_ext a rotation must leave alone."""
NULL_EXTENSION = "com.vmware.rbd"
"""Registered without a thumbprint yet (NULL): a rotation sets it, a rollback puts the NULL back."""


def rsa_keys_needed(node: NodeSpec) -> int:
    """How many RSA-2048 keys `write_vcsa` will take for this node (the vmcam one included)."""
    return len(_keyed_entries(node)) + int(node.appliance_extras)


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
    """The VECS stores of one vCenter, already synced with vmdir, its VCDB and its tool stand-ins."""
    for path in (VECS_CLI, DIR_CLI, SERVICE_CONTROL, PSQL):
        install_tool(root, path, path.rsplit("/", 1)[-1])
    install_tool(root, f"{ON_START}/20-vpxd", "on-start-vpxd")
    install_tool(root, f"{ON_START}/30-sps", "on-start-sps")
    install_sqlite3(root)
    vecs = root / VECS.lstrip("/")
    stores = STORES + ((BACKUP_STORE, BACKUP_STORE_H5C) if node.backup_store else ())
    stores += (STS_INTERNAL_SSL,) if node.appliance_extras else ()
    write_file(vecs / ".stores", "".join(f"{s}\n" for s in stores), 0o600)
    for store in stores:
        (vecs / store).mkdir(parents=True, exist_ok=True)

    placed = []
    certs: dict[str, Certificate] = {}
    for store, alias, common_name, plant in _keyed_entries(node):
        leaf = mint.leaf(node.name, plant, rsa=True, common_name=common_name)
        _entry(vecs, store, alias, cert=leaf.cert, key=leaf.key)
        certs[store] = certs.get(store, leaf.cert)
        if store == MACHINE_SSL and node.appliance_extras:
            _entry(vecs, STS_INTERNAL_SSL, MACHINE_SSL_ALIAS, cert=leaf.cert, key=leaf.key)
        if plant:
            ref = {"kind": "vecs", "store": store}
            placed.append(Placement(plant, node.name, node.profile, ref, leaf.cert, entry=alias))
    secret = os.urandom(24).hex().encode() + b"\n"
    write_file(vecs / APPLMGMT_PASSWORD / "location_password_default" / "secret", secret, 0o600)
    for anchor in anchors:
        alias = issue.fingerprint(anchor.cert, "sha1")
        _entry(vecs, TRUSTED_ROOTS, alias, cert=anchor.cert)
        if anchor is mint.authorities.compromised:
            ref = {"kind": "vecs", "store": TRUSTED_ROOTS}
            placed.append(Placement(COMPROMISED_ROOT, node.name, node.profile, ref, anchor.cert, entry=alias))
        if anchor.slug in crls:
            crl_dir = vecs / TRUSTED_ROOT_CRLS / vmdir_id(anchor.cert).lower()
            write_file(crl_dir / "crl.pem", issue.crl_pem(crls[anchor.slug]), 0o600)
    if node.appliance_extras:
        vmcam = mint.leaf(node.name, None, rsa=True, common_name=f"vmcam-{node.name}")
        write_file(root / VMCAM_CERT.lstrip("/"), issue.cert_pem(vmcam.cert))
        write_file(
            root / VMCAM_CERT.replace("rui.crt", "rui.key").lstrip("/"), issue.key_pem(vmcam.key), 0o600
        )
        certs[VMCAM_CERT] = vmcam.cert
        write_file(root / VMON_START_PROFILE.lstrip("/"), "HACore\n")
    _write_vcdb(root, certs)
    return placed


def _write_vcdb(root: Path, certs: dict[str, Certificate]) -> None:
    """VCDB's vpx_ext as a vCenter keeps it: each extension's thumbprint names its certificate."""
    by_source = {
        Source.VPXD_EXTENSION: certs["vpxd-extension"],
        Source.MACHINE_SSL: certs[MACHINE_SSL],
        Source.AUTH_PROXY: certs.get(VMCAM_CERT),
    }
    rows = [
        (ext, f"'{thumbprint(issue.cert_der(cert))}'" if ext != NULL_EXTENSION else "NULL")
        for ext, source in EXTENSIONS.items()
        if (cert := by_source[source]) is not None
    ]
    rows += [(ext, f"'{thumbprint(os.urandom(20))}'") for ext in OTHER_EXTENSIONS]
    values = ", ".join(f"('{ext}', {value})" for ext, value in rows)
    sql = "CREATE TABLE vpx_ext (ext_id TEXT PRIMARY KEY, thumbprint TEXT);"
    sql += f" INSERT INTO vpx_ext VALUES {values};"
    database = root / VCDB.lstrip("/")
    database.parent.mkdir(parents=True, exist_ok=True)
    database.unlink(missing_ok=True)
    with closing(sqlite3.connect(database)) as connection, connection:
        connection.executescript(sql)


def _keyed_entries(node: NodeSpec) -> list[tuple[str, str, str, str | None]]:
    """(store, alias, common name, plant) of every certificate+key entry of the node."""
    fqdn = f"{node.name}.{DNS_SUFFIX}"
    entries = [(MACHINE_SSL, MACHINE_SSL_ALIAS, fqdn, node.machine_ssl_plant)]
    entries += [(su, su, f"{su}-{node.name}", None) for su in SOLUTION_USERS]
    entries += [
        (DATA_ENCIPHERMENT, DATA_ENCIPHERMENT, f"data-encipherment-{node.name}", None),
        (SMS, SMS_SELF_SIGNED, f"sms-{node.name}", None),
    ]
    if node.backup_store:
        # What certificate-manager keeps for its revert: old certificates and their keys.
        entries += [
            (BACKUP_STORE, f"bkp_{MACHINE_SSL_ALIAS}", fqdn, None),
            (BACKUP_STORE, "bkp_vpxd", f"vpxd-{node.name}", None),
            (BACKUP_STORE_H5C, f"bkp_{MACHINE_SSL_ALIAS}", fqdn, None),
            (MACHINE_SSL, MACHINE_CSR_ALIAS, fqdn, None),
        ]
    return entries


def _entry(vecs: Path, store: str, alias: str, cert: Certificate, key: PrivateKey | None = None) -> None:
    folder = vecs / store / alias
    write_file(folder / "cert.pem", issue.cert_pem(cert), 0o600)
    if key is not None:
        write_file(folder / "key.pem", issue.key_pem(key), 0o600)
