"""Write linux and esxi nodes: certificates, keys and trust stores as plain files.

Each writer returns the plants it placed. Trust stores deliberately mix formats (PEM,
DER, CRLF line ends) because real fleets do.
"""

from __future__ import annotations

from pathlib import Path

from sweeper.lab.files import write_file
from sweeper.lab.incident import Placement
from sweeper.lab.mint import Authority, Mint
from sweeper.lab.plan import (
    COMPROMISED_ROOT,
    LINUX_BUNDLE,
    LINUX_CRL_DIR,
    LINUX_TRUST_DIR,
    ROGUE_ROOT,
    NodeSpec,
)
from sweeper.lab.standins import install_service
from sweeper.pki import issue
from sweeper.platforms.esxi import AUTO_BACKUP, CASTORE

# systemctl verbs after which a unit runs with freshly read certificates.
_SYSTEMCTL_RESTARTS = ("start", "restart", "reload", "try-restart", "reload-or-restart")


def write_leaves(root: Path, node: NodeSpec, mint: Mint) -> list[Placement]:
    """Every leaf slot of the node: the certificate 0644, its key 0600."""
    placed = []
    for slot in node.leaves:
        leaf = mint.leaf(node.name, slot.plant)
        write_file(root / slot.cert.lstrip("/"), issue.cert_pem(leaf.cert))
        write_file(root / slot.key.lstrip("/"), issue.key_pem(leaf.key), 0o600)
        if slot.plant:
            store = {"kind": "pem", "cert": slot.cert, "key": slot.key}
            placed.append(Placement(slot.plant, node.name, node.profile, store, leaf.cert))
    return placed


def write_bundle(root: Path, node: NodeSpec, path: str, mint: Mint) -> list[Placement]:
    """A PEM bundle of anchors: corp and services always, partner and compromised per plan."""
    auth = mint.authorities
    anchors: list[Authority] = [auth.corp, auth.services]
    if node.partner_anchor:
        anchors.append(auth.partner)
    if node.compromised_anchor:
        anchors.append(auth.compromised)
    write_file(root / path.lstrip("/"), b"".join(issue.cert_pem(a.cert) for a in anchors))
    return [
        Placement(
            COMPROMISED_ROOT,
            node.name,
            node.profile,
            {"kind": "bundle", "path": path},
            a.cert,
            index=i,
        )
        for i, a in enumerate(anchors)
        if a is auth.compromised
    ]


def write_esxi(root: Path, node: NodeSpec, mint: Mint) -> list[Placement]:
    """rui.crt/rui.key/castore.pem plus the backup and restart commands rotation runs."""
    placed = write_leaves(root, node, mint)
    placed += write_bundle(root, node, CASTORE, mint)
    install_service(root, AUTO_BACKUP, "auto-backup.sh")
    # hostd stands for the host's HTTPS endpoint; vpxa (the vCenter agent) serves none.
    install_service(root, "/etc/init.d/hostd", "hostd", restarts=("start", "restart"))
    install_service(root, "/etc/init.d/vpxa", "vpxa")
    return placed


def write_linux(root: Path, node: NodeSpec, mint: Mint) -> list[Placement]:
    """Leaves, the corp bundle, and optionally a dir of anchors and a dir of CRLs."""
    auth = mint.authorities
    placed = write_leaves(root, node, mint)
    placed += write_bundle(root, node, LINUX_BUNDLE, mint)
    if node.dir_trust:
        folder = root / LINUX_TRUST_DIR.lstrip("/")
        write_file(folder / f"{auth.corp.slug}.pem", issue.cert_pem(auth.corp.cert))
        write_file(folder / f"{auth.partner.slug}.crt", issue.cert_der(auth.partner.cert))
        crlf = issue.cert_pem(auth.services.cert).replace(b"\n", b"\r\n")
        write_file(folder / f"{auth.services.slug}.crt", crlf)
        if node.rogue_anchor:
            name = f"{auth.rogue.slug}.pem"
            write_file(folder / name, issue.cert_pem(auth.rogue.cert))
            store = {"kind": "dir", "path": LINUX_TRUST_DIR}
            placed.append(Placement(ROGUE_ROOT, node.name, node.profile, store, auth.rogue.cert, entry=name))
    if node.crl_store:
        folder = root / LINUX_CRL_DIR.lstrip("/")
        write_file(folder / f"{auth.corp.slug}.crl", issue.crl_der(mint.corp_crl))
        write_file(folder / f"{auth.partner.slug}.crl", issue.crl_pem(mint.partner_crl))
    install_service(root, "/usr/bin/systemctl", "systemctl", restarts=_SYSTEMCTL_RESTARTS)
    return placed
