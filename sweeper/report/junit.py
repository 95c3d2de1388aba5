"""JUnit XML for CI dashboards: a test case per node that fails with every finding at or above
`--fail-on` (one `<failure>` each; the counts count failed cases, as test runners do).

A node that could not be swept is an `<error>` (it was not tested), findings below the
threshold go to the case's `<system-out>`, and findings that name no node (fleet-wide, such
as key reuse) get a case of their own. Validates against the Jenkins/Ant JUnit XSD.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

from sweeper.report.options import RenderOptions
from sweeper.report.schema import Finding, Node, Report, iso

FLEET_CASE = "(fleet)"
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def render(report: Report, options: RenderOptions) -> str:
    run = report.run
    grouped = _findings_by_case(report)
    suite = ET.Element("testsuite", name=f"sweeper {run.kind} {run.id}", timestamp=iso(run.started))
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("run.id", run.id),
        ("run.kind", run.kind),
        ("tool_version", run.tool_version),
        ("inventory.path", run.inventory.path),
        ("inventory.sha256", run.inventory.sha256),
        ("fail_on", options.fail_on.label),
    ):
        ET.SubElement(properties, "property", name=name, value=_text(value))
    cases: list[tuple[str, Node | None]] = [(node.name, node) for node in report.nodes]
    if grouped.get(FLEET_CASE):
        cases.append((FLEET_CASE, None))
    failures = errors = 0
    total_time = 0.0
    for name, node in cases:
        case = ET.SubElement(suite, "testcase", classname=f"sweeper.{run.kind}", name=_text(name))
        if node is not None:
            case.set("time", _seconds(node.duration))
            total_time += node.duration
            if node.status != "ok":
                errors += 1
                ET.SubElement(case, "error", type=node.status, message=_text(node.error or ""))
        below = []
        failing = [item for item in grouped.get(name, []) if item.severity >= options.fail_on]
        failures += bool(failing)
        for item in grouped.get(name, []):
            if item in failing:
                failure = ET.SubElement(case, "failure", type=item.rule, message=_text(item.message))
                failure.text = _details(item)
            else:
                below.append(f"[{item.severity.label}] {item.rule}: {item.message}")
        if below:
            ET.SubElement(case, "system-out").text = _text("\n".join(below))
    counts = {
        "tests": str(len(cases)),
        "failures": str(failures),
        "errors": str(errors),
        "time": _seconds(total_time),
    }
    suite.attrib.update({**counts, "skipped": "0"})
    suites = ET.Element("testsuites", name="sweeper", **counts)
    suites.append(suite)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _findings_by_case(report: Report) -> dict[str, list[Finding]]:
    """Findings grouped under their node's case; those naming no known node under the fleet case."""
    names = {node.name for node in report.nodes}
    grouped: dict[str, list[Finding]] = {}
    for item in report.findings:
        case = item.node if item.node is not None and item.node in names else FLEET_CASE
        grouped.setdefault(case, []).append(item)
    return grouped


def _details(item: Finding) -> str:
    located = {"node": item.node, "store": item.store, "entry": item.entry, "sha256": item.sha256}
    lines = [f"severity: {item.severity.label}"]
    lines += [f"{key}: {value}" for key, value in located.items() if value]
    lines.append("evidence: " + json.dumps(item.evidence, sort_keys=True))
    return _text("\n".join(lines))


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _text(value: object) -> str:
    """Characters XML 1.0 cannot carry at all (even escaped) become U+FFFD."""
    return _NOT_XML.sub("\ufffd", str(value))
