"""Output formats by name: each renders the typed `sweeper.report/1` report into one or more files of a run.

One registry, so `scan`, `rotate` and `report` accept the same `--format` names and write the
same file names: `<stem>.json`, `<stem>.html`, `<stem>.md`, `<stem>.certificates.csv` +
`<stem>.findings.csv`, `<stem>.junit.xml`, `<stem>.sarif`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sweeper.atomic import atomic_write
from sweeper.errors import BadInput
from sweeper.report.options import RenderOptions
from sweeper.report.schema import Report


@dataclass(frozen=True, slots=True)
class Output:
    """One file of a format: its suffix after the stem, and the function that renders it, as
    `module:function` of `sweeper.report`: imported only when the format is asked for, so a run
    that writes the JSON alone does not load HTML's template engine."""

    suffix: str
    renderer: str

    def render(self, report: Report, options: RenderOptions) -> str:
        module, function = self.renderer.split(":")
        return getattr(importlib.import_module(f"sweeper.report.{module}"), function)(report, options)


CANONICAL = "json"
FORMATS: dict[str, tuple[Output, ...]] = {
    "html": (Output(".html", "html:render"),),
    "md": (Output(".md", "markdown:render"),),
    "csv": (
        Output(".certificates.csv", "csv_report:render_certificates"),
        Output(".findings.csv", "csv_report:render_findings"),
    ),
    "junit": (Output(".junit.xml", "junit:render"),),
    "sarif": (Output(".sarif", "sarif:render"),),
}
KNOWN = (CANONICAL, *FORMATS)


def parse_formats(values: Iterable[str]) -> tuple[str, ...]:
    """Comma-separated (and repeatable) format names, `all` for every one; unknown names are bad input."""
    chosen: list[str] = []
    for value in values:
        for name in (part.strip().lower() for part in value.split(",")):
            if not name:
                continue
            if name == "all":
                chosen.extend(KNOWN)
            elif name in KNOWN:
                chosen.append(name)
            else:
                raise BadInput(f"unknown report format {name!r} (known: {', '.join(KNOWN)}, all)")
    return tuple(dict.fromkeys(chosen))


def renders_more(formats: Iterable[str]) -> bool:
    """True if any of `formats` is rendered into files besides the canonical JSON."""
    return any(name in FORMATS for name in formats)


def write_formats(
    report: Report, out_dir: Path, stem: str, formats: Iterable[str], options: RenderOptions
) -> dict[Path, bytes]:
    """Render `report` in every chosen format except the canonical JSON, atomically; returns each
    path written, in order, with the bytes written there (what a signed manifest lists)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in formats:
        for output in FORMATS.get(name, ()):
            path = out_dir / f"{stem}{output.suffix}"
            written[path] = output.render(report, options).encode()
            atomic_write(path, written[path])
    return written


def run_file_names(stem: str) -> list[str]:
    """The name of every file a run with this stem can have: the JSON and every format's."""
    return [f"{stem}.{CANONICAL}", *(f"{stem}{o.suffix}" for outputs in FORMATS.values() for o in outputs)]


def stem_of(report_path: Path) -> str:
    """The stem a report file's other formats share: its name without `.json`."""
    return report_path.name.removesuffix(".json")
