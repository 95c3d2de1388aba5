"""The planted incident, written down: manifest.json plus the files a responder is handed.

Node writers report each plant they place as a `Placement`; this module turns them
into `incident/manifest.json` (what a scan must find, per DESIGN's rule ids), the IOC
file, the compromised CA, the expected roots and the CRL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sweeper.lab.files import write_file
from sweeper.lab.mint import Authorities, Mint
from sweeper.lab.paths import LabPaths
from sweeper.lab.plan import (
    COMPROMISED_LEAF,
    COMPROMISED_ROOT,
    EXPIRED_LEAF,
    EXPIRING_LEAF,
    REUSED_KEY,
    REVOKED_LEAF,
    ROGUE_ROOT,
    WEAK_KEY_LEAF,
    WEAK_SIGNATURE_LEAF,
)
from sweeper.pki import issue
from sweeper.pki.issue import Certificate

SCHEMA = "sweeper.lab.incident/1"

# plant -> (rules it must trigger, given all of the incident/ inputs; what it is)
PLANTS: dict[str, tuple[tuple[str, ...], str]] = {
    COMPROMISED_ROOT: (
        ("compromised-issuer",),
        "the legacy root CA whose key leaked, still a trust anchor on these stores",
    ),
    COMPROMISED_LEAF: (
        ("compromised-issuer", "ioc-match"),
        "leaves minted with the leaked key; each matches one line of ioc.txt",
    ),
    REVOKED_LEAF: (("revoked",), "a corp leaf whose serial is on the corp root's CRL"),
    WEAK_KEY_LEAF: (("weak-key",), "a corp leaf with an RSA-1024 key"),
    WEAK_SIGNATURE_LEAF: (("weak-signature",), "a corp leaf signed with SHA-1"),
    REUSED_KEY: (("key-reuse",), "two leaves on two nodes sharing one key pair"),
    ROGUE_ROOT: (("rogue-root",), "a root nobody in the fleet expects, in one trust store"),
    EXPIRED_LEAF: (("expired",), "a corp leaf that expired 3 days before the build"),
    EXPIRING_LEAF: (("expiring",), "a corp leaf that expires 10 days after the build"),
}


@dataclass(frozen=True, slots=True)
class Placement:
    """One planted certificate at one place: the node, the store, the entry in it.

    `store` is {"kind": "pem", "cert", "key"} | {"kind": "bundle"|"dir", "path"} |
    {"kind": "vecs", "store"}; `entry` is the VECS alias or the file name in a dir store;
    `index` the position in a bundle. Paths are node paths (without the root prefix).
    """

    plant: str
    node: str
    profile: str
    store: dict[str, str]
    cert: Certificate = field(repr=False)
    entry: str | None = None
    index: int | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "node": self.node,
            "profile": self.profile,
            "store": self.store,
            "entry": self.entry,
            "index": self.index,
            "sha256": issue.fingerprint(self.cert),
            "serial": f"{self.cert.serial_number:x}",
            "subject": self.cert.subject.rfc4514_string(),
        }


def write_incident(
    paths: LabPaths,
    placements: Iterable[Placement],
    mint: Mint,
    nodes: int,
    seed: int,
    built: datetime,
) -> None:
    """Write incident/: manifest.json, ioc.txt, compromised-ca.pem, expected-roots.pem, crl/."""
    placed = list(placements)
    auth = mint.authorities
    out = paths.incident
    inputs = {
        "crl": out / "crl",
        "ioc": out / "ioc.txt",
        "compromised_ca": out / "compromised-ca.pem",
        "expected_roots": out / "expected-roots.pem",
    }
    write_file(inputs["crl"] / f"{auth.corp.slug}.crl", issue.crl_der(mint.corp_crl))
    write_file(inputs["compromised_ca"], issue.cert_pem(auth.compromised.cert))
    write_file(inputs["expected_roots"], b"".join(issue.cert_pem(a.cert) for a in auth.expected))
    write_file(inputs["ioc"], _ioc_text(placed, auth))
    manifest = {
        "schema": SCHEMA,
        "lab": {"nodes": nodes, "seed": seed, "built": built.isoformat()},
        "inputs": {name: str(path) for name, path in inputs.items()},
        "scan_args": [
            "--crl",
            str(inputs["crl"]),
            "--ioc",
            str(inputs["ioc"]),
            "--compromised-ca",
            str(inputs["compromised_ca"]),
            "--expected-roots",
            str(inputs["expected_roots"]),
        ],
        "authorities": _authorities(auth),
        "plants": [
            {
                "plant": plant,
                "rules": list(rules),
                "description": description,
                "locations": [p.as_json() for p in placed if p.plant == plant],
            }
            for plant, (rules, description) in PLANTS.items()
        ],
        "expected_findings": _expected_findings(placed),
    }
    write_file(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")


def _expected_findings(placed: list[Placement]) -> list[dict[str, object]]:
    findings = []
    for p in placed:
        for rule in PLANTS[p.plant][0]:
            findings.append(
                {
                    "rule": rule,
                    "plant": p.plant,
                    "node": p.node,
                    "store": p.store,
                    "entry": p.entry,
                    "index": p.index,
                    "sha256": issue.fingerprint(p.cert),
                }
            )
    return sorted(findings, key=lambda f: (str(f["rule"]), str(f["node"]), str(f["sha256"])))


def _authorities(auth: Authorities) -> dict[str, dict[str, object]]:
    roles = {
        "corp": auth.corp,
        "services": auth.services,
        "partner": auth.partner,
        "compromised": auth.compromised,
        "rogue": auth.rogue,
    }
    return {
        role: {
            "file": f"{a.slug}.pem",
            "subject": a.cert.subject.rfc4514_string(),
            "sha256": issue.fingerprint(a.cert),
            "spki_sha256": issue.spki_sha256(a.cert),
            "expected": a in auth.expected,
        }
        for role, a in roles.items()
    }


def _ioc_text(placed: list[Placement], auth: Authorities) -> str:
    """One IOC line of each kind, each naming a different compromised leaf."""
    leaves = {p.profile: p for p in placed if p.plant == COMPROMISED_LEAF}
    linux, esxi, vcsa = leaves["linux"], leaves["esxi"], leaves["vcsa"]
    sha = issue.fingerprint(linux.cert)
    issuer = issue.fingerprint(auth.compromised.cert)
    return "\n".join(
        [
            "# sweeper lab incident: indicators of compromise",
            "# The legacy root's key leaked; these are certificates the attacker minted with it.",
            "",
            f"# TLS certificate seen on {linux.node} (SHA-256 of the certificate)",
            ":".join(sha[i : i + 2] for i in range(0, len(sha), 2)),
            "",
            f"# key pair used on {esxi.node} (SHA-256 of the SubjectPublicKeyInfo)",
            f"spki:{issue.spki_sha256(esxi.cert)}",
            "",
            f"# certificate seen on {vcsa.node}: serial, and the SHA-256 of its issuer",
            f"serial:{vcsa.cert.serial_number:x} issuer:{issuer}",
            "",
        ]
    )
