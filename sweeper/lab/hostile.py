"""The lab's hostile nodes: what a node whose root is the attacker does to sweeper.

Each one is a Linux node named `hostile-NN` added to the fleet with one behaviour
(`sweeper lab up --hostile greedy-names,forged-issuer,...`); the rest of the fleet stays
exactly as the seed lays it out. DESIGN "Nodes are adversaries" names what sweeper must do.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from sweeper.lab.files import write_file
from sweeper.lab.mint import Mint
from sweeper.lab.paths import DNS_SUFFIX, LAB_HOST
from sweeper.lab.plan import (
    DEEP_CHAIN,
    FLOOD,
    FLOOD_BUNDLE,
    FORGED_ISSUER,
    GREEDY_NAMES,
    LAB_BIN,
    LINUX_BUNDLE,
    LYING_OPENSSL,
    MANY_ANCHORS,
    MULTIPLE_MODULUS,
    SAME_NAME_CAS,
    NodeSpec,
)
from sweeper.lab.standins import install_tool
from sweeper.pki import issue

STOLEN_NAMES = (f"vc-01.{DNS_SUFFIX}", f"*.{DNS_SUFFIX}", "www.bank.example")
FLOOD_BYTES = 1 << 30
DEEP_CHAIN_CAS = 1099
SAME_NAME_CA_COUNT = 11
MANY_ANCHOR_COUNT = 1000


def write_hostile(root: Path, node: NodeSpec, mint: Mint) -> None:
    """Turn an already written, healthy Linux node into its hostile version."""
    slot = node.leaves[0]
    fqdn = f"{node.name}.{DNS_SUFFIX}"
    now = mint.now
    if node.hostile in (GREEDY_NAMES, FORGED_ISSUER, MULTIPLE_MODULUS):
        key = issue.generate_key("ec-p256")
        greedy = node.hostile == GREEDY_NAMES
        names = [fqdn, node.name, LAB_HOST, *(STOLEN_NAMES if greedy else ())]
        issuer = mint.authorities.partner.cert.subject if node.hostile == FORGED_ISSUER else None
        carried = None
        if node.hostile == MULTIPLE_MODULUS:
            carried = issue.multiplied_rsa_key(mint.authorities.corp.cert, 3)
        cert = issue.forge_leaf(
            key, fqdn, names, now - timedelta(days=1), now + timedelta(days=90), issuer, greedy, carried
        )
        write_file(root / slot.cert.lstrip("/"), issue.cert_pem(cert))
        write_file(root / slot.key.lstrip("/"), issue.key_pem(key), 0o600)
    elif node.hostile in (DEEP_CHAIN, SAME_NAME_CAS):
        signer = issue.generate_key("ec-p256")  # one key for every CA: the names are the attack
        if node.hostile == DEEP_CHAIN:
            cas = [issue.make_root("Deep Chain Root", signer, not_before=now - timedelta(days=1))]
            for index in range(1, DEEP_CHAIN_CAS):
                cas.append(
                    issue.make_intermediate(
                        cas[-1], signer, f"Deep Chain CA {index}", signer.public_key(), path_length=None
                    )
                )
        else:
            cas = [issue.make_root("Same Name CA", signer) for _ in range(SAME_NAME_CA_COUNT)]
        key = issue.generate_key("ec-p256")
        leaf = issue.issue_leaf(
            cas[-1], signer, fqdn, [fqdn, node.name, LAB_HOST], key.public_key(),
            now - timedelta(days=1), now + timedelta(days=90),
        )  # fmt: skip
        chain = b"".join(issue.cert_pem(c) for c in (leaf, *reversed(cas)))
        write_file(root / slot.cert.lstrip("/"), chain)
        write_file(root / slot.key.lstrip("/"), issue.key_pem(key), 0o600)
    elif node.hostile == MANY_ANCHORS:
        signer = issue.generate_key("ec-p256")  # half are copies of one root, half have keys of their own
        keys = [signer if i % 2 else issue.generate_key("ec-p256") for i in range(MANY_ANCHOR_COUNT)]
        copies = [issue.make_root("Many Anchors Root", key) for key in keys]
        with open(root / LINUX_BUNDLE.lstrip("/"), "ab") as bundle:
            bundle.write(b"".join(issue.cert_pem(c) for c in copies))
    elif node.hostile == LYING_OPENSSL:
        install_tool(root, f"{LAB_BIN}/openssl", "openssl-hostile")
    elif node.hostile == FLOOD:
        path = root / FLOOD_BUNDLE.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:  # sparse: costs no disk, reads as a GiB of zeros
            handle.truncate(FLOOD_BYTES)
        os.chmod(path, 0o644)
