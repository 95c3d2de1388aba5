"""Hashed known_hosts names resolved once for the fleet, so that a connect finds its host by name.

OpenSSH's `HashKnownHosts yes` (Debian's and Ubuntu's default, and `ssh-keyscan -H`) stores each
host name as HMAC-SHA1(salt, name), every line with a salt of its own. asyncssh can only try
every hashed line at every connect: with 950 of them, 4.7 ms of the event loop per connect, more
than all the rest of a sweep's client work. The fleet's names are known before the first connect,
so each hashed line is tried against them once here, starting from the name the previous line
matched (`ssh-keyscan -H` writes in the order it was given, a line per key type), and a line
that names a fleet host is given to asyncssh under that plain name, found by a dict lookup. The
rest of the line (marker, key) is kept, so asyncssh's own rules decide as before.

A line that matches no name is kept as it is where some node may be looked up under a name not
known here (a host name's address, an ssh_config alias, a node behind a bastion), and otherwise
dropped: no connection of this sweep can match it. Either way nothing is trusted that was not:
a name is only ever given the lines whose hash it matches.
"""

from __future__ import annotations

import binascii
import hmac
from collections.abc import Iterable

from sweeper.model import Node
from sweeper.names import ip_form

HASHED = "|1|"
"""OpenSSH's hashed-name prefix: `|1|<base64 salt>|<base64 HMAC-SHA1>`."""


def lookup_names(nodes: Iterable[Node]) -> tuple[list[str], bool]:
    """The names asyncssh looks the nodes up by (`[host]:port` and `host`, as given and as a
    canonical address), in fleet order; and whether some node may be looked up by another."""
    names: dict[str, None] = {}
    unknown_names = False
    for node in nodes:
        address = ip_form(node.host)
        if node.ssh_config or node.jump or address is None:
            unknown_names = True
        port = node.port or 22
        for host in dict.fromkeys((node.host, address or node.host)):
            if port != 22:
                names[f"[{host}]:{port}"] = None
            names[host] = None
    return list(names), unknown_names


def resolve(text: str, names: list[str], keep_unmatched: bool) -> str:
    """`text` (known_hosts lines) with each hashed name that is one of `names` written as that name."""
    lines = text.splitlines()
    encoded = [name.encode() for name in names]
    start = 0
    for index, line in enumerate(lines):
        parsed = _hashed(line)
        if parsed is None:
            continue
        marker, salt, digest, rest = parsed
        found = _find(salt, digest, encoded, start)
        if found is not None:
            start = found
            lines[index] = f"{marker}{names[found]} {rest}"
        elif not keep_unmatched:
            lines[index] = ""
    return "\n".join(lines) + "\n"


def _hashed(line: str) -> tuple[str, bytes, bytes, str] | None:
    """(marker with its space, salt, digest, the rest of the line) for a hashed line; None otherwise
    (plain names, comments, and a hashed field asyncssh would refuse, which it still sees)."""
    marker = ""
    words = line.strip().split(None, 1)
    if words and words[0].startswith("@"):
        marker = words[0] + " "
        words = words[1].split(None, 1) if len(words) == 2 else []
    if len(words) != 2 or not words[0].startswith(HASHED):
        return None
    parts = words[0][len(HASHED) :].split("|")
    if len(parts) != 2:
        return None
    try:
        salt, digest = (binascii.a2b_base64(part) for part in parts)
    except binascii.Error:
        return None
    return marker, salt, digest, words[1]


def _find(salt: bytes, digest: bytes, names: list[bytes], start: int) -> int | None:
    """The index of the name whose HMAC under `salt` is `digest`, trying from `start` on."""
    count = len(names)
    for step in range(count):
        index = (start + step) % count
        if hmac.digest(salt, names[index], "sha1") == digest:  # public values: no timing to hide
            return index
    return None
