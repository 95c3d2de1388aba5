"""SSH transport: one connection per node, strict host keys, typed failures, retries on transient faults.

The only package (with `lab/`) that imports asyncssh. Callers get a `Session` with `run()` and
`run_script()` and plain results; failures come out as the NodeError classes of
`sweeper.errors`, which decide both the node's status and whether a retry is worth it.
"""

from sweeper.ssh.connector import HANDSHAKES_PER_SERVER, AskSecret, Connector, RetryPolicy
from sweeper.ssh.credentials import Credentials, CredentialSeed
from sweeper.ssh.session import MAX_NODE_BYTES, CommandResult, Session

__all__ = [
    "HANDSHAKES_PER_SERVER",
    "MAX_NODE_BYTES",
    "AskSecret",
    "CommandResult",
    "Connector",
    "CredentialSeed",
    "Credentials",
    "RetryPolicy",
    "Session",
]
