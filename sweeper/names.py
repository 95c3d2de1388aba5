"""Which host names a node's certificates may carry: its `host`, its `names`, and names matching its
`allow_names` patterns that no other node holds (DESIGN "Nodes are adversaries").

A compromised node can rewrite its own certificate to name anything. The new root signs
only what this policy allows; everything else is dropped and reported as `unapproved-name`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache

from sweeper.model import Node

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


def normal(name: str) -> str:
    """One spelling per name: lower case, no trailing dot, IP addresses in their canonical form."""
    return _read(name)[0]


def ip_form(name: str) -> str | None:
    """The IP address's canonical spelling (equal exactly when the addresses are); None for a host name."""
    text, is_ip = _read(name)
    return text if is_ip else None


def well_formed(name: str) -> bool:
    """A DNS host name (no wildcard) or an IP address."""
    text, is_ip = _read(name)
    return is_ip or bool(_HOSTNAME.match(text))


@lru_cache(maxsize=65536)
def _read(name: str) -> tuple[str, bool]:
    """The name's one spelling, and whether it is an IP address. Cached: judging one certificate's
    names asks this several times per name, and a failed IP parse (any host name) is slow."""
    text = name.strip().lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(text)), True
    except ValueError:
        return text, False


@dataclass(frozen=True, slots=True)
class NamePolicy:
    """The names one node's certificates may carry."""

    host: str
    names: frozenset[str]
    patterns: tuple[str, ...]
    taken: frozenset[str]
    """Every node's hosts and names, one set shared by all policies: no pattern can give another
    node's to this one (its own are allowed before this is looked at)."""

    def allows(self, name: str) -> bool:
        text = normal(name)
        if text == normal(self.host) or text in self.names:
            return True
        if text in self.taken or not well_formed(text):
            return False
        return any(fnmatchcase(text, normal(pattern)) for pattern in self.patterns)

    def split(self, names: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(allowed, refused), each in the order given, without repeats."""
        allowed: dict[str, None] = {}
        refused: dict[str, None] = {}
        for name in names:
            (allowed if self.allows(name) else refused)[normal(name)] = None
        return tuple(allowed), tuple(refused)


def policies(nodes: Iterable[Node]) -> Mapping[str, NamePolicy]:
    """Every node's policy; a name one node holds (host or `names`) is never another's by pattern.
    Linear in the fleet: the held names are one set all policies share, not one per node."""
    nodes = tuple(nodes)
    taken = frozenset(name for node in nodes for name in (normal(node.host), *map(normal, node.names)))
    return {
        node.name: NamePolicy(
            host=node.host,
            names=frozenset(normal(n) for n in node.names),
            patterns=node.allow_names,
            taken=taken,
        )
        for node in nodes
    }
