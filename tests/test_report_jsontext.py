"""The report file's text writer spells every document exactly as `json.dumps(document, indent=2)`."""

from __future__ import annotations

import enum
import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from sweeper.report.jsontext import indented

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()  # any code point, lone surrogates and controls included
)
PLAIN = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(PLAIN)
def test_plain_documents_are_written_as_json_dumps_writes_them(document: object) -> None:
    assert indented(document) == json.dumps(document, indent=2)


class Level(enum.IntEnum):
    HIGH = 3


class Tag(enum.StrEnum):
    LEAF = "leaf"


@given(
    st.sampled_from(
        [(1, 2), {1: "int key"}, {None: 0, 1.5: 1}, Level.HIGH, Tag.LEAF, {"x": [Level.HIGH, (Tag.LEAF,)]}]
    )
)
def test_other_types_are_left_to_json_dumps(document: object) -> None:
    assert indented(document) == json.dumps(document, indent=2)


def test_edges_of_the_spelling() -> None:
    document = {"empty": {}, "none": [], "nan": math.nan, "inf": [math.inf, -math.inf]}
    document["é\u2028"] = "\x1b\ud800"
    assert indented(document) == json.dumps(document, indent=2)
    assert indented([]) == "[]" and indented("x") == '"x"'
