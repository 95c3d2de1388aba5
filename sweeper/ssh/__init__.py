"""SSH transport: one connection per node, strict host keys, typed failures, retries on transient faults.

The only package (with `lab/`) that imports asyncssh. Callers get a `Session` with `run()` and
`run_script()` and plain results; failures come out as the NodeError classes of
`sweeper.errors`, which decide both the node's status and whether a retry is worth it.
"""

from sweeper.ssh.connector import HANDSHAKES_PER_SERVER, AskSecret, Connector, RetryPolicy
from sweeper.ssh.credentials import Credentials, CredentialSeed
from sweeper.ssh.logs import skip_disabled_levels
from sweeper.ssh.session import MAX_NODE_BYTES, CommandResult, Session

skip_disabled_levels()  # before any connection: asyncssh's disabled log calls cost ~2.5 % of a sweep

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
