"""RSA-2048 keys made ahead of need in worker processes, and kept for the next build.

An RSA-2048 key costs ~90 ms of CPU; a 1,000-node lab needs several hundred (VMCA only
issues RSA, so every vcsa certificate has one). Workers make them while the builder
writes other nodes, and the pool file in the lab dir makes a rebuild nearly free.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from types import TracebackType

from sweeper.lab.files import write_file
from sweeper.pki.issue import PrivateKey, generate_key, key_pem, load_key_pem

_END = b"-----END PRIVATE KEY-----\n"
_BATCH = 4


def _make_pems(count: int) -> list[bytes]:
    """Worker: generate keys and return them as PEM (key objects do not pickle)."""
    return [key_pem(generate_key("rsa2048")) for _ in range(count)]


class KeyPool:
    """Hands out each RSA-2048 key once per build; use as a context manager.

    :param path: the pool file (0600), read if present and rewritten on exit
    :param count: how many keys this build will take
    """

    def __init__(self, path: Path, count: int) -> None:
        self._path = path
        self._pems = _read(path)
        self._ready: deque[bytes] = deque(self._pems)
        self._pending: deque[Future[list[bytes]]] = deque()
        self._executor: ProcessPoolExecutor | None = None
        missing = count - len(self._pems)
        if missing > 0:
            self._executor = ProcessPoolExecutor(max_workers=min(os.cpu_count() or 1, 8))
            while missing > 0:
                batch = min(_BATCH, missing)
                self._pending.append(self._executor.submit(_make_pems, batch))
                missing -= batch

    def take(self) -> PrivateKey:
        """The next unused key, waiting for a worker if none is ready yet."""
        while not self._ready:
            if not self._pending:
                self._pending.append(self._submit_one())
            fresh = self._pending.popleft().result()
            self._pems.extend(fresh)
            self._ready.extend(fresh)
        return load_key_pem(self._ready.popleft(), trusted=True)

    def _submit_one(self) -> Future[list[bytes]]:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(max_workers=1)
        return self._executor.submit(_make_pems, 1)

    def __enter__(self) -> KeyPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=exc_type is None, cancel_futures=True)
        if exc_type is None:
            write_file(self._path, b"".join(self._pems), 0o600)


def _read(path: Path) -> list[bytes]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return [block + _END for block in data.split(_END) if block.strip()]
