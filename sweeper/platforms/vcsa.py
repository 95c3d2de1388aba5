"""vCenter Server Appliance (and PSC): VMware's tools, VECS stores and their roles, service restarts.

The facts are VMware's (DESIGN "What the real vSphere tools do"); the lab's stand-ins
install themselves at these same paths.
"""

from __future__ import annotations

from sweeper.model import Role, StoreKind, StoreSpec, vecs_label

VMAFD_BIN = "/usr/lib/vmware-vmafd/bin"
VECS_CLI = f"{VMAFD_BIN}/vecs-cli"
DIR_CLI = f"{VMAFD_BIN}/dir-cli"
SERVICE_CONTROL = "/usr/bin/service-control"

MACHINE_SSL = "MACHINE_SSL_CERT"
MACHINE_SSL_ALIAS = "__MACHINE_CERT"
MACHINE_CSR_ALIAS = "__MACHINE_CSR"
"""certificate-manager's CSR entry in MACHINE_SSL_CERT: an old private key, deleted in the purge."""
TRUSTED_ROOTS = "TRUSTED_ROOTS"
TRUSTED_ROOT_CRLS = "TRUSTED_ROOT_CRLS"  # the real name; VMware's documentation misspells it
BACKUP_STORES = ("BACKUP_STORE", "BACKUP_STORE_H5C")
"""certificate-manager's revert copies: old certificates *and keys*, never a node's identity."""
SOLUTION_USERS = ("machine", "vsphere-webclient", "vpxd", "vpxd-extension", "hvc", "wcp")
DATA_ENCIPHERMENT = "data-encipherment"
SMS = "SMS"
SMS_SELF_SIGNED = "sms_self_signed"
"""SMS's own certificate: self-signed, made again by vmware-sps when it starts without one."""
STS_INTERNAL_SSL = "STS_INTERNAL_SSL_CERT"
APPLMGMT_PASSWORD = "APPLMGMT_PASSWORD"  # a secret key, no certificate
STORES = (
    MACHINE_SSL,
    TRUSTED_ROOTS,
    TRUSTED_ROOT_CRLS,
    "machine",
    "vsphere-webclient",
    "vpxd",
    "vpxd-extension",
    "hvc",
    DATA_ENCIPHERMENT,
    APPLMGMT_PASSWORD,
    SMS,
    "wcp",
)
"""The stores of a vCenter 8.0, in the order `vecs-cli store list` prints them."""

REISSUED_STORES = (MACHINE_SSL, *SOLUTION_USERS, DATA_ENCIPHERMENT, SMS, STS_INTERNAL_SSL)
"""The VECS stores whose certificate+key entries a rotation replaces; any other store is reported."""
HOST_NAMED_STORES = (MACHINE_SSL, STS_INTERNAL_SSL)
"""Stores whose certificate's CN is a host name (the others' CN names a solution user or a service)."""
CLIENT_STORES = SOLUTION_USERS
"""Solution users log in to SSO with their certificates: clientAuth as well as serverAuth."""
RSA_ONLY = True
"""VMCA accepts RSA only, 2048 to 8192 bits, anywhere in the chain."""

DEFAULT_STORES = (StoreSpec(kind=StoreKind.VECS, role=Role.LEAF),)
"""Every VECS store that `vecs-cli store list` reports."""

VMON_START_PROFILE = "/storage/vmware-vmon/defaultStartProfile"
"""Names HACore on a node of a vCenter HA cluster: its services start with the HAActive profile."""
RESTART = (
    f"{{root}}{SERVICE_CONTROL} --stop --all && {{root}}{SERVICE_CONTROL} --start --all"
    f"$(grep -qs HACore {{root}}{VMON_START_PROFILE} && echo ' --vmon-profile HAActive')"
)
"""Everything stopped, then started (under vCenter HA with `--vmon-profile HAActive`, as vCert does)."""
PERSIST = None

MACHINE_SSL_LABEL = vecs_label(MACHINE_SSL)
TRUSTED_ROOTS_LABEL = vecs_label(TRUSTED_ROOTS)
TRUSTED_ROOT_CRLS_LABEL = vecs_label(TRUSTED_ROOT_CRLS)
BACKUP_LABELS = tuple(vecs_label(store) for store in BACKUP_STORES)


def store_role(store: str) -> Role:
    """What a VECS store holds: trust anchors, CRLs, or certificates with their keys."""
    if store == TRUSTED_ROOTS:
        return Role.TRUST
    if store == TRUSTED_ROOT_CRLS:
        return Role.CRL
    return Role.LEAF
