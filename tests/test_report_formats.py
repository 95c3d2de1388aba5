"""Every renderer from the one fixture report: HTML, Markdown, CSV, JUnit (XSD) and SARIF (JSON schema)."""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import cmarkgfm
import jsonschema
import pytest
import xmlschema
from cmarkgfm.cmark import Options as CmarkOptions

from sweeper.errors import CorruptInput
from sweeper.model import (
    CertRecord,
    Finding,
    InventoryRef,
    KeyInfo,
    NodeResult,
    Report,
    RunInfo,
    Severity,
    StoreResult,
)
from sweeper.pki.facts import CertFacts
from sweeper.report import csv_report, html, junit, markdown, sarif, schema, view
from sweeper.report.formats import FORMATS
from sweeper.report.options import RenderOptions
from tests.fixtures.reports import (
    DESIGN_RULES,
    FIXTURE,
    NODE_STATUSES,
    XSS_MARK,
    every_rule_report,
    rotation_report,
    write,
)

SCHEMAS = Path(__file__).with_name("schemas")
DEFAULT = RenderOptions()


@pytest.fixture(scope="module")
def report() -> schema.Report:
    return schema.parse(every_rule_report(), "fixture")


def test_fixture_covers_every_rule_and_node_status(report: schema.Report) -> None:
    assert {f.rule for f in report.findings} == set(DESIGN_RULES)
    assert {n.status for n in report.nodes} == set(NODE_STATUSES)


def test_every_format_renders_the_fixture(report: schema.Report) -> None:
    for outputs in FORMATS.values():
        for output in outputs:
            assert output.render(report, DEFAULT).strip()


def test_html_is_self_contained_and_escapes_certificate_text(report: schema.Report) -> None:
    page = html.render(report, DEFAULT)
    assert XSS_MARK not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#34;xss&#34;)&lt;/script&gt;" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page), "no network fetch"
    assert "<link" not in page and "<script src" not in page and "@import" not in page
    assert page.count("<svg") >= 2, "severity chart and expiry timeline"
    for name in (*DESIGN_RULES, *(n.name for n in report.nodes)):
        assert name in page


def test_html_policy_admits_only_its_own_inline_script_and_style(report: schema.Report) -> None:
    page = html.render(report, DEFAULT)
    policy = unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1))
    assert "default-src 'none'" in policy and "unsafe-inline" not in policy
    assert page.count("<script>") == 1 and page.count("<style>") == 1


def test_html_shows_rotation_plan_steps_and_before_after() -> None:
    page = html.render(schema.parse(rotation_report(), "rotation"), DEFAULT)
    assert 'id="rotation"' in page and "Before and after" in page
    assert "vmdir-unpublish" in page and "st-failed" in page and "stopped at purge" in page
    assert "change-removed" in page and "change-added" in page
    assert XSS_MARK not in page


def test_a_certificate_that_never_expires_sits_at_the_timelines_end_and_squeezes_no_other(
    report: schema.Report,
) -> None:
    """9999-12-31 is RFC 5280's "no expiry": the axis once ran to year 10000 (a ValueError, no
    HTML at all); an axis to 9999 would put every other certificate on one pixel."""
    node = next(n for n in report.nodes if len(n.certificates) >= 2)
    never, soon = node.certificates[:2]
    started = report.run.started
    never = never.model_copy(update={"not_after": datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)})
    soon = soon.model_copy(update={"not_after": started.replace(year=started.year + 1)})
    nodes = [n.model_copy(update={"certificates": [never, soon]}) if n is node else n for n in report.nodes]
    changed = report.model_copy(update={"nodes": nodes})

    timeline = view.expiry_timeline(changed)
    (lane,) = [lane for lane in timeline.lanes if lane.node == node.name]
    end = timeline.width - 20
    assert lane.dots[0].x == end and lane.dots[0].not_after == "9999-12-31T23:59:59Z"
    assert lane.dots[1].x - timeline.now_x > 10, "a year ahead is still apart from the run's line"
    assert "9999-12-31T23:59:59Z" in html.render(changed, DEFAULT)


