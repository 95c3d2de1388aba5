"""The demo's story on a lab fleet: what the planted incident gives the scan and the rotation."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sweeper.atomic import atomic_write
from sweeper.detect import Context
from sweeper.incident import load_incident
from sweeper.lab import LabHandle

PASSPHRASE_FILE = "journal-passphrase"


@dataclass(frozen=True, slots=True)
class LabIncident:
    """The incident files a responder would be handed, as the lab wrote them."""

    crl: Path
    ioc: Path
    compromised_ca: Path
    expected_roots: Path

    @classmethod
    def of(cls, lab: LabHandle) -> LabIncident:
        args = json.loads((lab.dir / "incident" / "manifest.json").read_text())["scan_args"]
        value = {flag: Path(path) for flag, path in zip(args[::2], args[1::2], strict=True)}
        return cls(value["--crl"], value["--ioc"], value["--compromised-ca"], value["--expected-roots"])

    def context(self, expected_roots: Path | None = None) -> Context:
        incident = load_incident(
            crls=[self.crl],
            iocs=[self.ioc],
            compromised_cas=[self.compromised_ca],
            expected_roots=expected_roots or self.expected_roots,
        )
        return Context(incident=incident)


def expected_after_rotation(lab: LabHandle, journal: Path, incident: LabIncident) -> Path:
    """What the fleet should trust once rotated: the new root and the anchors never in question."""
    path = lab.dir / "expected-after-rotation.pem"
    atomic_write(path, (journal / "new-root.pem").read_bytes() + incident.expected_roots.read_bytes())
    return path


def lab_journal_passphrase(lab: LabHandle) -> str:
    """$SWEEPER_JOURNAL_PASSPHRASE, or one made for this lab and kept beside it (0600): lab only,
    so that `sweeper resume` and `rollback` work on the demo's journal afterwards."""
    given = os.environ.get("SWEEPER_JOURNAL_PASSPHRASE")
    if given:
        return given
    path = lab.dir / PASSPHRASE_FILE
    if not path.exists():
        atomic_write(path, secrets.token_urlsafe(24).encode(), mode=0o600)
    return path.read_text().strip()
