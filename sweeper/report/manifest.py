"""A signed manifest of every file of a run, so that none of them (the HTML an auditor opens,
the SARIF a dashboard reads) can be swapped unnoticed.

`scan`/`rotate --sign KEY` write `<stem>.sha256sums` (`sha256sum` format: one
`<sha256>  <file name>` line per file of the run) and its detached signature
`<stem>.sha256sums.sig`, beside the JSON's own `<stem>.json.sig`. `verify-report` checks the
JSON's signature, then the manifest's, then every file the manifest lists, and names any file
of the run that no signature covers; without sweeper, `openssl pkeyutl -verify -rawin` and
`sha256sum -c` check the same. (Not `.json`: `ls reports/*.json` lists reports only.)

`rotate --from-pub KEY` reads its `--from` report only through `load_verified`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sweeper.atomic import atomic_write
from sweeper.errors import BadInput, CorruptInput
from sweeper.pki.sign import Signer, Verdict, signature_path, verify_file
from sweeper.report import schema
from sweeper.report.formats import run_file_names

SUFFIX = ".sha256sums"
_LINE = re.compile(r"([0-9a-f]{64})  (\S+)")


def manifest_path(report: Path) -> Path:
    """`<stem>.sha256sums` beside the run's `<stem>.json`."""
    return report.with_name(report.name.removesuffix(".json") + SUFFIX)


def write(report: Path, files: Mapping[Path, bytes], signer: Signer) -> list[Path]:
    """Write and sign the manifest of the run's `files` (path -> the bytes written there, never
    read back: what is signed is what sweeper wrote); returns the manifest's and its signature's paths."""
    raw = "".join(f"{_sha256(data)}  {path.name}\n" for path, data in files.items()).encode()
    path = manifest_path(report)
    atomic_write(path, raw)
    atomic_write(signature_path(path), signer.sign(raw))
    return [path, signature_path(path)]


def load_verified(report: Path, public: Path) -> schema.Report:
    """The report, parsed from the very bytes its detached signature (`<report>.sig`) was checked on.

    :raises BadInput: the report is unsigned, or its signature does not hold for `public`.
    """
    signature = signature_path(report)
    if not signature.is_file():
        raise BadInput(f"{report}: unsigned (no {signature.name}): --from-pub takes a signed report only")
    verdict = verify_file(report, public)
    if not verdict.valid:
        raise BadInput(
            f"{report}: signature {signature.name} does not match (key sha256 {verdict.key_sha256}): "
            "the report was altered or signed by another key"
        )
    return schema.parse(verdict.data, report)


def unkeyed_problem(report: Path, report_bytes: bytes) -> str | None:
    """What can be told of a signed report without its public key: whether its bytes are the ones
    its run's manifest lists. None when that holds (or there is no manifest to compare with).

    :raises CorruptInput: the manifest is not one of this run's manifests
    """
    path = manifest_path(report)
    raw = _read(path)
    if raw is None:
        return None
    listed = _listed(raw, path, set(run_file_names(report.name.removesuffix(".json"))))
    if report.name not in listed:
        return f"is not listed in its run's manifest {path.name}"
    return (
        None
        if listed[report.name] == _sha256(report_bytes)
        else "does not match its run's signed manifest: altered"
    )


@dataclass(frozen=True, slots=True)
class RunCheck:
    """What `verify-report` found beyond the JSON's own signature."""

    manifest: Verdict | None
    """The manifest's signature check; None when the run has no manifest."""
    matching: tuple[str, ...] = ()
    """Files the signed manifest lists whose bytes match."""
    problems: tuple[str, ...] = ()
    """One line per file that is altered, missing, or covered by no signature."""


def check_run(report: Path, report_bytes: bytes, public: Path) -> RunCheck:
    """Check the run's manifest (if any) and every file it lists against the signed hashes.

    `report_bytes` is the JSON as its own signature was checked: the manifest must list exactly
    those bytes. Files of the run that nothing signs are problems too.

    :raises CorruptInput: the manifest (once its signature holds) is not a manifest.
    """
    folder, stem = report.parent, report.name.removesuffix(".json")
    present = {name for name in run_file_names(stem) if (folder / name).is_file()}
    path = manifest_path(report)
    if not path.is_file():
        uncovered = sorted(present - {report.name})
        return RunCheck(None, problems=tuple(f"{name}: not covered by any signature" for name in uncovered))
    verdict = verify_file(path, public)
    if not verdict.valid:
        altered = f"{path.name}: signature does not match: the manifest was altered or signed by another key"
        return RunCheck(verdict, problems=(altered,))
    listed = _listed(verdict.data, path, set(run_file_names(stem)))
    matching, problems = [], []
    for name, expected in sorted(listed.items()):
        data = report_bytes if name == report.name else _read(folder / name)
        if data is None:
            problems.append(f"{name}: listed in the signed manifest but missing")
        elif _sha256(data) != expected:
            problems.append(f"{name}: does not match the signed manifest: the file was altered")
        else:
            matching.append(name)
    problems += [f"{name}: not covered by any signature" for name in sorted(present - set(listed))]
    return RunCheck(verdict, tuple(matching), tuple(problems))


def _listed(raw: bytes, path: Path, allowed: set[str]) -> dict[str, str]:
    """The manifest's file name -> sha256, each name one of the run's own file names."""
    listed: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        match = _LINE.fullmatch(line)
        if match is None:
            raise CorruptInput(path, f"not a sha256sum manifest line: {line[:80]!r}")
        digest, name = match.groups()
        if name not in allowed:
            raise CorruptInput(path, f"lists {name!r}, which is not a file of this run")
        listed[name] = digest
    return listed


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