def test_scan_report_has_no_rotation_section(report: schema.Report) -> None:
    assert 'id="rotation"' not in html.render(report, DEFAULT)


HOSTILE_TEXT = (
    "see https://evil.example/x and www.evil.example, mail a@evil.example, ping @security-team #12 "
    "$e^{i\\pi}$ $$x$$ [link](http://evil.example) ![img](http://evil.example/i.png) <b>bold</b> "
    "**strong** ``tick`` | pipe \\| escaped\nnew line\r\x1b[2J\u202egnp.exe"
)


def hostile_report() -> schema.Report:
    """The fixture with attacker text in a finding's message and entry and in a node's error."""
    document = every_rule_report()
    document["findings"][0].update(message=HOSTILE_TEXT, entry=HOSTILE_TEXT)
    next(n for n in document["nodes"] if n["status"] != "ok")["error"] = HOSTILE_TEXT
    return schema.parse(document, "hostile")


class _CodeAndText(HTMLParser):
    """Rendered HTML split into the text of <code> elements and the text outside them, plus the tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.code: list[str] = []
        self.outside: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "code":
            self.depth += 1
            self.code.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "code":
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.code[-1] += data
        else:
            self.outside.append(data)


def render_github(markdown_text: str) -> _CodeAndText:
    """What GitHub's cmark fork (tables, autolinks, raw HTML let through) makes of the Markdown."""
    parsed = _CodeAndText()
    unsafe = CmarkOptions.CMARK_OPT_UNSAFE
    parsed.feed(cmarkgfm.github_flavored_markdown_to_html(markdown_text, options=unsafe))
    return parsed


def test_markdown_shows_node_text_as_literal_text_nothing_comes_alive() -> None:
    html_text = render_github(markdown.render(hostile_report(), DEFAULT))
    shown = HOSTILE_TEXT.replace("\n", "\\x0a").replace("\r", "\\x0d").replace("\x1b", "\\x1b")
    shown = shown.replace("\u202e", "\\u202e")
    assert html_text.code.count(shown) == 3, "message, entry and node error, each exactly as sent"
    assert not html_text.tags & {"a", "img", "b", "em", "script", "math"}, html_text.tags
    outside = "".join(html_text.outside)
    for live in ("evil.example", "@", "$", "#12", "<", "\x1b", "\u202e"):
        assert live not in outside, f"{live!r} outside a code span"


def test_markdown_tables_keep_their_columns_whatever_the_cells_hold() -> None:
    html_page = cmarkgfm.github_flavored_markdown_to_html(markdown.render(hostile_report(), DEFAULT))
    rows = re.findall(r"<tr>(.*?)</tr>", html_page, re.S)
    findings = [row for row in rows if "compromised-issuer" in row or "ioc-match" in row]
    assert findings and all(row.count("<td") == 7 for row in findings)


@pytest.mark.parametrize("text", ["x", " lead", "trail ", " both ", "`tick", "a``b`", "   ", "a|b\\|c"])
def test_a_markdown_code_span_gives_back_exactly_its_text(text: str) -> None:
    for in_table in (False, True):
        cell = markdown.code(text, in_table=in_table)
        source = f"| h |\n|---|\n| {cell} |\n" if in_table else cell
        (shown,) = render_github(source).code
        assert shown == text


def test_csv_has_a_row_per_certificate_and_per_finding(report: schema.Report) -> None:
    certificates = list(csv.DictReader(io.StringIO(csv_report.render_certificates(report, DEFAULT))))
    findings = list(csv.DictReader(io.StringIO(csv_report.render_findings(report, DEFAULT))))
    assert len(certificates) == report.summary.certificates
    assert len(findings) == len(report.findings)
    assert {row["rule"] for row in findings} == set(DESIGN_RULES)
    assert json.loads(findings[0]["evidence"]) == report.findings[0].evidence


def test_csv_neutralises_spreadsheet_formulas(report: schema.Report) -> None:
    formula = next(c.entry for n in report.nodes for c in n.certificates if c.entry.startswith("="))
    for rendered in (
        csv_report.render_certificates(report, DEFAULT),
        csv_report.render_findings(report, DEFAULT),
    ):
        rows = list(csv.DictReader(io.StringIO(rendered)))
        assert "'" + formula in {row["entry"] for row in rows}
        assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row.values())


