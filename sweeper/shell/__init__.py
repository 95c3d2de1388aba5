"""The node-script protocol: section tags (one enum), shell text, framing, output splitting, running.

Shell text is built only here, in `stores/` (the read prelude and per-store calls) and in the
rotation's step modules, always quoting through `shell.quote`.
"""

from sweeper.shell.output import BATCH, FileMeta, Output, Section, split_output
from sweeper.shell.run import run_and_parse, run_node_script
from sweeper.shell.tags import Tag
from sweeper.shell.text import RunTime, frame, mark, new_token, quote

__all__ = [
    "BATCH",
    "FileMeta",
    "Output",
    "RunTime",
    "Section",
    "Tag",
    "frame",
    "mark",
    "new_token",
    "quote",
    "run_and_parse",
    "run_node_script",
    "split_output",
]
