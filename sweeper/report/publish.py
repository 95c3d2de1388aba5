"""Everything a finished run leaves behind: the canonical JSON, its signature, other formats, history.

`scan` and `rotate` both end here. The other formats are rendered from the JSON's own bytes
read back, so they are exactly what `sweeper report FILE.json` would make from the file later;
a run that writes the JSON alone does not read it back. History records the checked model the
JSON was dumped from: what it records (names, counts, scalars, times to the second, evidence as
JSON) is the same read either way, and a test holds the two to the same rows.
Files of one run share a stem, `<UTC timestamp>-<run id>`. Signed, a run also leaves a signed
manifest of every one of its files (`report.manifest`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sweeper import history
from sweeper.atomic import atomic_write
from sweeper.model import Report
from sweeper.pki.sign import Signer, signature_path
from sweeper.report import manifest
from sweeper.report.formats import renders_more, write_formats
from sweeper.report.options import RenderOptions
from sweeper.report.schema import checked, encode, parse


@dataclass(frozen=True, slots=True)
class Publication:
    """How to publish a run: which formats, signed with which key, recorded in which history file."""

    formats: tuple[str, ...] = ("json",)
    options: RenderOptions = RenderOptions()
    signer: Signer | None = None
    history: Path | None = None


def publish(report: Report, out_dir: Path, publication: Publication) -> list[Path]:
    """Write the run's files into `out_dir` and record it; returns the paths, the JSON first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = stem(report)
    path = out_dir / f"{name}.json"
    document = checked(report)
    raw = encode(document)
    atomic_write(path, raw)
    written = [path]
    if publication.signer is not None:
        atomic_write(signature_path(path), publication.signer.sign(raw))
        written.append(signature_path(path))
    rendered: dict[Path, bytes] = {}
    if renders_more(publication.formats):
        on_disk = parse(raw, path)
        rendered = write_formats(on_disk, out_dir, name, publication.formats, publication.options)
    written += rendered
    if publication.signer is not None:
        written += manifest.write(path, {path: raw, **rendered}, publication.signer)
    if publication.history is not None:
        history.record(publication.history, document, path)
    return written


def stem(report: Report) -> str:
    """`<UTC timestamp>-<run id>`: sorts by time, unique per run."""
    return f"{report.run.started:%Y%m%dT%H%M%SZ}-{report.run.id}"
