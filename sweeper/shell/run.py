"""Running one node script over an open session: framed, split off the event loop, end marker checked."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from sweeper.errors import CommandFailed
from sweeper.shell.output import Output, split_output
from sweeper.shell.text import frame, new_token

if TYPE_CHECKING:
    from sweeper.ssh import Session


async def run_node_script(session: Session, body: str, what: str, timeout: float | None = None) -> Output:
    """Run `body` on the node (as its `become` user) and return its sections.

    :raises CommandFailed: the script did not reach its end marker; the message names `what`,
        the script's own exit status and its first line of stderr.
    """
    token = new_token()
    result = await session.run_script(frame(token, body), timeout=timeout or session.node.deadline)
    output = await asyncio.to_thread(split_output, token, result.stdout, result.exit_status)
    if not output.complete:
        first = next((line.strip() for line in result.stderr.splitlines() if line.strip()), "")
        raise CommandFailed(
            f"{what}: stopped early (exit status {result.exit_status}){': ' + first if first else ''}"
        )
    return output
