"""The HTML report in a real headless Chromium: it renders, logs no error, fetches nothing, filters, prints.

Driven through the DevTools protocol over `--remote-debugging-pipe` (NUL-separated JSON on
fds 3 and 4): no port to collide on and no websocket library needed.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from sweeper.report import html, schema
from sweeper.report.options import RenderOptions
from tests.fixtures.reports import every_rule_report, rotation_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium package (installed by .ci/install-system-deps.sh)"
)
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-pipe",
)  # fmt: skip
VISIBLE_ROWS = "[...document.querySelectorAll('#findings tbody tr')].filter(r => !r.hidden).length"


class DevTools:
    """A headless Chromium and one page in it, spoken to over the DevTools pipe."""

    def __init__(self, profile: Path, log: Path) -> None:
        to_browser, self._writer = os.pipe()
        self._reader, from_browser = os.pipe()
        # Chromium reads commands on fd 3 and answers on fd 4; bash puts the pipes there (dash cannot
        # redirect fds above 9).
        redirect = f'exec "$0" "$@" 3<&{to_browser} 4>&{from_browser}'
        with log.open("wb") as stderr:
            self.process = subprocess.Popen(
                ["bash", "-c", redirect, CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                pass_fds=(to_browser, from_browser),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)

    def call(self, method: str, session: bool = False, timeout: float = 20, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._writer, json.dumps(message).encode() + b"\0")
        reply = self._until(lambda m: m.get("id") == self._next_id, timeout)
        assert "error" not in reply, reply
        return reply["result"]

    def wait_for(self, method: str, timeout: float = 20) -> dict[str, Any]:
        seen = next((e for e in self.events if e.get("method") == method), None)
        return seen or self._until(lambda m: m.get("method") == method, timeout)

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def problems(self) -> list[dict[str, Any]]:
        """Console errors, uncaught exceptions, dialogs (an alert means injected script ran)."""
        bad = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if (
                method in ("Runtime.exceptionThrown", "Page.javascriptDialogOpening")
                or (method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"))
                or (method == "Log.entryAdded" and params["entry"]["level"] == "error")
            ):
                bad.append(event)
        return bad

    def requests(self) -> list[str]:
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent"
        ]

    def close(self) -> None:
        try:
            os.write(self._writer, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        finally:
            os.close(self._writer)
            os.close(self._reader)

    def _until(self, wanted, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if wanted(message):
                    return message
                if "method" in message:
                    self.events.append(message)
            left = deadline - time.monotonic()
            assert left > 0, "no answer from Chromium in time"
            ready, _, _ = select.select([self._reader], [], [], left)
            if ready:
                chunk = os.read(self._reader, 1 << 20)
                assert chunk, "Chromium closed the DevTools pipe"
                self._buffer += chunk


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("chromium")
    devtools = DevTools(folder / "profile", folder / "chromium.log")
    devtools.call("Emulation.setDeviceMetricsOverride", session=True, width=1280, height=900,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip
    yield devtools
    devtools.close()


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(html.render(schema.parse(every_rule_report(), "fixture"), RenderOptions()))
    return path


def test_page_renders_with_no_console_error_and_no_fetch(browser: DevTools, page: Path) -> None:
    browser.open(page.as_uri())
    assert browser.evaluate("document.body.dataset.ready") == "true"
    assert browser.evaluate(VISIBLE_ROWS) == len(every_rule_report()["findings"])
    assert browser.evaluate("document.querySelectorAll('svg circle').length") == 14
    assert browser.problems() == []
    assert browser.requests() == [page.as_uri()], "the page loads nothing but itself"


def test_attacker_controlled_subject_is_shown_as_text(browser: DevTools, page: Path) -> None:
    browser.open(page.as_uri())
    assert browser.evaluate("document.body.textContent.includes('<script>alert(\"xss\")</script>')")
    assert browser.evaluate("document.querySelectorAll('img').length") == 0
    assert browser.evaluate("document.querySelectorAll('script').length") == 1
    assert browser.problems() == []


def test_typing_in_the_filter_hides_other_findings(browser: DevTools, page: Path) -> None:
    browser.open(page.as_uri())
    browser.evaluate("document.getElementById('filter-text').focus()")
    browser.call("Input.insertText", session=True, text="rogue-root")
    assert browser.evaluate(VISIBLE_ROWS) == 2
    assert "2 of 19" in browser.evaluate("document.getElementById('filter-count').textContent")


def test_query_string_presets_the_filter(browser: DevTools, page: Path) -> None:
    browser.open(page.as_uri() + "?severity=critical")
    assert browser.evaluate("document.getElementById('filter-severity').value") == "critical"
    assert browser.evaluate(VISIBLE_ROWS) == 5
    browser.open(page.as_uri() + "?q=esx01&severity=high")
    assert browser.evaluate(VISIBLE_ROWS) == 2


def test_clicking_a_header_sorts_the_table(browser: DevTools, page: Path) -> None:
    browser.open(page.as_uri())
    first_rule = "document.querySelector('#findings tbody tr').dataset.rule"
    browser.evaluate("document.querySelectorAll('#findings th')[1].click()")
    assert browser.evaluate(first_rule) == "compromised-issuer"
    browser.evaluate("document.querySelectorAll('#findings th')[1].click()")
    assert browser.evaluate(first_rule) == "weak-signature"
    assert browser.problems() == []


def test_screenshot_and_pdf_are_produced(browser: DevTools, page: Path, tmp_path: Path) -> None:
    browser.open(page.as_uri())
    shot = base64.b64decode(
        browser.call("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True)["data"]
    )
    (tmp_path / "report.png").write_bytes(shot)
    assert shot.startswith(b"\x89PNG") and len(shot) > 20_000
    pdf = base64.b64decode(browser.call("Page.printToPDF", session=True, landscape=True, timeout=60)["data"])
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000


def test_rotation_report_renders_without_errors(browser: DevTools, tmp_path: Path) -> None:
    path = tmp_path / "rotation.html"
    path.write_text(html.render(schema.parse(rotation_report(), "rotation"), RenderOptions()))
    browser.open(path.as_uri())
    assert browser.evaluate("document.querySelectorAll('#rotation tr.change-added').length") == 1
    assert browser.evaluate("document.querySelectorAll('#rotation tr.outcome-failed').length") == 1
    assert browser.problems() == []
