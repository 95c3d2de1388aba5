"""The canonical `sweeper.report/1` JSON: built from the Report model, written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sweeper.atomic import atomic_write
from sweeper.model import CertRecord, Finding, NodeResult, Report, Severity
from sweeper.report.schema import SCHEMA, iso


def to_dict(report: Report) -> dict[str, Any]:
    """The report as its `sweeper.report/1` JSON document (plain types only)."""
    run = report.run
    counts = {s.label: 0 for s in sorted(Severity, reverse=True)}
    for item in report.findings:
        counts[item.severity.label] += 1
    return {
        "schema": SCHEMA,
        "run": {
            "id": run.id,
            "kind": run.kind,
            "started": iso(run.started),
            "finished": iso(run.finished),
            "tool_version": run.tool_version,
            "inventory": {"path": run.inventory_path, "sha256": run.inventory_sha256},
            "argv": list(run.argv),
            "interrupted": run.interrupted,
        },
        "summary": {
            "nodes": len(report.nodes),
            "nodes_swept": sum(1 for n in report.nodes if n.swept),
            "certificates": sum(len(n.certificates) for n in report.nodes),
            "findings": counts,
        },
        "nodes": [_node(n) for n in report.nodes],
        "findings": [_finding(f) for f in report.findings],
        **report.extra,
    }


def _node(node: NodeResult) -> dict[str, Any]:
    return {
        "name": node.name,
        "host": node.host,
        "status": node.status,
        "error": node.error,
        "attempts": node.attempts,
        "identity": node.identity,
        "duration": round(node.duration, 3),
        "stores": [
            {
                "store": s.label,
                "kind": s.kind,
                "role": s.role,
                "status": s.status,
                "error": s.error,
                "certificates": s.certificates,
            }
            for s in node.stores
        ],
        "certificates": [_certificate(c) for c in node.certificates],
    }


def _certificate(cert: CertRecord) -> dict[str, Any]:
    key = None
    if cert.key is not None:
        key = {
            "path": cert.key.path,
            "mode": cert.key.mode,
            "owner": cert.key.owner,
            "group": cert.key.group,
            "spki_sha256": cert.key.spki_sha256,
            "matches": cert.key.matches,
            "error": cert.key.error,
        }
    return {
        "store": cert.store,
        "entry": cert.entry,
        "role": cert.role,
        "subject": cert.facts.subject,
        "issuer": cert.facts.issuer,
        "serial": cert.facts.serial,
        "not_before": iso(cert.facts.not_before),
        "not_after": iso(cert.facts.not_after),
        "sha256": cert.facts.sha256,
        "spki_sha256": cert.facts.spki_sha256,
        "key_type": cert.facts.key_type,
        "key_bits": cert.facts.key_bits,
        "signature_algorithm": cert.facts.signature_algorithm,
        "is_ca": cert.facts.is_ca,
        "self_signed": cert.facts.self_signed,
        "sans": list(cert.facts.sans),
        "entry_type": cert.entry_type,
        "key": key,
    }


def _finding(item: Finding) -> dict[str, Any]:
    return {
        "rule": item.rule,
        "severity": item.severity.label,
        "node": item.node,
        "store": item.store,
        "entry": item.entry,
        "sha256": item.sha256,
        "message": item.message,
        "evidence": item.evidence,
    }


def stem(report: Report) -> str:
    """`<UTC timestamp>-<run id>`: sorts by time, unique per run."""
    return f"{report.run.started:%Y%m%dT%H%M%SZ}-{report.run.id}"


def write_json(report: Report, out_dir: Path) -> Path:
    """Write `<stem>.json` atomically (temp file, fsync, rename) and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem(report)}.json"
    atomic_write(path, encode(to_dict(report)))
    return path


def encode(doc: dict[str, Any]) -> bytes:
    """The report's exact bytes on disk: what a signature covers, and what every renderer reads."""
    return json.dumps(doc, indent=2, sort_keys=False).encode() + b"\n"
