"""The command line answers at once: importing it loads no SSH, crypto, validation or rendering library."""

from __future__ import annotations

import subprocess
import sys

import typer.main

from sweeper.cli import app

HEAVY = ("asyncssh", "cryptography", "pydantic", "rich", "jinja2", "badkeys", "gmpy2", "yaml", "sqlite3")


def test_importing_the_cli_loads_no_heavy_library() -> None:
    probe = "import sys, sweeper.cli; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_no_option_takes_a_secret_on_the_command_line() -> None:
    """Secrets come from variables the inventory or an option *names* (…-env), so argv is safe to record."""
    command = typer.main.get_command(app)
    names = []
    stack = [command]
    while stack:
        current = stack.pop()
        stack.extend(getattr(current, "commands", {}).values())
        names += [opt for param in current.params for opt in param.opts]
    secretive = [n for n in names if any(w in n for w in ("password", "passphrase", "token", "secret"))]
    assert names and all(n.endswith("-env") for n in secretive), secretive
