"""Write a local file so that a crash leaves either the old file or the new one, never half of it."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def atomic_write(path: Path, data: bytes, mode: int = 0o666) -> None:
    """Temp file in the same folder, fsync, rename. An OSError names `path`.

    `mode` is what open(2) is asked for, so the process umask still applies: reports follow
    the operator's umask (0600 under 077, 0644 under 022), and 0o600 keeps a file private
    whatever the umask. The temp file is created with that mode, never wider for a moment.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:  # named after the file asked for, not the temporary one
        raise OSError(exc.errno, exc.strerror, str(path)) from exc


def not_writable(path: Path) -> Path | None:
    """None when files can be made at `path`: a folder that exists and this process may write, or
    one that would be made inside the nearest existing folder it may write. Else that nearest
    existing path, for the error message. Creates nothing (checked before a run, not after it)."""
    nearest = next((p for p in (path.absolute(), *path.absolute().parents) if p.exists()), None)
    if nearest is not None and nearest.is_dir() and os.access(nearest, os.W_OK | os.X_OK):
        return None
    return nearest or path
