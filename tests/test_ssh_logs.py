"""asyncssh's log calls: nothing is built for a level that is off, and everything is kept when it is on."""

from __future__ import annotations

import logging

import pytest
from asyncssh.logging import logger as asyncssh_logger

import sweeper.ssh  # noqa: F401  (importing the transport installs the level check)


class Counted:
    """A log argument that counts how often it is turned into text."""

    def __init__(self) -> None:
        self.rendered = 0

    def __str__(self) -> str:
        self.rendered += 1
        return "counted"


def test_a_disabled_level_renders_no_argument() -> None:
    child = asyncssh_logger.get_child("connection", context="conn=7")
    argument = Counted()
    child.info("algorithms: %s", [argument, b"curve25519-sha256"])
    assert argument.rendered == 0


def test_an_enabled_level_logs_as_asyncssh_would(caplog: pytest.LogCaptureFixture) -> None:
    child = asyncssh_logger.get_child("connection", context="conn=7")
    argument = Counted()
    with caplog.at_level(logging.INFO, logger="asyncssh"):
        child.info("algorithms: %s", [argument, b"curve25519-sha256"])
    assert argument.rendered == 1
    assert "[conn=7] algorithms: counted,curve25519-sha256" in caplog.text