def test_junit_validates_against_the_jenkins_xsd(report: schema.Report) -> None:
    xsd = xmlschema.XMLSchema(SCHEMAS / "junit-10.xsd")
    xsd.validate(junit.render(report, DEFAULT))
    xsd.validate(junit.render(schema.parse(rotation_report(), "rotation"), DEFAULT))


def test_junit_has_a_case_per_node_and_failures_at_or_above_fail_on(report: schema.Report) -> None:
    root = ET.fromstring(junit.render(report, DEFAULT))
    cases = root.findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == [n.name for n in report.nodes] + ["(fleet)"]
    at_or_above_high = sum(1 for f in report.findings if f.severity >= Severity.HIGH)
    assert len(root.findall(".//failure")) == at_or_above_high, "one <failure> per finding"
    failed_cases = [c for c in cases if c.find("failure") is not None]
    assert int(root.get("failures")) == len(failed_cases) <= int(root.get("tests")), "cases, not findings"
    errors = {c.get("name"): c.find("error").get("type") for c in cases if c.find("error") is not None}
    assert errors == {n.name: n.status for n in report.nodes if n.status != "ok"}
    strict = ET.fromstring(junit.render(report, RenderOptions(fail_on=Severity.LOW)))
    assert len(strict.findall(".//failure")) == len(report.findings)


def test_junit_keeps_control_characters_out_of_xml() -> None:
    document = every_rule_report()
    document["findings"][0]["message"] = "bad\x00byte\x1b[31m"
    root = ET.fromstring(junit.render(schema.parse(document, "fixture"), DEFAULT))
    assert "\ufffd" in root.find(".//failure").get("message")


def test_sarif_validates_against_the_oasis_schema(report: schema.Report) -> None:
    validator = jsonschema.Draft4Validator(json.loads((SCHEMAS / "sarif-schema-2.1.0.json").read_text()))
    for doc in (report, schema.parse(rotation_report(), "rotation")):
        errors = [e.message for e in validator.iter_errors(json.loads(sarif.render(doc, DEFAULT)))]
        assert errors == []


