"""The demo's story on a lab fleet: start it, sweep the planted incident, replace everything, sweep again.

The story runs here; how it looks is the caller's (`DemoView`), so the command line only
presents it. The lab's own secrets (its SSO password) reach the sweeps and the rotation as
their environment, never through this process's.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from sweeper import history
from sweeper.atomic import atomic_write
from sweeper.detect import Context
from sweeper.incident import load_incident
from sweeper.inventory import load_inventory
from sweeper.lab import LabHandle, start_lab
from sweeper.model import NodeResult, Report
from sweeper.report import schema
from sweeper.report.formats import parse_formats
from sweeper.report.publish import Publication, publish
from sweeper.rotate.engine import Progress
from sweeper.rotate.service import RotateRequest, prepare, start
from sweeper.scan import ScanOptions, scan

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


class DemoView(Protocol):
    """How the story is shown: chapters, notes, sweep progress, each sweep's outcome, rotation progress."""

    def chapter(self, title: str) -> None: ...

    def note(self, text: str) -> None: ...

    def sweeping(self, total: int) -> AbstractContextManager[Callable[[NodeResult], None]]: ...

    def swept(self, report: Report) -> None: ...

    def rotating(self) -> AbstractContextManager[Progress]: ...


@dataclass(frozen=True, slots=True)
class DemoResult:
    before: Report
    after: Report
    reports: Mapping[str, Path]
    """The JSON report of each run: "before", "rotation", "after" (the other formats share its stem)."""
    journal: Path
    complete: bool


def run_demo(lab_dir: Path, nodes: int, out: Path, view: DemoView, argv: list[str]) -> DemoResult:
    """The whole story: a lab with a planted incident, swept, rotated root included, swept again."""
    publication = Publication(formats=parse_formats(["all"]), history=history.default_path(out))
    history.check(publication.history)
    view.chapter("1. Start a fresh lab fleet with a planted incident")
    with start_lab(lab_dir, nodes, rebuild=True) as lab:
        env = {**os.environ, **lab.env}
        view.note(f"{nodes} nodes on 127.0.0.1 (inventory {lab.inventory})")
        inventory = load_inventory(lab.inventory)
        incident = LabIncident.of(lab)

        def sweep(context: Context) -> Report:
            with view.sweeping(len(inventory.nodes)) as on_node:
                report = scan(
                    inventory, inventory.nodes, ScanOptions(context=context, env=env), argv, on_node
                )
            view.swept(report)
            return report

        view.chapter("2. Sweep it with the incident's CRL, IOCs and compromised CA")
        before = sweep(incident.context())
        reports = {"before": publish(before, out, publication)[0]}

        view.chapter("3. Replace everything, the root included")
        journal = lab_dir / "journals" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        request = RotateRequest(
            inventory=lab.inventory, source=schema.load(reports["before"]), journal_dir=journal, env=env
        )
        prepared = prepare(request, None)
        plan = prepared.plan
        view.note(
            f"plan: {len(plan.steps)} steps on {len(plan.waves)} wave(s), "
            f"{len(plan.remove)} certificate(s) to purge"
        )
        with view.rotating() as progress:
            rotation = start(prepared, request, lab_journal_passphrase(lab), argv, None, progress)
        reports["rotation"] = publish(rotation.report, out, publication)[0]

        view.chapter("4. Sweep again")
        after = sweep(incident.context(expected_after_rotation(lab, journal, incident)))
        reports["after"] = publish(after, out, publication)[0]
    return DemoResult(before, after, reports, journal, rotation.outcome.complete)
