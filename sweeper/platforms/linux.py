"""Plain Linux servers: nothing is assumed; the inventory lists every store and the restart command."""

from __future__ import annotations

from sweeper.model import StoreSpec

DEFAULT_STORES: tuple[StoreSpec, ...] = ()
RSA_ONLY = False
RESTART = None
PERSIST = None
