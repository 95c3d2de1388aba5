"""LDIF as OpenLDAP's ldapsearch prints it (`-LLL -o ldif-wrap=no`), and back: VMware Directory's
objects read from a node, kept in the journal, and written again exactly."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

MAX_ENTRIES = 10_000
"""A directory answer with more entries than this is cut (node data is bounded)."""


@dataclass(frozen=True, slots=True)
class LdifEntry:
    """One object: its DN and its attributes in the order the server gave them."""

    dn: str
    attributes: tuple[tuple[str, bytes], ...]

    def values(self, name: str) -> list[bytes]:
        wanted = name.lower()
        return [value for attr, value in self.attributes if attr.lower() == wanted]

    def first(self, name: str) -> bytes | None:
        found = self.values(name)
        return found[0] if found else None


def parse_ldif(text: str) -> list[LdifEntry]:
    """Entries of an unwrapped LDIF answer; lines that are not `attr: value` or `attr:: base64`
    (comments, `search:` trailers, garbage) are skipped, never trusted."""
    entries: list[LdifEntry] = []
    dn: str | None = None
    attributes: list[tuple[str, bytes]] = []
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if dn is not None and len(entries) < MAX_ENTRIES:
                entries.append(LdifEntry(dn, tuple(attributes)))
            dn, attributes = None, []
            continue
        if line.startswith("#") or ":" not in line:
            continue
        name, _, rest = line.partition(":")
        value = _value(rest)
        if value is None:
            continue
        if name.lower() == "dn":
            dn = value.decode(errors="replace")
        elif dn is not None:
            attributes.append((name, value))
    return entries


def _value(rest: str) -> bytes | None:
    if rest.startswith(":"):
        try:
            return base64.b64decode(rest[1:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
    return rest.removeprefix(" ").encode()


def _line(name: str, value: bytes) -> str:
    """Always base64: byte-exact whatever the value holds."""
    return f"{name}:: {base64.b64encode(value).decode()}"


def add_ldif(entry: LdifEntry) -> str:
    """The entry as ldapmodify -a reads it: every attribute, in order."""
    return "\n".join([_line("dn", entry.dn.encode()), *(_line(n, v) for n, v in entry.attributes)]) + "\n"


def replace_ldif(dn: str, changes: list[tuple[str, list[bytes]]]) -> str:
    """A modify record that replaces each named attribute with exactly these values, in order."""
    lines = [_line("dn", dn.encode()), "changetype: modify"]
    for name, values in changes:
        lines.append(f"replace: {name}")
        lines += [_line(name, value) for value in values]
        lines.append("-")
    return "\n".join(lines) + "\n"
