"""Where everything lives inside a lab directory, and the lab's fixed identities.

One frozen value names every file so that build, serve, start/stop and tests agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sweeper.errors import SweeperError

# The lab's SSO identity: a fixed lab secret, exported in lab.json (0600) for the client.
SSO_DOMAIN = "vsphere.local"
SSO_USER = f"administrator@{SSO_DOMAIN}"
SSO_PASSWORD_ENV = "SWEEPER_LAB_SSO_PASSWORD"
SSO_PASSWORD = "Lab-SSO-Passw0rd"

DNS_SUFFIX = "lab.sweeper.test"
LAB_HOST = "127.0.0.1"


class LabError(SweeperError):
    """The lab cannot be built, started or stopped; the message says why."""


@dataclass(frozen=True, slots=True)
class LabPaths:
    """The layout of one lab directory (absolute paths)."""

    dir: Path

    @property
    def nodes(self) -> Path:
        return self.dir / "nodes"

    @property
    def vmdir(self) -> Path:
        """Stand-in for VMware Directory, shared by every vcsa node of the lab."""
        return self.dir / "vmdir"

    @property
    def incident(self) -> Path:
        return self.dir / "incident"

    @property
    def hostkeys(self) -> Path:
        return self.dir / "hostkeys"

    @property
    def keypool(self) -> Path:
        return self.dir / ".keypool" / "rsa2048.pem"

    @property
    def client_key(self) -> Path:
        return self.dir / "client_key"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def inventory(self) -> Path:
        return self.dir / "inventory.toml"

    @property
    def lab_json(self) -> Path:
        """Written once every listener is bound; removed on shutdown (the ready marker)."""
        return self.dir / "lab.json"

    @property
    def build_json(self) -> Path:
        """Written last by a build: its presence means the trees are complete."""
        return self.dir / "build.json"

    @property
    def log(self) -> Path:
        return self.dir / "lab.log"

    def node_root(self, name: str) -> Path:
        return self.nodes / name

    def host_key(self, name: str) -> Path:
        return self.hostkeys / name
