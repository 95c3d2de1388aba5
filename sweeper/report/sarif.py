"""SARIF 2.1.0 for security dashboards: rules are sweeper's rule ids, results sit at logical locations.

A certificate has no source file, so each result's location is the logical location
`node/store/entry`; a node that could not be swept becomes a tool notification, and the
invocation is marked unsuccessful, so a dashboard does not read an incomplete sweep as clean.

Messages carry node text (subjects, errors), and a SARIF viewer renders `[text](target)` in a
plain-text message as a link (SARIF 2.1.0 §3.11.6): brackets and backslashes are escaped as
the standard says, control characters as everywhere else (`sweeper.plaintext`).
"""

from __future__ import annotations

import json
from typing import Any

from sweeper.detect import select
from sweeper.model import Severity
from sweeper.plaintext import escape_controls
from sweeper.report.options import RenderOptions
from sweeper.report.schema import Finding, Report, iso
from sweeper.report.view import place

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
LEVELS = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
# GitHub code scanning reads `security-severity` (0-10) to rank security results.
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "0.0"}


def render(report: Report, options: RenderOptions) -> str:
    run = report.run
    rules = _rules(report)
    index = {rule["id"]: position for position, rule in enumerate(rules)}
    sarif = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "sweeper",
                        "version": run.tool_version,
                        "rules": rules,
                    }
                },
                "automationDetails": {"id": f"sweeper/{run.kind}/{run.id}"},
                "invocations": [_invocation(report)],
                "results": [_result(item, index[item.rule]) for item in report.findings],
                "properties": {
                    "inventory": run.inventory.model_dump(mode="json"),
                    "summary": report.summary.model_dump(mode="json"),
                },
            }
        ],
    }
    return json.dumps(sarif, indent=2) + "\n"


def _rules(report: Report) -> list[dict[str, Any]]:
    """The rules the report's findings name, by id, described by sweeper's rule registry.

    Only the JSON decides which rules appear and in what order, so the same report always
    renders the same SARIF; a rule this version does not know keeps its id and severity.
    """
    known = {rule.id: rule for rule in select(None)}
    worst: dict[str, Severity] = {}
    for item in report.findings:
        worst.setdefault(item.rule, item.severity)
    rules = []
    for rule_id in sorted(worst):
        rule = known.get(rule_id)
        severity = (rule.severity if rule else worst[rule_id]).label
        rules.append(
            {
                "id": rule_id,
                "name": rule_id,
                "shortDescription": {"text": rule.summary if rule else f"sweeper rule {rule_id}"},
                "defaultConfiguration": {"level": LEVELS[severity]},
                "properties": {
                    "severity": severity,
                    "security-severity": SECURITY_SEVERITY[severity],
                    "tags": ["security", "certificate"],
                },
            }
        )
    return rules


def _result(item: Finding, rule_index: int) -> dict[str, Any]:
    where = place(item.store, item.entry)
    qualified = f"{item.node}:{where}" if item.node and where else (item.node or where or "fleet")
    severity = item.severity.label
    result: dict[str, Any] = {
        "ruleId": item.rule,
        "ruleIndex": rule_index,
        "level": LEVELS[severity],
        "message": _message(item.message),
        "locations": [_location(where or item.node or "fleet", qualified)],
        "properties": {"severity": severity, "evidence": item.evidence},
    }
    if item.sha256:
        result["partialFingerprints"] = {"certificateSha256/v1": item.sha256}
    return result


def _invocation(report: Report) -> dict[str, Any]:
    run = report.run
    missed = [node for node in report.nodes if node.status != "ok"]
    return {
        "executionSuccessful": not missed and not run.interrupted,
        "startTimeUtc": iso(run.started),
        "endTimeUtc": iso(run.finished),
        "arguments": run.argv,
        "toolExecutionNotifications": [
            {
                "level": "error",
                "message": _message(f"{node.name} ({node.host}) not swept: {node.error or ''}"),
                "descriptor": {"id": node.status},
                "locations": [_location(node.name, node.name)],
            }
            for node in missed
        ],
    }


def _message(text: str) -> dict[str, str]:
    """A plain-text message that no viewer can turn into a link: `\\`, `[` and `]` backslashed."""
    escaped = escape_controls(text).replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    return {"text": escaped}


def _location(name: str, qualified: str) -> dict[str, Any]:
    """A logical location: where on the fleet (`node/store/entry`) a certificate sits."""
    where = {"name": escape_controls(name), "fullyQualifiedName": escape_controls(qualified)}
    return {"logicalLocations": [{**where, "kind": "resource"}]}
