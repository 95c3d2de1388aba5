"""Building shell text: one quoting helper, section marks, framing with a token and an end marker.

Every node script is POSIX sh (ESXi's busybox included), whole before any of it runs: a script
that holds no secret travels on the command line itself (`sh -c SCRIPT`: no process to read it,
nothing on stdin); any other is sent on stdin to `sh -s` as one brace group (`on_stdin`), which the
shell parses whole before it runs any of it: a script cut short (a connection lost while it was
sent) is a syntax error and runs not at all, and a command that reads stdin gets /dev/null, not
the rest of the script. Its status is the script's own, so "exit status N" in an error is the
script's.
"""

from __future__ import annotations

import secrets
import shlex

from sweeper.shell.tags import Tag

INLINE_MAX = 64 * 1024
"""Longest script sent on the command line (Linux takes 128 KiB in one argument)."""

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


def node_text(data: bytes | bytearray) -> str:
    """A node's bytes as text; bytes that are not UTF-8 show as `\\xNN`, so two file names that
    differ only there are never read alike (U+FFFD would merge them)."""
    return data.decode("utf-8", errors="backslashreplace")


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


def run_inline(script: str) -> str | None:
    """The command line that runs `script` itself, as ourselves; None when it is too long for one.

    Only for scripts that hold no secret: a command line shows in the node's process list."""
    return f"sh -c {quote(script)}" if len(script) <= INLINE_MAX else None


def on_stdin(script: str) -> str:
    """`script` as sent on stdin (to `run_stdin`'s shell): one brace group, parsed whole before any
    of it runs, whose commands read /dev/null."""
    return "{\n" + script + "\n} </dev/null\n"


def run_stdin(become: str | None = None, label: str | None = None) -> str:
    """The command line that runs a script given on stdin (`on_stdin`), as ourselves or through
    `sudo -n`/`doas -n`.

    `label` is the shell's argument: the node's process list shows it on the shell for as long as
    the script runs (a rotation's scripts say which run they belong to)."""
    runner = f"sh -s{_argument(label)}"
    return f"{become} -n {runner}" if become else runner


def run_stdin_sudo_password(label: str | None = None) -> str:
    """`sudo -S` that prompts with our marker, then says when the shell is ready for the script
    (`on_stdin`), and becomes `run_stdin`'s shell."""
    ready = f'echo "{SHELL_READY}" >&2; exec sh -s "$@"'
    return f"sudo -S -p {quote(SUDO_PROMPT)} sh -c {quote(ready)} sh{_argument(label)}"


def _argument(label: str | None) -> str:
    return f" {quote(label)}" if label else ""
