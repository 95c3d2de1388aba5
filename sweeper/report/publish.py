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

import tempfile
from dataclasses import dataclass
from pathlib import Path

from sweeper import history
from sweeper.atomic import atomic_write
from sweeper.errors import OutputError, os_reason
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
    """Write the run's files into `out_dir` and record it; returns the paths, the JSON first.

    :raises OutputError: a file could not be written (a full disk, a folder removed during the
        run); the JSON, which holds everything the run found, is then kept elsewhere if at all
        possible, and the message says where.
    """
    name = stem(report)
    document = checked(report)
    raw = encode(document)
    path = _write_report(out_dir / f"{name}.json", raw)
    written = [path]
    try:
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
    except OSError as exc:
        failed = exc.filename or "the run's other files"
        raise OutputError(f"{path} is written, but not {failed} ({os_reason(exc)})") from None
    if publication.history is not None:
        history.record(publication.history, document, path)
    return written


def _write_report(path: Path, raw: bytes) -> Path:
    """The JSON where asked; failing that, in a private folder of its own under the system's
    temporary directory (another file system, often), so that a full disk does not lose the run."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, raw)
        return path
    except OSError as exc:
        problem = f"could not write {path} ({os_reason(exc)})"
    try:
        spare = Path(tempfile.mkdtemp(prefix="sweeper-unsaved-")) / path.name
        atomic_write(spare, raw, mode=0o600)
    except OSError as exc:
        where = tempfile.gettempdir()
        raise OutputError(
            f"{problem}, nor a copy in {where} ({os_reason(exc)}): the run's report is lost"
        ) from None
    raise OutputError(f"{problem}; the report is saved as {spare} instead (only there)")


def stem(report: Report) -> str:
    """`<UTC timestamp>-<run id>`: sorts by time, unique per run."""
    return f"{report.run.started:%Y%m%dT%H%M%SZ}-{report.run.id}"
