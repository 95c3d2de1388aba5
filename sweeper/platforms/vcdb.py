"""vCenter's database (VCDB): the extension thumbprints in `vpx_ext` that must name the certificates
those extensions present (vCert's checkCerts / fixcerts), and how to tell when they do not."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from sweeper.platforms.vcsa import MACHINE_SSL

PSQL = "/opt/vmware/vpostgres/current/bin/psql"
DATABASE = "VCDB"
DB_USER = "postgres"
"""Local login over the socket, as vCert runs it: no password."""
VMCAM_CERT = "/var/lib/vmware/vmcam/ssl/rui.crt"
"""The Authentication Proxy's certificate, where the appliance has one."""
VPXD_EXTENSION = "vpxd-extension"


class Source(enum.StrEnum):
    """Which certificate an extension's thumbprint must name."""

    VPXD_EXTENSION = VPXD_EXTENSION
    MACHINE_SSL = MACHINE_SSL
    AUTH_PROXY = VMCAM_CERT


EXTENSIONS: dict[str, Source] = {
    "com.vmware.vim.eam": Source.VPXD_EXTENSION,
    "com.vmware.rbd": Source.VPXD_EXTENSION,
    "com.vmware.imagebuilder": Source.VPXD_EXTENSION,
    "com.vmware.vcIntegrity": Source.VPXD_EXTENSION,
    "com.vmware.vlcm.client": Source.VPXD_EXTENSION,
    "com.vmware.vsan.health": Source.MACHINE_SSL,
    "com.vmware.vmcam": Source.AUTH_PROXY,
}
"""vpx_ext.ext_id -> the certificate its thumbprint names."""
THUMBPRINTED_STORES = (MACHINE_SSL, VPXD_EXTENSION)
"""VECS stores whose re-issue changes a thumbprint VCDB holds."""


def thumbprint(der: bytes) -> str:
    """A certificate's thumbprint as VCDB holds it: SHA-1, upper-case hex, colon-separated."""
    digest = hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def normal(value: str) -> str:
    """A thumbprint compared as VMware's tools compare it: case and colons do not matter."""
    return value.strip().replace(":", "").upper()


@dataclass(frozen=True, slots=True)
class VpxExtProblem:
    """An extension whose VCDB thumbprint is not the certificate it presents (it fails to connect)."""

    ext_id: str
    found: str
    wanted: str
    source: Source

    def __str__(self) -> str:
        said = f"vpx_ext {self.ext_id}: thumbprint {self.found}"
        return f"{said} is not the {self.source} certificate's {self.wanted}"


def wanted_thumbprints(rows: Mapping[str, str], current: Mapping[Source, str]) -> dict[str, str]:
    """ext_id -> the thumbprint it must hold, for every known extension VCDB registers whose
    certificate is there (no Authentication Proxy certificate: its row is left alone)."""
    return {ext: current[source] for ext, source in EXTENSIONS.items() if ext in rows and source in current}


def vpx_ext_problems(rows: Mapping[str, str], current: Mapping[Source, str]) -> tuple[VpxExtProblem, ...]:
    """Pure: every known extension whose thumbprint differs from its certificate's.

    :param rows: vpx_ext ext_id -> thumbprint, as VCDB holds them
    :param current: the thumbprint of each certificate the node has now (see `thumbprint`)
    """
    return tuple(
        VpxExtProblem(ext, rows[ext], wanted, EXTENSIONS[ext])
        for ext, wanted in wanted_thumbprints(rows, current).items()
        if normal(rows[ext]) != normal(wanted)
    )
