"""The command line answers at once: importing it loads no SSH, crypto, validation or rendering library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_usage_errors_are_one_line_like_every_other_bad_input(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.support import run

    for args, said in (
        (("scan", "inv.toml", "--concurrency", "0"), "--concurrency"),
        (("scan", "inv.toml", "--fail-on", "bogus"), "unknown severity 'bogus'"),
        (("scan",), "Missing argument"),
        (("rollback", str(tmp_path)), "no rotation journal here"),
        (("lab", "down", "--dir", str(tmp_path)), "no lab is running"),
        (("lab", "scan-args", "--dir", str(tmp_path)), "no lab incident here"),
    ):
        done = run.sweeper(*args)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("sweeper: "), (
            args,
            done.stderr,
        )
        assert said in lines[0]


def test_rotation_pacing_is_checked_before_any_node_is_swept(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.support import run

    inventory = tmp_path / "inv.toml"
    inventory.write_text('[[nodes]]\nhost = "192.0.2.1"\nprofile = "esxi"\nconnect_timeout = 60\n')
    report = Path(__file__).parent / "fixtures" / "report-every-rule.json"
    for option, value in (("--wave", "abc"), ("--wave", "0"), ("--max-failures", "x")):
        done = run.sweeper("rotate", str(inventory), "--from", str(report), option, value, timeout=30)
        assert done.returncode == 2 and option in done.stderr and "sweeping" not in done.stderr


def test_every_commands_help_teaches_its_use() -> None:
    """`sweeper X --help`: a usage line in the Unix shape, values named by what they are (never a
    Python type like `<path>` or `<list[str]>`), the allowed severities, and examples to copy."""
    from tests.support import run

    root = typer.main.get_command(app)
    commands = [
        (f"{name} {sub}".strip(), sub_command)
        for name, command in root.commands.items()
        for sub, sub_command in (getattr(command, "commands", None) or {"": command}).items()
    ]
    assert len(commands) >= 12
    for name, command in commands:
        shown = run.sweeper(*name.split(), "--help", in_process=True)
        assert shown.returncode == 0, (name, shown.stderr)
        text = shown.stdout
        assert text.split(" ", 2)[2].startswith(f"{name} [OPTIONS]"), text.splitlines()[0]
        assert "<" not in text.split("Options:")[0].replace("<stem>", ""), (name, text)
        for line in text.split("Options:")[-1].splitlines():
            assert (
                "<list" not in line and "<path>" not in line and "<int" not in line and "<str>" not in line
            ), (name, line)
        if name != "version":
            assert "Examples:" in text and f"sweeper {name}" in text.split("Examples:")[1], name
        if any("--fail-on" in param.opts for param in command.params):
            assert "critical, high, medium, low or info" in " ".join(text.split()), name
    version = run.sweeper("--version", in_process=True)
    assert version.returncode == 0 and version.stdout.strip()