def test_sarif_results_carry_rule_level_and_logical_location(report: schema.Report) -> None:
    run = json.loads(sarif.render(report, DEFAULT))["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert set(DESIGN_RULES) <= {rule["id"] for rule in rules}
    assert all(rule["shortDescription"]["text"] for rule in rules)
    results = run["results"]
    assert len(results) == len(report.findings)
    levels = {(r["ruleId"], r["level"]) for r in results}
    assert ("revoked", "error") in levels and ("expiring", "warning") in levels
    assert ("hostname-mismatch", "note") in levels
    assert all(rules[r["ruleIndex"]]["id"] == r["ruleId"] for r in results)
    revoked = next(r for r in results if r["ruleId"] == "revoked")
    location = revoked["locations"][0]["logicalLocations"][0]
    assert location["fullyQualifiedName"] == "esx01:/etc/vmware/ssl/castore.pem/castore.pem#3"
    assert run["invocations"][0]["executionSuccessful"] is False, "four nodes were not swept"


def sarif_plain_text(message: str) -> str:
    """A SARIF plain-text message as a viewer reads it (2.1.0 §3.11.6): `\\[`, `\\]`, `\\\\` are literal
    characters; an unescaped bracket would start an embedded link, so there must be none."""
    shown, chars = [], iter(message)
    for char in chars:
        if char == "\\":
            following = next(chars)
            assert following in "[]\\", f"a lone backslash before {following!r}"
            shown.append(following)
        else:
            assert char not in "[]", f"an unescaped {char!r}: a link could start here"
            shown.append(char)
    return "".join(shown)


def test_sarif_messages_are_plain_text_no_link_or_control_character_survives() -> None:
    run = json.loads(sarif.render(hostile_report(), DEFAULT))["runs"][0]
    messages = [r["message"]["text"] for r in run["results"]]
    messages += [n["message"]["text"] for n in run["invocations"][0]["toolExecutionNotifications"]]
    shown = [sarif_plain_text(text) for text in messages]
    expected = HOSTILE_TEXT.replace("\n", "\\x0a").replace("\r", "\\x0d").replace("\x1b", "\\x1b")
    expected = expected.replace("\u202e", "\\u202e")
    assert shown[0] == expected
    assert sum(text.endswith("not swept: " + expected) for text in shown) == 1
    assert not any(c in "".join(messages) for c in "\n\r\x1b\u202e")


def test_model_report_is_written_through_the_schema_and_reads_back_the_same() -> None:
    moment = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    facts = CertFacts(
        subject="CN=a", issuer="CN=ca", serial="0a", not_before=moment, not_after=moment, sha256="ab" * 32,
        spki_sha256="cd" * 32, key_type="RSA", key_bits=2048, signature_algorithm="sha256WithRSAEncryption",
        is_ca=False, self_signed=False, sans=("a",),
    )  # fmt: skip
    cert = CertRecord(
        node="n1", store="/etc/ssl/a.pem", entry="a.pem", role="leaf", facts=facts,
        key=KeyInfo(path="/etc/ssl/a.key", mode="0600", matches=True),
    )  # fmt: skip
    node = NodeResult(
        name="n1", host="h", status="ok", attempts=1, certificates=(cert,),
        stores=(StoreResult(label="/etc/ssl/a.pem", kind="pem", role="leaf", certificates=1),),
    )  # fmt: skip
    finding = Finding(
        "expired", Severity.HIGH, "n1", cert.store, cert.entry, cert.facts.sha256, "expired", {"d": 1}
    )
    inventory = InventoryRef("inv.toml", "ef" * 32)
    run = RunInfo("r1", "scan", moment, moment, "0.1.0", inventory, ("sweeper", "scan"))
    raw = schema.encode(Report(run, (node,), (finding,)))
    document = json.loads(raw)
    assert list(document) == ["schema", "run", "summary", "nodes", "findings"], "no rotation sections"
    assert document["run"]["started"] == "2025-01-02T03:04:05Z"
    assert document["summary"] == {
        "nodes": 1, "nodes_swept": 1, "certificates": 1,
        "findings": {"critical": 0, "high": 1, "medium": 0, "low": 0, "info": 0},
    }  # fmt: skip
    assert document["nodes"][0]["certificates"][0]["sha256"] == "ab" * 32
    assert document["findings"][0]["severity"] == "high"
    parsed = schema.parse(raw, "model")
    assert parsed.findings[0].severity is Severity.HIGH and parsed.run.started == moment
    assert parsed.nodes[0].certificates[0].key == schema.Key(path="/etc/ssl/a.key", mode="0600", matches=True)
    assert schema.encode(parsed) == raw


def test_reports_read_back_are_written_byte_for_byte_as_they_were(tmp_path: Path) -> None:
    for path in (FIXTURE, write(rotation_report(), tmp_path / "rotation.json")):
        assert schema.encode(schema.load(path)) == path.read_bytes(), path.name


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r.update(schema="sweeper.report/2"), "not a sweeper.report/1 report"),
        (lambda r: r["nodes"][0].update(colour="red"), "nodes.0.colour: Extra inputs are not permitted"),
        (lambda r: r["nodes"][0].pop("certificates"), "nodes.0.certificates: Field required"),
        (lambda r: r["nodes"][0]["certificates"][0].update(sha256="AB" * 32), "certificates.0.sha256"),
        (lambda r: r["nodes"][1].update(status="sleeping"), "nodes.1.status"),
        (lambda r: r["findings"][0].update(severity="severe"), "findings.0.severity"),
        (lambda r: r["run"].pop("started"), "run.started: Field required"),
    ],
)
def test_strict_schema_names_the_first_problem_in_one_line(change, expected: str) -> None:
    report = every_rule_report()
    change(report)
    with pytest.raises(CorruptInput) as caught:
        schema.parse(report, "r.json")
    assert expected in str(caught.value) and "\n" not in str(caught.value)
