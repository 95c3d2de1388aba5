"""One error tree: every class carries its exit code, and its message is one line for a human."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1
"""scan/rotate: findings at or above --fail-on; diff: something new appeared."""
EXIT_SIGNATURE_INVALID = 1
"""verify-report: the signature does not match the file."""
EXIT_BAD_INPUT = 2
EXIT_INCOMPLETE = 3
"""scan: some nodes not swept; rollback: some nodes not rolled back."""
EXIT_ROTATION_STOPPED = 4
"""rotate/resume: stopped after changes were made; the journal says where (`resume` or `rollback` it)."""
EXIT_DECLINED = 5
"""rotate: the operator said no at the prompt (or aborted it); nothing was changed."""


def os_reason(exc: OSError) -> str:
    """Why the system refused a file, as one phrase ("No space left on device")."""
    return exc.strerror or str(exc)


class SweeperError(Exception):
    """Base of every error sweeper raises on purpose; only cli.py catches it and exits."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class BadInput(SweeperError):
    """Something the user gave us (a file, an option) is wrong; exit 2."""


class InventoryError(BadInput):
    """The inventory cannot be read or does not fit the schema."""


class CorruptInput(BadInput):
    """A certificate, CRL, key or IOC file given on the command line is unreadable."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class OutputError(SweeperError):
    """A run's files could not be written where asked (a full disk, a folder gone meanwhile); exit
    2. The message says where the report went instead, or that it could not be kept at all."""


class NodeError(Exception):
    """A failure reaching or reading one node; becomes that node's status, never a crash."""

    status = "error"
    attempts = 0

    def with_attempts(self, attempts: int) -> NodeError:
        """Record how many connection attempts were made before this failure."""
        self.attempts = attempts
        return self


class Transient(NodeError):
    """A fault worth retrying: refused, reset, timed out, dropped before auth."""

    status = "unreachable"


class Unreachable(NodeError):
    """The node could not be reached after every retry (or the fault is not retryable)."""

    status = "unreachable"


class AuthFailed(NodeError):
    """The node refused our identity; retrying would only lock the account."""

    status = "auth-failed"


class HostKeyMismatch(NodeError):
    """The node presented another key than the one known_hosts holds for it: possibly a
    man-in-the-middle. Never connect, never retry."""

    status = "host-key-mismatch"


class HostKeyUnknown(NodeError):
    """known_hosts holds no key for the node (strict checking): add it, or ask for accept-new."""

    status = "host-key-unknown"


class AnswerTooLarge(NodeError):
    """A command's output passed the cap on what one node may send (`--max-node-bytes`);
    reading stopped there, so a flooding node costs a bounded amount of memory. Or the files a
    read script was to send add up to more (`files`: their size), so it sent none. Never retried."""

    status = "error"

    def __init__(self, limit: int, files: int | None = None) -> None:
        cap = f"--max-node-bytes ({limit} bytes)"
        if files is None:
            super().__init__(f"the node's answer passed {cap}: stopped reading, channel closed")
        else:
            super().__init__(f"the files to read add up to {files} bytes, past {cap}: not read")
        self.limit = limit


class CommandFailed(NodeError):
    """A command on the node failed in a way that spoils the whole node read."""

    status = "error"
