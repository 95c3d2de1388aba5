"""Benchmark: a full rotation of an N-node lab (new root, trust, re-issue with keys made on the
nodes, purge, verify sweep), with wall time, time per phase and peak memory.

The phases' times come from the rotation's own record (each journal step's start and end, in
the rotation report), the preflight and verify sweeps' from the clock around them. The lab's
nodes share this machine's cores with sweeper: keys made on the nodes (openssl) and the lab's
SSH server are on the same clock here, unlike on a real fleet. Where the rotation takes longer
than the target, the slowest phase is named with what it did (steps, nodes, time per step) and
why it costs that.

`--fleet sshd` rotates the lab's Linux and ESXi nodes each served by a real OpenSSH sshd
(bench/sshd_fleet.py), as an outside check's fleet would be: no vCenters, whose tools only the
lab's own server provides.

    python bench/rotate.py --nodes 1000 [--fleet lab|sshd] [--concurrency 50] [--wave 25%] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from cputime import own_cpu  # bench/cputime.py
from fleets import serve  # bench/fleets.py

from sweeper.collector import collect_less_often
from sweeper.demo import LabIncident, lab_journal_passphrase
from sweeper.inventory import load_inventory
from sweeper.report import schema
from sweeper.report.publish import Publication, publish
from sweeper.rotate.plan import WaveOptions
from sweeper.rotate.service import RotateRequest, prepare, start
from sweeper.scan import ScanOptions, scan

SAMPLE = 0.25
"""Seconds between CPU samples (this process and the lab), to tell whose work a phase waits for."""
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


class Sampler(threading.Thread):
    """Every SAMPLE seconds while the rotation runs: the time, this process's CPU, the lab's CPU,
    and where the rotation's thread (the event loop's) is: a poor man's profiler that tells a
    phase waiting for the nodes (in the selector) from one blocked in this process."""

    def __init__(self, nodes_cpu: Callable[[], float]) -> None:
        super().__init__(daemon=True)
        self.nodes_cpu = nodes_cpu
        self.loop_thread = threading.get_ident()
        self.samples: list[tuple[float, float, float, str]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while True:
            frame = sys._current_frames().get(self.loop_thread)
            where = f"{Path(frame.f_code.co_filename).name}:{frame.f_code.co_name}" if frame else "?"
            self.samples.append((time.time(), own_cpu(), self.nodes_cpu(), where))
            if self.done.wait(SAMPLE):
                return

    def _inside(self, start: float, end: float) -> list[tuple[float, float, float, str]]:
        return [s for s in self.samples if start - SAMPLE <= s[0] <= end + SAMPLE] or self.samples[-1:]

    def cpu(self, start: float, end: float) -> tuple[float, float]:
        """CPU seconds (sweeper's, the lab's) spent from `start` to `end` (epoch seconds)."""
        inside = self._inside(start, end)
        return inside[-1][1] - inside[0][1], inside[-1][2] - inside[0][2]

    def where(self, start: float, end: float, top: int = 3) -> str:
        """Where the event loop's thread was most often from `start` to `end`, as shares of samples."""
        places = Counter(s[3] for s in self._inside(start, end))
        total = sum(places.values())
        return ", ".join(f"{n / total:.0%} in {place}" for place, n in places.most_common(top))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument(
        "--concurrency", type=int, default=50, help="nodes changed at once (rotate's default)"
    )
    parser.add_argument("--wave", default="25%", help="re-issue wave size (rotate's default)")
    parser.add_argument("--dir", type=Path, help="lab folder (default: a temporary one)")
    parser.add_argument("--fleet", choices=("lab", "sshd"), default="lab", help="the nodes' servers")
    args = parser.parse_args()
    collect_less_often()  # as the command line does at its start
    work = args.dir or Path(tempfile.mkdtemp(prefix="sweeper-bench-rotate-"))
    for previous in ("journal", "reports"):  # a run's own, on a lab built afresh below
        shutil.rmtree(work / previous, ignore_errors=True)
    started = time.monotonic()
    with serve(args.fleet, work / "lab", args.nodes, rebuild=True) as lab:
        up = time.monotonic() - started
        print(f"{lab.nodes} nodes ({args.fleet}) up in {up:.1f}s ({work})", flush=True)
        env = lab.env
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
        sampler = Sampler(lab.cpu)
        sampler.start()
        began = time.time()
        prepared = prepare(request, None)
        preflight_done = time.time()
        result = start(prepared, request, lab_journal_passphrase(lab), ["bench"], None)
        ended = time.time()
        sampler.done.set()
        sampler.join()
    wall = ended - began
    windows = {"preflight sweep": (began, preflight_done), **phase_windows(result.report.steps or ())}
    windows["verify sweep"] = (max(w[1] for w in windows.values()), ended)
    steps = Counter(s.phase for s in result.report.steps or ())
    print(
        f"\nnodes={lab.nodes} fleet={args.fleet} concurrency={args.concurrency} wave={args.wave} "
        f"complete={result.outcome.complete} failed={len(result.outcome.failed)}"
    )
    print(
        f"rotation wall time {wall:.1f}s (target {TARGET:.0f}s at 1,000 nodes); "
        f"plan: {len(prepared.plan.steps)} steps, {len(prepared.plan.waves)} waves"
    )
    print(f"  {'phase':16} {'wall s':>8} {'share':>6} {'sweeper CPU s':>14} {'lab CPU s':>10}  per step")
    for phase, (start_at, end_at) in windows.items():
        seconds = end_at - start_at
        ours, nodes_side = sampler.cpu(start_at, end_at)
        count = steps.get(phase, 0)
        per = f"{seconds / count * 1000:7.1f} ms ({count} steps)" if count else ""
        print(f"  {phase:16} {seconds:8.1f} {seconds / wall:6.1%} {ours:14.1f} {nodes_side:10.1f}  {per}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    projected = wall * 1000 / lab.nodes
    if projected > TARGET:
        slowest = max(windows, key=lambda p: windows[p][1] - windows[p][0])
        start_at, end_at = windows[slowest]
        ours, nodes_side = sampler.cpu(start_at, end_at)
        busy = (ours + nodes_side) / (end_at - start_at)
        print(
            f"slower than the target: {projected:.0f}s projected to 1,000 nodes (time taken to grow with "
            f"the node count); {slowest} takes {(end_at - start_at) / wall:.0%} of it: {WHY.get(slowest, '')}"
        )
        print(
            f"  meanwhile {busy:.1f} of {len(os.sched_getaffinity(0))} cores were busy for it ({ours:.1f}s "
            f"sweeper, {nodes_side:.1f}s the lab); sweeper's event loop was {sampler.where(start_at, end_at)}"
            " (selectors.py: waiting for the nodes; anything else blocks every node at once)"
        )


def phase_windows(steps) -> dict[str, tuple[float, float]]:
    """Per phase, its first step's start and its last step's end, in epoch seconds (phases never
    overlap)."""
    spans: dict[str, tuple[datetime, datetime]] = {}
    for step in steps:
        if step.started is None or step.finished is None:
            continue
        first, last = spans.get(step.phase, (step.started, step.finished))
        spans[step.phase] = (min(first, step.started), max(last, step.finished))
    return {phase: (first.timestamp(), last.timestamp()) for phase, (first, last) in spans.items()}


if __name__ == "__main__":
    main()
