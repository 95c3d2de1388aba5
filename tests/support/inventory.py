"""Write inventories in DESIGN's TOML schema for tests that drive sweeper end to end.

tomli_w is not a dependency, and the schema is flat tables plus arrays of tables
(``[defaults]``, ``[[nodes]]``, ``[[nodes.stores]]``), so a small writer does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def write_inventory(
    path: Path, nodes: list[dict[str, Any]], defaults: Mapping[str, Any] | None = None
) -> Path:
    """Write ``[defaults]`` and one ``[[nodes]]`` table per node to ``path``.

    A node value that is a list of dicts (``stores``) becomes ``[[nodes.<key>]]``
    tables; ``None`` values are left out (TOML has no null); nested dicts are refused.
    """
    lines = ["[defaults]", *_key_values(defaults or {})]
    for node in nodes:
        lines += ["", "[[nodes]]", *_key_values(node)]
        for key, value in node.items():
            if _is_table_array(value):
                for table in value:
                    lines += [f"  [[nodes.{_key(key)}]]"]
                    lines += [f"  {line}" for line in _key_values(table)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _key_values(table: Mapping[str, Any]) -> list[str]:
    return [
        f"{_key(key)} = {_value(value)}"
        for key, value in table.items()
        if value is not None and not _is_table_array(value)
    ]


def _is_table_array(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return _string(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} into the inventory: {value!r}")


def _string(text: str) -> str:
    """A TOML basic string; JSON's escapes are TOML's, bar DEL, which TOML wants escaped."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")
