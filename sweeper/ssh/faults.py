"""Map transport exceptions to the NodeError class that decides a node's status and retry."""

from __future__ import annotations

import socket

import asyncssh

from sweeper.errors import AuthFailed, HostKeyMismatch, NodeError, Transient, Unreachable, os_reason


def classify(exc: BaseException) -> NodeError:
    """Transient faults (refused, reset, timeout, dropped before auth) are retried; nothing else is."""
    if isinstance(exc, NodeError):
        return exc
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return HostKeyMismatch(f"host key not verifiable: {exc.reason}")
    if isinstance(exc, asyncssh.PermissionDenied):
        return AuthFailed(f"authentication refused: {exc.reason}")
    if isinstance(exc, asyncssh.ConnectionLost):
        return Transient(f"connection dropped: {exc.reason}")
    if isinstance(exc, asyncssh.ChannelOpenError):
        return Transient(f"channel refused: {exc.reason}")
    if isinstance(exc, asyncssh.DisconnectError):
        return Unreachable(f"SSH protocol failure: {exc.reason}")
    if isinstance(exc, TimeoutError):
        return Transient("timed out connecting")
    if isinstance(exc, ConnectionRefusedError):
        return Transient("connection refused")
    if isinstance(exc, ConnectionResetError):
        return Transient("connection reset")
    if isinstance(exc, socket.gaierror):
        return Unreachable(f"cannot resolve host name: {os_reason(exc)}")
    if isinstance(exc, OSError):
        return Transient(os_reason(exc))
    return NodeError(f"{type(exc).__name__}: {exc}")


def via_bastion(bastion: str, exc: NodeError) -> NodeError:
    """The same failure class, its message naming the bastion, and never retried per node."""
    cls = Unreachable if isinstance(exc, Transient) else type(exc)
    return cls(f"bastion {bastion}: {exc}")
