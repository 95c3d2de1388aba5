"""What the sweep after a rotation judges by: the `--from` scan's own incident inputs, and the
roots the fleet should trust from now on.

A verify sweep without the CRLs, IOC lists and compromised CAs of the incident, or without
expected roots, says "0 findings" about a fleet that still trusts a root planted after the
first scan. So it reads the very files the `--from` scan recorded (refused if any changed),
and expects the roots that scan expected (or, when it was given none, the anchors it found),
less the ones the rotation purges, plus the new root.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

from sweeper.errors import CorruptInput
from sweeper.incident import ExpectedRoots, Incident, baseline_of, reload_incident
from sweeper.model import InputRef
from sweeper.report import schema


@dataclass(frozen=True, slots=True)
class VerifyBasis:
    """The incident the verify sweep judges by; kept in the journal so a resumed rotation verifies alike."""

    incident: Incident

    def to_json(self) -> dict[str, Any]:
        roots = self.incident.expected_roots
        assert roots is not None  # verify_basis always sets them
        return {
            "inputs": [asdict(item) for item in self.incident.inputs],
            "expected_roots": {"source": roots.source, "sha256": sorted(roots.sha256)},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VerifyBasis:
        """:raises CorruptInput: an input file changed or went away since the rotation started."""
        incident = reload_incident(InputRef(**item) for item in data["inputs"])
        roots = data["expected_roots"]
        expected = ExpectedRoots(roots["source"], frozenset(roots["sha256"]))
        return cls(replace(incident, expected_roots=expected))


def verify_basis(
    source: schema.Report, incident: Incident, purged: Iterable[str], new_root_sha256: str
) -> VerifyBasis:
    """The scan's `incident` expecting its roots (or, if none were given, the anchors it found)
    less `purged` (SHA-256s the plan removes) plus the new root."""
    expected = incident.expected_roots
    if expected is None:
        try:
            expected = baseline_of(source, f"the --from scan {source.run.id}")
        except CorruptInput:  # it found no anchor at all: only the new root is expected
            expected = ExpectedRoots(f"the --from scan {source.run.id}", frozenset())
    roots = (expected.anywhere - set(purged)) | {new_root_sha256}  # fleet-wide: every node gets the new root
    renamed = replace(expected, source=f"{expected.source} (less the purged roots, plus the new root)")
    fleet_wide = replace(renamed, sha256=frozenset(roots), per_node=None)
    return VerifyBasis(replace(incident, expected_roots=fleet_wide))
