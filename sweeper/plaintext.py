"""Node text made inert for whoever reads it: control characters shown escaped, never obeyed.

A certificate subject, a file name or an error message may come from a node the attacker
runs. Every place that shows such text (the terminal, Markdown, SARIF) passes it through
`escape_controls` first: C0 and C1 control characters (ESC sequences, carriage returns,
bells) become `\\xNN`, and the characters that reorder or split text (bidirectional
overrides and isolates, line and paragraph separators) become `\\uNNNN`, so what a reader
sees is the text the node sent, in the order it sent it. Each format then adds its own
escaping of its own syntax.
"""

from __future__ import annotations

from functools import cache

_CONTROLS = (*range(0x20), 0x7F, *range(0x80, 0xA0))
_REORDERING = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029)


def escape_controls(text: object, keep: str = "") -> str:
    """`text` with every control and reordering character escaped, except those in `keep`
    (the terminal keeps tab and line feed; a Markdown cell or a SARIF message keeps none)."""
    return str(text).translate(_table(keep))


@cache
def _table(keep: str) -> dict[int, str]:
    table = {c: f"\\x{c:02x}" for c in _CONTROLS}
    table |= {c: f"\\u{c:04x}" for c in _REORDERING}
    for char in keep:
        table.pop(ord(char), None)
    return table
