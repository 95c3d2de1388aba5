"""The per-node progress lines on a stderr that is no terminal: node text escaped, never markup,
written as rich would print it."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import pytest
from rich.console import Console

from sweeper.cli import console
from sweeper.model import Finding, InventoryRef, NodeResult, Report, RunInfo, Severity

HOSTILE = [
    ("web1", "ok", None),
    ("[bold red]web2[/]", "unreachable", "refused\x1b[2J\x1b]0;owned\x07"),
    ("web3\tx", "error", "tab\there, 日本\tthere\nand a second line"),
    ("\u202eweb4", "auth-failed", "[link=http://evil.example]click[/link] :smile:"),
]


def test_node_lines_off_a_terminal_are_what_rich_prints_and_carry_no_escape(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert not console.err.is_terminal
    results = [NodeResult(name, "10.0.0.1", status, error) for name, status, error in HOSTILE]
    with console.progress_reporter(len(results)) as node_done:
        for result in results:
            node_done(result)

    reference = io.StringIO()
    printer = Console(file=reference, highlight=False, width=200)
    for index, (name, status, error) in enumerate(HOSTILE, start=1):
        detail = "0 certificates" if status == "ok" else error
        line = f"[{index}/{len(HOSTILE)}] {name}: {status} {detail}"
        printer.print(console.plain(line), soft_wrap=True)
    written = capsys.readouterr().err
    assert written == reference.getvalue()
    assert "\x1b" not in written and "\x07" not in written and "\u202e" not in written
    assert "[bold red]web2[/]" in written and "\\x1b[2J" in written, "markup and escapes shown as text"


def test_the_summary_shows_a_few_hundred_characters_of_a_huge_node_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A hostile certificate's 50 KB subject went whole into the findings table: one finding
    filled the operator's screen. The report keeps it all; the terminal a clipped start."""
    subject = "OU=" + "x" * 50_000
    moment = datetime(2026, 12, 3, tzinfo=UTC)
    run = RunInfo("r", "scan", moment, moment, "t", InventoryRef("inv.toml", "0" * 64), ())
    finding = Finding(
        "expiring", Severity.MEDIUM, "web1", "/c.pem", "/c.pem", None, f"expires soon: {subject}"
    )
    console.show_summary(Report(run, (NodeResult("web1", "h", "error", "x" * 9_000),), (finding,)))
    written = capsys.readouterr().err
    assert len(written) < 4_000
    squashed = re.sub(r"[\s│]", "", written)  # the table folds its cells over lines
    assert "expiressoon:OU=xxx" in squashed
    assert f"({50_000 + 17 - console.MAX_SHOWN}morecharactersinthereport)" in squashed
