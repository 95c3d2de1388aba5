"""Building shell text: one quoting helper, section marks, framing with a token and an end marker.

Every node script is POSIX sh (ESXi's busybox included) sent on stdin, read whole before any
of it runs (so a command that reads stdin gets EOF, not the rest of the script), and its
output gathered and printed once (a few large packets instead of hundreds of small ones).
The runner keeps the script's exit status, so "exit status N" in an error is the script's own.
"""

from __future__ import annotations

import secrets
import shlex

from sweeper.shell.tags import Tag

RUNNER = 'out=$(eval "$(cat)"); rc=$?; printf "%s\\n" "$out"; exit $rc'
"""The one-line program every node script runs under: read it all, run it, print, keep the status."""

SUDO_PROMPT = "[sweeper-sudo-password]"
SHELL_READY = "[sweeper-shell-ready]"


class RunTime(str):
    """A value known only when a step runs (read from the node, or signed once the node made its key).

    `rotate --dry-run --show-scripts` builds each step's scripts with these in place of the
    real values, so the scripts it prints come from the same code that runs them; they show
    as `<description>` and are never sent to a node.
    """


def quote(text: str) -> str:
    """The only way node-bound text enters a shell line: single-quoted, nothing expanded."""
    if isinstance(text, RunTime):
        return f"<{text}>"
    return shlex.quote(text)


def new_token() -> str:
    """A fresh random prefix for one script's tag lines, so file contents cannot pose as tags."""
    return "@@SWEEPER-" + secrets.token_hex(8)


def frame(token: str, body: str, max_bytes: int = 0) -> str:
    """The whole script: the token in `$T`, the answer's cap in `$SW_MAX` (0: none), the body, then
    the end marker that proves it ran to the end."""
    return f"T={quote(token)}\nSW_MAX={int(max_bytes)}\n{body}\n{mark(Tag.END)}"


def mark(tag: Tag, section: str = "", args: str = "") -> str:
    """A line of shell that starts a section: `<token> <tag> <section> <args>`."""
    words = " ".join(part for part in (str(tag), section, args) if part)
    return f'echo "$T {words}"\n'


def run_stdin(become: str | None = None) -> str:
    """The command line that runs a script given on stdin, as ourselves or through `sudo -n`/`doas -n`."""
    runner = f"sh -c {quote(RUNNER)}"
    return f"{become} -n {runner}" if become else runner


def run_stdin_sudo_password() -> str:
    """`sudo -S` that prompts with our marker, then says when the shell is ready for the script."""
    ready = f'echo "{SHELL_READY}" >&2; {RUNNER}'
    return f"sudo -S -p {quote(SUDO_PROMPT)} sh -c {quote(ready)}"
