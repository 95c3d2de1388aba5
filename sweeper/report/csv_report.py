"""CSV for spreadsheets: one row per certificate, one row per finding.

Certificate subjects and messages are attacker-controlled; a cell that a spreadsheet would
run as a formula (`=`, `+`, `-`, `@`, tab, CR) is prefixed with `'` so it stays text.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

from sweeper.report.options import RenderOptions
from sweeper.report.schema import Certificate, Node, Report

CERTIFICATE_COLUMNS = (
    "node", "host", "store", "entry", "role", "subject", "issuer", "serial", "not_before", "not_after",
    "sha256", "spki_sha256", "key_type", "key_bits", "signature_algorithm", "is_ca", "self_signed",
    "sans", "key_path", "key_mode", "key_matches",
)  # fmt: skip
FINDING_COLUMNS = ("severity", "rule", "node", "store", "entry", "sha256", "message", "evidence")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def render_certificates(report: Report, options: RenderOptions) -> str:
    rows = (_certificate_row(node, cert) for node in report.nodes for cert in node.certificates)
    return _table(CERTIFICATE_COLUMNS, rows)


def render_findings(report: Report, options: RenderOptions) -> str:
    rows = (
        {**item.model_dump(mode="json"), "evidence": json.dumps(item.evidence, sort_keys=True)}
        for item in report.findings
    )
    return _table(FINDING_COLUMNS, rows)


def _certificate_row(node: Node, cert: Certificate) -> dict[str, Any]:
    """A certificate's cells as the JSON writes them, with its node, SANs and key flattened in."""
    key = cert.key
    return {
        **cert.model_dump(mode="json"),
        "node": node.name,
        "host": node.host,
        "sans": " ".join(cert.sans),
        "key_path": key.path if key else None,
        "key_mode": key.mode if key else None,
        "key_matches": key.matches if key else None,
    }


def _table(columns: tuple[str, ...], rows: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({column: _cell(row.get(column)) for column in columns})
    return buffer.getvalue()


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text
