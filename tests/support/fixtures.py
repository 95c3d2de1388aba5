"""pytest fixtures for end-to-end tests against real sshd and OpenSSL-made PKI.

Wire them in with ``pytest_plugins = ["tests.support.fixtures"]`` or
``from tests.support.fixtures import *`` in a conftest. PYTEST_DONT_REWRITE: there are
no asserts here, and a star import would make pytest warn that it came too late to
rewrite this module.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from . import sshd as sshd_support
from .inventory import write_inventory
from .node_tree import LinuxNodeTree, lay_linux_node_tree
from .openssl_pki import OpenSSLPki, make_openssl_pki
from .sshd import ClientKey, Endpoint, SilentListener, Sshd, SshdFactory, make_client_key, start_all

__all__ = [  # the fixtures, and write_inventory for tests that import it from here
    "client_key",
    "linux_node_tree",
    "openssl_pki",
    "refused_port",
    "silent_listener",
    "sshd_factory",
    "write_inventory",
]


@pytest.fixture(scope="session")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> ClientKey:
    """The test client's Ed25519 key pair, made once per session."""
    return make_client_key(tmp_path_factory.mktemp("client-key"))


@pytest.fixture(scope="session")
def openssl_pki(tmp_path_factory: pytest.TempPathFactory) -> OpenSSLPki:
    """The openssl-made PKI, once per session (it takes a couple of seconds)."""
    return make_openssl_pki(tmp_path_factory.mktemp("openssl-pki"))


@pytest.fixture
def sshd_factory(tmp_path: Path, client_key: ClientKey) -> Iterator[SshdFactory]:
    """Start real sshds on distinct 127.0.0.x addresses; all are stopped at teardown."""
    started: list[Sshd] = []
    numbers = itertools.count()

    def start(
        count: int = 1,
        *,
        max_startups: str | None = None,
        max_sessions: int | None = None,
        login_grace_time: int = 30,
        authorized_keys: Sequence[str] | None = None,
        session_path: str | None = None,
    ) -> list[Sshd]:
        keys = [client_key.public_line] if authorized_keys is None else authorized_keys
        sshds = [
            Sshd(
                tmp_path / f"sshd-{next(numbers)}",
                keys,
                max_startups=max_startups,
                max_sessions=max_sessions,
                login_grace_time=login_grace_time,
                session_path=session_path,
            )
            for _ in range(count)
        ]
        started.extend(sshds)
        return start_all(sshds)

    yield start
    for sshd in started:
        sshd.stop()


@pytest.fixture
def silent_listener() -> Iterator[SilentListener]:
    """An address that takes TCP connections and never answers: SSH clients time out."""
    with sshd_support.silent_listener() as endpoint:
        yield endpoint


@pytest.fixture
def refused_port() -> Iterator[Endpoint]:
    """An address where every connection is refused."""
    with sshd_support.refused_port() as endpoint:
        yield endpoint


@pytest.fixture
def linux_node_tree(tmp_path: Path, openssl_pki: OpenSSLPki) -> LinuxNodeTree:
    """One Linux node's file tree (see :func:`lay_linux_node_tree`) under ``tmp_path/node``."""
    return lay_linux_node_tree(tmp_path / "node", openssl_pki)
