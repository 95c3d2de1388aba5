"""Running one node script over an open session: framed, split off the event loop, end marker checked."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from sweeper.errors import AnswerTooLarge, CommandFailed
from sweeper.shell.output import Output, split_output
from sweeper.shell.tags import Tag
from sweeper.shell.text import frame, new_token

if TYPE_CHECKING:
    from sweeper.ssh import Session
    from sweeper.ssh.session import CommandResult

T = TypeVar("T")

PARSE_ON_LOOP_MAX = 32 * 1024
"""An answer this small is parsed on the event loop (well under a millisecond): handing it to a
thread and back costs more than the parse, thousands of times a sweep. A larger one (bundles,
VECS stores) goes to a thread, where its certificates' parsing cannot stall the other nodes."""


async def run_node_script(
    session: Session,
    body: str,
    what: str,
    timeout: float | None = None,
    inline: bool = False,
    label: str | None = None,
) -> Output:
    """Run `body` on the node (as its `become` user) and return its sections; `inline`: it holds no
    secret, so it may travel on the command line; `label`: what the node's process list shows on
    its shell (`Session.run_script`).

    :raises CommandFailed: the script did not reach its end marker; the message names `what`,
        the script's own exit status and its first line of stderr.
    :raises AnswerTooLarge: the files it was to read would pass the session's cap.
    """
    return await run_and_parse(session, body, what, _as_is, timeout, inline, label)


async def run_and_parse(
    session: Session,
    body: str,
    what: str,
    parse: Callable[[Output], T],
    timeout: float | None = None,
    inline: bool = False,
    label: str | None = None,
) -> T:
    """`run_node_script`, then `parse` its sections: split and parsed in one go, off the event loop
    unless the answer is small (`PARSE_ON_LOOP_MAX`)."""
    token = new_token()
    script = frame(token, body, session.max_bytes)
    deadline = timeout or session.node.deadline
    result = await session.run_script(script, timeout=deadline, inline=inline, label=label)
    if len(result.stdout) <= PARSE_ON_LOOP_MAX:
        return _checked_then(token, result, what, session.max_bytes, parse)
    return await asyncio.to_thread(_checked_then, token, result, what, session.max_bytes, parse)


def _checked_then(
    token: str, result: CommandResult, what: str, max_bytes: int, parse: Callable[[Output], T]
) -> T:
    output = split_output(token, result.stdout, result.exit_status)
    too_big = output.tagged(Tag.TOOBIG)
    if too_big:
        size = too_big[0].args
        raise AnswerTooLarge(max_bytes, files=int(size) if size.isdigit() else None)
    if not output.complete:
        first = next((line.strip() for line in result.stderr.splitlines() if line.strip()), "")
        raise CommandFailed(
            f"{what}: stopped early (exit status {result.exit_status}){': ' + first if first else ''}"
        )
    return parse(output)


def _as_is(output: Output) -> Output:
    return output
