"""Running one node script over an open session: framed, split off the event loop, end marker checked."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from sweeper.errors import AnswerTooLarge, CommandFailed
from sweeper.shell.output import Output, split_output
from sweeper.shell.tags import Tag
from sweeper.shell.text import frame, new_token

if TYPE_CHECKING:
    from sweeper.ssh import Session


async def run_node_script(
    session: Session, body: str, what: str, timeout: float | None = None, inline: bool = False
) -> Output:
    """Run `body` on the node (as its `become` user) and return its sections; `inline`: it holds no
    secret, so it may travel on the command line (`Session.run_script`).

    :raises CommandFailed: the script did not reach its end marker; the message names `what`,
        the script's own exit status and its first line of stderr.
    :raises AnswerTooLarge: the files it was to read would pass the session's cap.
    """
    token = new_token()
    script = frame(token, body, session.max_bytes)
    result = await session.run_script(script, timeout=timeout or session.node.deadline, inline=inline)
    output = await asyncio.to_thread(split_output, token, result.stdout, result.exit_status)
    too_big = output.tagged(Tag.TOOBIG)
    if too_big:
        size = too_big[0].args
        raise AnswerTooLarge(session.max_bytes, files=int(size) if size.isdigit() else None)
    if not output.complete:
        first = next((line.strip() for line in result.stderr.splitlines() if line.strip()), "")
        raise CommandFailed(
            f"{what}: stopped early (exit status {result.exit_status}){': ' + first if first else ''}"
        )
    return output
