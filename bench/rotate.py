"""Benchmark: a full rotation of an N-node lab (new root, trust, re-issue with keys made on the
nodes, purge, verify sweep), with wall time, time per phase and peak memory.

The phases' times come from the rotation's own record (each journal step's start and end, in
the rotation report), the preflight and verify sweeps' from the clock around them. The lab's
nodes share this machine's cores with sweeper: keys made on the nodes (openssl) and the lab's
SSH server are on the same clock here, unlike on a real fleet. Where the rotation takes longer
than the target, the slowest phase is named with what it did (steps, nodes, time per step) and
why it costs that.

    python bench/rotate.py --nodes 1000 [--concurrency 50] [--wave 25%] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sweeper.demo import LabIncident, lab_journal_passphrase
from sweeper.inventory import load_inventory
from sweeper.lab import start_lab
from sweeper.report import schema
from sweeper.report.publish import Publication, publish
from sweeper.rotate.plan import WaveOptions
from sweeper.rotate.service import RotateRequest, prepare, start
from sweeper.scan import ScanOptions, scan

TARGET = 300.0
"""Seconds: a 1,000-node rotation on this 2-core machine, the lab on the same cores."""
WHY = {
    "preflight sweep": "every node read as by `scan` (connect, one read script, parse): see bench/scan.py",
    "preflight": "every store a step touches copied into the journal (one read per node, one "
    "authenticated journal row per backup)",
    "trust": "the new root written into every trust store, and published to VMware Directory on "
    "vCenters (an LDAP round trip each), then each node's persist command",
    "reissue": "per certificate a key made on the node (openssl), its CSR proven and signed here, "
    "written and the node's services restarted; waves run one after another (canary first)",
    "purge": "every old and revoked certificate removed from every store, each removal journaled",
    "verify sweep": "every node read again, as by `scan`",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument(
        "--concurrency", type=int, default=50, help="nodes changed at once (rotate's default)"
    )
    parser.add_argument("--wave", default="25%", help="re-issue wave size (rotate's default)")
    parser.add_argument("--dir", type=Path, help="lab folder (default: a temporary one)")
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="sweeper-bench-rotate-"))
    started = time.monotonic()
    with start_lab(work / "lab", args.nodes, rebuild=True) as lab:
        print(f"lab of {args.nodes} nodes up in {time.monotonic() - started:.1f}s ({work})", flush=True)
        env = {**os.environ, **lab.env}
        inventory = load_inventory(lab.inventory)
        options = ScanOptions(context=LabIncident.of(lab).context(), env=env, concurrency=100)
        swept = scan(inventory, inventory.nodes, options, ["bench"])
        source = publish(swept, work / "reports", Publication())[0]
        request = RotateRequest(
            inventory=lab.inventory,
            source=schema.load(source),
            journal_dir=work / "journal",
            waves=WaveOptions(wave=args.wave),
            concurrency=args.concurrency,
            env=env,
        )
        marks: dict[str, float] = {}
        began = time.monotonic()
        prepared = timed(marks, "preflight sweep", lambda: prepare(request, None))
        result = timed(
            marks, "rotation", lambda: start(prepared, request, lab_journal_passphrase(lab), ["bench"], None)
        )
        wall = time.monotonic() - began
    phases = phase_times(result.report.steps or ())
    phases["verify sweep"] = max(0.0, marks["rotation"] - sum(phases.values()))
    phases = {"preflight sweep": marks["preflight sweep"], **phases}
    steps = Counter(s.phase for s in result.report.steps or ())
    print(
        f"\nnodes={args.nodes} concurrency={args.concurrency} wave={args.wave} "
        f"complete={result.outcome.complete} failed={len(result.outcome.failed)}"
    )
    print(
        f"rotation wall time {wall:.1f}s (target {TARGET:.0f}s at 1,000 nodes); "
        f"plan: {len(prepared.plan.steps)} steps, {len(prepared.plan.waves)} waves"
    )
    for phase, seconds in phases.items():
        count = steps.get(phase, 0)
        per = f"  {seconds / count * 1000:7.1f} ms/step ({count} steps)" if count else ""
        print(f"  {phase:16} {seconds:8.1f}s  {seconds / wall:5.1%}{per}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    projected = wall * 1000 / args.nodes
    if projected > TARGET:
        slowest = max(phases, key=lambda p: phases[p])
        print(
            f"slower than the target ({projected:.0f}s projected to 1,000 nodes, linearly): "
            f"{slowest} takes {phases[slowest] / wall:.0%}: {WHY.get(slowest, '')}"
        )


def timed(marks: dict[str, float], name: str, action: Callable):
    began = time.monotonic()
    try:
        return action()
    finally:
        marks[name] = time.monotonic() - began


def phase_times(steps) -> dict[str, float]:
    """Per phase, from its first step's start to its last step's end (phases never overlap)."""
    spans: dict[str, tuple[datetime, datetime]] = {}
    for step in steps:
        if step.started is None or step.finished is None:
            continue
        first, last = spans.get(step.phase, (step.started, step.finished))
        spans[step.phase] = (min(first, step.started), max(last, step.finished))
    return {phase: (last - first).total_seconds() for phase, (first, last) in spans.items()}


if __name__ == "__main__":
    main()
