"""One self-contained HTML page per report: CSS, JS and charts inline, no network fetch, printable.

Everything from the report is escaped by jinja2's autoescape (certificate subjects are
attacker-controlled), and a Content-Security-Policy that admits only this page's own script
and stylesheet (by hash) keeps anything that slipped through from running or loading.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from importlib.resources import files

import jinja2

from sweeper.report import view
from sweeper.report.options import RenderOptions
from sweeper.report.schema import SEVERITIES, Report, iso

TEMPLATES = files("sweeper.report") / "templates"


def render(report: Report, options: RenderOptions) -> str:
    script, style = _asset("report.js"), _asset("report.css")
    policy = (
        "default-src 'none'; img-src data:; "
        f"script-src '{_sha256(script)}'; style-src '{_sha256(style)}'; base-uri 'none'; form-action 'none'"
    )
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            report=report,
            fail_on=options.fail_on.label,
            policy=policy,
            script=script,
            style=style,
            severities=SEVERITIES,
            rank=view.RANK,
            by_node=view.findings_by_node(report),
            worst=view.worst_by_certificate(report),
            bars=view.severity_bars(report),
            timeline=view.expiry_timeline(report),
            changes=view.before_after(report),
        )
    )


@cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("sweeper.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["iso"] = iso
    return environment


@cache
def _asset(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def _sha256(text: str) -> str:
    """A CSP source expression for exactly this inline script or style."""
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
