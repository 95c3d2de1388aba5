"""The fleet plan: which nodes exist, what each one holds, and where every plant goes.

Pure and deterministic in (nodes, seed), so the builder, the inventory writer and the
tests all derive the same layout without reading each other's files.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sweeper.model import Role, StoreKind, StoreSpec  # the inventory's store table, as sweeper reads it
from sweeper.platforms.esxi import RUI_CRT, RUI_KEY

MIN_NODES = 5
VCSA_SHARE = 0.05
ESXI_SHARE = 0.25

# Leaf plants (one certificate each; "reused-key" is a pair on two nodes).
COMPROMISED_LEAF = "compromised-leaf"
REVOKED_LEAF = "revoked-leaf"
WEAK_KEY_LEAF = "weak-key-leaf"
WEAK_SIGNATURE_LEAF = "weak-signature-leaf"
REUSED_KEY = "reused-key"
EXPIRED_LEAF = "expired-leaf"
EXPIRING_LEAF = "expiring-leaf"
# Trust-store plants.
COMPROMISED_ROOT = "compromised-root"
ROGUE_ROOT = "rogue-root"

# Node paths (as seen on the node; every one is prefixed by the node's root).
LINUX_BUNDLE = "/etc/pki/ca-trust/source/anchors/corp-bundle.pem"
LINUX_TRUST_DIR = "/usr/local/share/ca-certificates"
LINUX_CRL_DIR = "/etc/pki/tls/crl"
# Hostile nodes (one behaviour each; lab/hostile.py writes them).
GREEDY_NAMES = "greedy-names"
"""Its own certificate names other nodes, a wildcard and a public name, and asks for CA powers."""
FORGED_ISSUER = "forged-issuer"
"""Its own certificate names the partner CA as issuer (signed by itself): a good CA it wants purged."""
LYING_OPENSSL = "lying-openssl"
"""Its openssl proves a DSA-1024 key instead of the key sweeper asked it to make."""
FLOOD = "flood"
"""A trust bundle of 1 GiB (sparse): an answer meant to exhaust the sweeping client's memory."""
HOSTILE_KINDS = (GREEDY_NAMES, FORGED_ISSUER, LYING_OPENSSL, FLOOD)

FLOOD_BUNDLE = "/etc/pki/tls/certs/flood-bundle.pem"
LAB_BIN = "/usr/local/lab-bin"
"""First on every lab node's PATH: a node's own tools (a hostile node's own openssl)."""
# What the service stand-ins write: every call, and the restarts the TLS endpoint reloads on.
SERVICES_LOG = "/var/log/lab-services.log"
RESTART_STAMP = "/var/run/lab-tls.restarts"
_LINUX_PRIMARY = ("httpd", "/etc/pki/tls/certs/server.crt", "/etc/pki/tls/private/server.key")
_LINUX_APPS = (
    ("nginx", "/etc/nginx/tls"),
    ("tomcat", "/opt/tomcat/conf/tls"),
    ("postfix", "/etc/postfix/tls"),
    ("haproxy", "/etc/haproxy/tls"),
    ("keycloak", "/opt/keycloak/conf/tls"),
    ("grafana", "/etc/grafana/tls"),
    ("slapd", "/etc/openldap/tls"),
)


@dataclass(frozen=True, slots=True)
class LeafSlot:
    """A certificate + key file pair on a node, and the plant it holds (None: healthy)."""

    service: str
    cert: str
    key: str
    plant: str | None = None


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """Everything the builder needs to write one node and the inventory to describe it."""

    name: str
    profile: str
    site: str
    leaves: tuple[LeafSlot, ...] = ()
    machine_ssl_plant: str | None = None
    compromised_anchor: bool = False
    partner_anchor: bool = False
    dir_trust: bool = False
    rogue_anchor: bool = False
    crl_store: bool = False
    backup_store: bool = False
    """vcsa: certificate-manager's leftovers (BACKUP_STORE, BACKUP_STORE_H5C, __MACHINE_CSR)."""
    appliance_extras: bool = False
    """vcsa: STS_INTERNAL_SSL_CERT, an Authentication Proxy certificate (vmcam) and vCenter HA."""
    hostile: str | None = None
    """How this node lies to sweeper (see lab/hostile.py), or None for an honest node."""

    @property
    def stores(self) -> tuple[StoreSpec, ...]:
        """Explicit stores (linux only: the vcsa and esxi profiles bring their defaults)."""
        if self.profile != "linux":
            return ()
        stores = [StoreSpec(StoreKind.PEM, Role.LEAF, cert=leaf.cert, key=leaf.key) for leaf in self.leaves]
        stores.append(StoreSpec(StoreKind.BUNDLE, Role.TRUST, path=LINUX_BUNDLE))
        if self.dir_trust:
            stores.append(StoreSpec(StoreKind.DIR, Role.TRUST, path=LINUX_TRUST_DIR))
        if self.crl_store:
            stores.append(StoreSpec(StoreKind.DIR, Role.CRL, path=LINUX_CRL_DIR))
        if self.hostile == FLOOD:
            stores.append(StoreSpec(StoreKind.BUNDLE, Role.TRUST, path=FLOOD_BUNDLE))
        return tuple(stores)


