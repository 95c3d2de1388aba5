"""Splitting a node script's output back into sections, and giving files their batched bytes.

A script's stores and steps print tagged sections; files are not printed one by one but
collected into one `stat` and one raw `blob` last, right before the end marker (see the read
prelude), which this module cuts back into files by their sizes, in order. Everything else is
text.
"""

from __future__ import annotations

import base64
import binascii
from collections import deque
from dataclasses import dataclass, field

from sweeper.shell.tags import Tag
from sweeper.shell.text import node_text

BATCH = "-"
"""The section id of the batched `stat` and `blob` sections."""


@dataclass(frozen=True, slots=True)
class FileMeta:
    mode: str | None
    owner: str | None
    group: str | None
    size: int


@dataclass(slots=True)
class Section:
    """One tagged part of the output: its tag, the section id it belongs to, its header args, body.

    `FILE` sections get their bytes (`data`) and `FILE`/`KEYMETA` sections their `meta` from
    the batched stat and blob at the end of the output.
    """

    tag: Tag
    section_id: str
    args: str
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    rc: int | None = None
    data: bytes | None = None
    meta: FileMeta | None = None
    problem: str | None = None

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def decode_base64(self) -> bytes:
        return _b64("".join(self.lines))

    def error(self) -> str | None:
        """The command's first stderr line when it failed (`sw_run`), else None."""
        if not self.rc:
            return None
        return next((e.strip() for e in self.errors if e.strip()), f"exit status {self.rc}")


@dataclass(frozen=True, slots=True)
class Output:
    """A script's sections by section id; `complete` when it reached its end marker."""

    sections: dict[str, list[Section]]
    complete: bool
    exit_status: int | None = None

    def of(self, section_id: str, tag: Tag | None = None) -> list[Section]:
        """The sections of one id (of one tag, if given), in the order the node printed them."""
        found = self.sections.get(section_id, [])
        return [s for s in found if tag is None or s.tag is tag]

    def text(self, section_id: str) -> str:
        """The bodies of one id's sections, joined."""
        return "\n".join(s.text for s in self.of(section_id))

    def error(self, section_id: str) -> str | None:
        """The first failure (`sw_run` exit status and stderr) among one id's sections."""
        return next((e for s in self.of(section_id) if (e := s.error())), None)

    def tagged(self, tag: Tag) -> list[Section]:
        return [s for sections in self.sections.values() for s in sections if s.tag is tag]


def split_output(token: str, data: bytes, exit_status: int | None = None) -> Output:
    """Group the script's output into sections per section id; `complete` if it ran to the end."""
    text, blob = _cut_blob(token, data)
    prefix = token + " "
    sections: dict[str, list[Section]] = {}
    ordered: list[Section] = []
    batch: dict[Tag, Section] = {}
    current: Section | None = None
    complete = False
    for line in _lines(text):
        if not line.startswith(prefix):
            if current is not None:
                current.lines.append(line)
            continue
        parts = line[len(prefix) :].split(" ", 2)
        tag = Tag.parse(parts[0])
        if tag is Tag.END:
            complete = True
        elif tag is Tag.ERR and current is not None:
            current.errors.append(line[len(prefix) + len(Tag.ERR) + 1 :])
        elif tag is Tag.RC and current is not None and len(parts) > 1:
            current.rc = int(parts[1]) if parts[1].isdigit() else None
        elif tag in (Tag.STAT, Tag.BLOB):
            current = batch[tag] = Section(tag, BATCH, "")
        elif tag is not None and len(parts) >= 2:
            current = Section(tag, parts[1], parts[2] if len(parts) > 2 else "")
            sections.setdefault(current.section_id, []).append(current)
            ordered.append(current)
    _attach_batch(ordered, batch, blob)
    return Output(sections, complete, exit_status)


def _cut_blob(token: str, data: bytes) -> tuple[str, bytes | None]:
    """The output's text, and the raw file bytes between its `blob` line and the end marker
    (None: no blob). A file that grew or shrank while it was read shows as a blob of another size
    than the `stat` said (`_attach_batch`); text after the end marker is a node's, not ours."""
    mark = f"{token} {Tag.BLOB} -\n".encode()
    at = data.find(mark)
    if at < 0 or (at > 0 and data[at - 1] != 0x0A):
        return node_text(data), None
    start = at + len(mark)
    end = data.rfind(f"{token} {Tag.END}".encode(), start)
    if end < 0:  # cut short: the end marker never came
        return node_text(data[:start]), data[start:]
    return node_text(data[:start] + data[end:]), data[start:end]


def _lines(text: str) -> list[str]:
    """Lines split at "\n" only: a file name may hold a carriage return, a form feed or U+2028,
    which `str.splitlines` would also split at, cutting a tag line (and its path) in two."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def _attach_batch(ordered: list[Section], batch: dict[Tag, Section], blob: bytes | None) -> None:
    """Give each file its metadata (by path) and its bytes (cut from the blob by size, in order)."""
    metas: dict[str, deque[FileMeta]] = {}
    if Tag.STAT in batch:
        for line in batch[Tag.STAT].lines:
            fields = line.split(" ", 5)  # mode owner group size identity path
            if len(fields) == 6 and fields[3].isdigit():
                mode, owner, group, size, _, path = fields
                meta = FileMeta(mode.zfill(4), _known(owner), _known(group), int(size))
                metas.setdefault(path, deque()).append(meta)
    files = [s for s in ordered if s.tag is Tag.FILE]
    for section in ordered:
        if section.tag in (Tag.FILE, Tag.KEYMETA):
            queue = metas.get(section.args)
            section.meta = queue.popleft() if queue else None
    blob = blob or b""
    expected = sum(s.meta.size for s in files if s.meta is not None)
    problem = None if expected == len(blob) else "files changed while they were being read"
    offset = 0
    for section in files:
        if section.meta is None:
            section.problem = "vanished while being read"
        elif problem:
            section.problem = problem
        else:
            section.data = blob[offset : offset + section.meta.size]
            offset += section.meta.size


def _known(value: str) -> str | None:
    return None if value in ("?", "UNKNOWN") else value


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"garbled transfer ({exc})") from None
