"""Small file writers for lab trees: exact modes from the start, atomic where it matters."""

from __future__ import annotations

import os
from pathlib import Path


def write_file(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Write a file created with `mode` (keys never exist world-readable, even briefly)."""
    raw = data.encode() if isinstance(data, str) else data
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        fd = os.open(path, flags, mode)
    except FileNotFoundError:  # mkdir only when needed: it is slow on overlay filesystems
        os.makedirs(path.parent, exist_ok=True)
        fd = os.open(path, flags, mode)
    os.fchmod(fd, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(raw)


def write_atomic(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Write beside the target and rename, so readers see the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write_file(tmp, data, mode)
    os.replace(tmp, path)