def profile_counts(nodes: int) -> tuple[int, int, int]:
    """(vcsa, esxi, linux) for a fleet of this size: ~5 % / ~25 % / rest, each at least one."""
    if nodes < MIN_NODES:
        raise ValueError(f"a lab needs at least {MIN_NODES} nodes to hold every plant, not {nodes}")
    vcsa = max(1, round(nodes * VCSA_SHARE))
    esxi = max(1, round(nodes * ESXI_SHARE))
    return vcsa, esxi, nodes - vcsa - esxi


def plan_fleet(nodes: int, seed: int = 0, hostile: tuple[str, ...] = ()) -> tuple[NodeSpec, ...]:
    """Lay out the fleet: vcsa nodes first, then esxi, then linux, plants spread by seed; then
    one `hostile-NN` Linux node per hostile behaviour asked for (the others do not move).

    :raises ValueError: for fewer than MIN_NODES nodes
    """
    n_vcsa, n_esxi, n_linux = profile_counts(nodes)
    rng = random.Random(seed)
    vcsa = _names("vc", n_vcsa)
    esxi = _names("esx", n_esxi)
    linux = _names("lnx", n_linux)
    vcsa_order = rng.sample(vcsa, n_vcsa)
    esxi_order = rng.sample(esxi, n_esxi)
    linux_order = rng.sample(linux, n_linux)

    esxi_plants: dict[str, str] = {}
    overflow: list[str] = []
    for i, plant in enumerate((COMPROMISED_LEAF, WEAK_SIGNATURE_LEAF, REUSED_KEY)):
        if i < n_esxi:
            esxi_plants[esxi_order[i]] = plant
        else:
            overflow.append(plant)
    # Both halves of the reused key sit in adjacent slots, so on two different nodes.
    linux_queue = [COMPROMISED_LEAF, REVOKED_LEAF, WEAK_KEY_LEAF, REUSED_KEY]
    linux_queue += [p for p in overflow if p == REUSED_KEY]
    linux_queue += [EXPIRED_LEAF, EXPIRING_LEAF]
    linux_queue += [p for p in overflow if p != REUSED_KEY]
    linux_plants: dict[str, list[str]] = {name: [] for name in linux}
    for i, plant in enumerate(linux_queue):
        linux_plants[linux_order[i % n_linux]].append(plant)
    rogue_node = linux_order[len(linux_queue) % n_linux]

    specs: list[NodeSpec] = []
    for name in vcsa:
        specs.append(
            NodeSpec(
                name=name,
                profile="vcsa",
                site=_site(len(specs)),
                machine_ssl_plant=COMPROMISED_LEAF if name == vcsa_order[0] else None,
                compromised_anchor=True,
                backup_store=vcsa.index(name) % 2 == 0,
                appliance_extras=vcsa.index(name) % 2 == 0,
            )
        )
    for name in esxi:
        plant = esxi_plants.get(name)
        specs.append(
            NodeSpec(
                name=name,
                profile="esxi",
                site=_site(len(specs)),
                leaves=(LeafSlot("hostd", RUI_CRT, RUI_KEY, plant),),
                compromised_anchor=plant == COMPROMISED_LEAF or rng.random() < 0.3,
                partner_anchor=rng.random() < 0.5,
            )
        )
    for name in linux:
        plants = linux_plants[name]
        extra_healthy = rng.random() < 0.2
        specs.append(
            NodeSpec(
                name=name,
                profile="linux",
                site=_site(len(specs)),
                leaves=_linux_leaves(plants, extra_healthy),
                compromised_anchor=COMPROMISED_LEAF in plants or rng.random() < 0.2,
                partner_anchor=rng.random() < 0.5,
                dir_trust=name == rogue_node or rng.random() < 0.3,
                rogue_anchor=name == rogue_node,
                crl_store=REVOKED_LEAF in plants or rng.random() < 0.25,
            )
        )
    for behaviour in hostile:
        if behaviour not in HOSTILE_KINDS:
            raise ValueError(f"no such hostile node {behaviour!r} (known: {', '.join(HOSTILE_KINDS)})")
    for name, behaviour in zip(_names("hostile", len(hostile)), hostile, strict=True):
        specs.append(
            NodeSpec(
                name=name,
                profile="linux",
                site=_site(len(specs)),
                leaves=(LeafSlot(*_LINUX_PRIMARY),),
                partner_anchor=True,
                hostile=behaviour,
            )
        )
    return tuple(specs)


def _linux_leaves(plants: list[str], extra_healthy: bool) -> tuple[LeafSlot, ...]:
    """First plant takes the main server.crt, further ones (and a healthy extra) get app dirs."""
    service, cert, key = _LINUX_PRIMARY
    slots = [LeafSlot(service, cert, key, plants[0] if plants else None)]
    extras: list[str | None] = list(plants[1:])
    if extra_healthy:
        extras.append(None)
    for (app, folder), plant in zip(_LINUX_APPS, extras, strict=False):
        slots.append(LeafSlot(app, f"{folder}/server.crt", f"{folder}/server.key", plant))
    if len(extras) > len(_LINUX_APPS):
        raise ValueError("too many plants for one linux node")
    return tuple(slots)


def _names(prefix: str, count: int) -> list[str]:
    width = max(2, len(str(count)))
    return [f"{prefix}-{i:0{width}d}" for i in range(1, count + 1)]


def _site(index: int) -> str:
    return "site-a" if index % 2 == 0 else "site-b"
