"""What each kind of node holds and runs: one home for platform knowledge.

Per profile (`vcsa`, `esxi`, `linux`): default stores, the restart and persist commands,
and VMware's tool paths and store names in the platform modules. Also the one answer to
"is this certificate a node's own identity?", which detection (key reuse, chains, host
names) and rotation (what gets re-issued) must agree on.
"""

from __future__ import annotations

from types import ModuleType

from sweeper.model import CertRecord, Profile, Role, StoreSpec, vecs_store_of
from sweeper.platforms import esxi, linux, vcsa

_MODULES: dict[Profile, ModuleType] = {Profile.VCSA: vcsa, Profile.ESXI: esxi, Profile.LINUX: linux}

IDENTITY_ENTRY_TYPES = (None, "Private Key")
"""A file entry (no VECS entry type) or a VECS entry that holds a private key."""


def default_stores(profile: Profile) -> tuple[StoreSpec, ...]:
    return _MODULES[profile].DEFAULT_STORES


def default_restart(profile: Profile, root: str) -> str | None:
    """The platform's command that restarts the services serving the node's certificates."""
    template = _MODULES[profile].RESTART
    return template.format(root=root.rstrip("/")) if template else None


def default_persist(profile: Profile, root: str) -> str | None:
    """The platform's command that makes file changes survive a reboot."""
    template = _MODULES[profile].PERSIST
    return template.format(root=root.rstrip("/")) if template else None


def rsa_only(profile: Profile) -> bool:
    """Whether the platform takes RSA keys only (VMCA): the new keys its nodes make are RSA."""
    return _MODULES[profile].RSA_ONLY


def new_key_kind(profile: Profile, old_key_type: str) -> str:
    """The kind of key a node makes for its new certificate: like the old one, RSA where required."""
    return "ec-p256" if old_key_type.startswith("EC") and not rsa_only(profile) else "rsa2048"


def host_names(record: CertRecord) -> tuple[str, ...]:
    """The host names a node's certificate claims: its SANs, and its CN where the CN names a host
    (leaf files, Machine SSL); a solution user's or a service's CN names that, not a host."""
    store = vecs_store_of(record.store)
    cn = record.facts.common_name if store is None or store in vcsa.HOST_NAMED_STORES else None
    return tuple(dict.fromkeys([*([cn] if cn else []), *record.facts.sans]))


def is_identity(record: CertRecord) -> bool:
    """A certificate the node presents as itself: an end-entity certificate in a leaf store.

    Not identities: CA certificates riding along in a leaf file (its chain), VECS "Trusted
    Cert" entries in leaf stores (SMS holds its VASA providers'), and the copies in VMware's
    BACKUP_STORE / BACKUP_STORE_H5C (certificate-manager's revert store).
    """
    return (
        record.role == Role.LEAF
        and not record.facts.is_ca
        and record.entry_type in IDENTITY_ENTRY_TYPES
        and record.store not in vcsa.BACKUP_LABELS
    )
