"""Each node's TLS endpoint: it serves the certificate it loaded until the node restarts.

Real services read their certificate when they start, so a rotation must restart them
and prove it did by a handshake (DESIGN, Rotation). An endpoint keeps the context it
built until one of the node's restart stand-ins (bin/service-stub) appends to the node's
RESTART_STAMP; the next handshake rebuilds the context from the files. A rebuild that
fails keeps the old context and says why in the node's SERVICES_LOG, as a real service
whose reload fails keeps running on what it had.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from contextlib import suppress
from functools import partial
from pathlib import Path

from sweeper.lab.plan import RESTART_STAMP, SERVICES_LOG, NodeSpec
from sweeper.lab.vcsa import VECS
from sweeper.platforms.vcsa import MACHINE_SSL, MACHINE_SSL_ALIAS

_MACHINE_CERT = f"{VECS}/{MACHINE_SSL}/{MACHINE_SSL_ALIAS}"
_TIMEOUT = 10.0


def identity_files(node: NodeSpec) -> tuple[str, str]:
    """(certificate, key) node paths the endpoint serves: vcsa its Machine SSL entry, else the first leaf."""
    if node.profile == "vcsa":
        return f"{_MACHINE_CERT}/cert.pem", f"{_MACHINE_CERT}/key.pem"
    return node.leaves[0].cert, node.leaves[0].key


class TlsEndpoint:
    """One node's served identity, loaded when constructed (~3 ms: OpenSSL 3.0 parses slowly)."""

    def __init__(self, root: Path, node: NodeSpec) -> None:
        cert, key = identity_files(node)
        self.name = node.name
        self._node_cert = cert  # as the node sees it, for the log
        self._cert = root / cert.lstrip("/")
        self._key = root / key.lstrip("/")
        self._stamp = root / RESTART_STAMP.lstrip("/")
        self._log = root / SERVICES_LOG.lstrip("/")
        self._restarts = self._stamp_state()  # before reading: a restart meanwhile is seen
        self._served: ssl.SSLContext | None = None
        try:
            self._served = self._load()
        except OSError as exc:
            self._note(f"not serving {self._node_cert}: {exc}")
        # The listener's context: its hello callback hands each handshake the served one.
        self.listen_context = self._served or _context()
        self.listen_context.sni_callback = self._on_hello

    async def listen(self, host: str, live: set[asyncio.StreamWriter]) -> asyncio.Server:
        """Listen on a port the kernel picks; `live` holds the open connections (for shutdown)."""
        return await asyncio.start_server(
            partial(_answer, self.name, live),
            host,
            0,
            ssl=self.listen_context,
            ssl_handshake_timeout=_TIMEOUT,
            backlog=256,
        )

    def _on_hello(self, conn: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> int | None:
        """Called on every ClientHello (SNI or not): pick up a restart, then serve what is loaded."""
        restarts = self._stamp_state()
        if restarts != self._restarts:
            self._restarts = restarts
            try:
                self._served = self._load()
            except OSError as exc:  # ssl.SSLError too: a bad PEM, a key that is not the cert's
                self._note(f"reload failed, still serving the previous certificate: {exc}")
            else:
                self._note(f"reloaded {self._node_cert}")
        if self._served is None:
            return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
        conn.context = self._served
        return None

    def _load(self) -> ssl.SSLContext:
        context = _context()
        context.load_cert_chain(self._cert, self._key)
        return context

    def _stamp_state(self) -> tuple[int, int] | None:
        """The stamp only grows, so (size, mtime) changes on every restart, however quick."""
        try:
            stat = self._stamp.stat()
        except OSError:
            return None
        return stat.st_size, stat.st_mtime_ns

    def _note(self, message: str) -> None:
        with suppress(OSError):
            os.makedirs(self._log.parent, exist_ok=True)
            with open(self._log, "a") as log:
                log.write(f"lab-tls {message}\n")


def _context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # Serve the planted RSA-1024 and SHA-1 leaves as found; OpenSSL's default level refuses them.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


async def _answer(
    name: str, live: set[asyncio.StreamWriter], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """After the handshake: answer a request (curl -k, openssl s_client) with the node name, close."""
    live.add(writer)
    try:
        if await asyncio.wait_for(reader.read(4096), _TIMEOUT):
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + f"{name}\n".encode())
            await writer.drain()
    except (OSError, TimeoutError):
        pass  # the client left (a handshake-only check does) or stayed silent
    finally:
        live.discard(writer)
        writer.close()
