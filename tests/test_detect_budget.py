"""A rule that fails or runs out of time costs what it did not judge, never the sweep: a `rule-error`
finding names it, the other rules' findings stand, and the run is incomplete (exit 3), not worse."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from sweeper.cli.publishing import exit_code
from sweeper.detect import REGISTRY, Context, detect
from sweeper.errors import EXIT_FINDINGS, EXIT_INCOMPLETE
from sweeper.incident import load_incident
from sweeper.model import RULE_ERROR, InventoryRef, Report, RunInfo, Severity
from tests.detect_material import node as swept_node
from tests.detect_material import record
from tests.support.openssl_pki import OpenSSLPki


def fleet(pki: OpenSSLPki):  # type: ignore[no-untyped-def]
    a = swept_node(
        "a", record("a", pki.root, "trust"), record("a", pki.intermediate), record("a", pki.leaf_ec)
    )
    b = swept_node("b", record("b", pki.leaf_rsa), record("b", pki.root, "trust"))
    return [a, b]


def report_of(findings) -> Report:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    run = RunInfo("r", "scan", now, now, "t", InventoryRef("i.toml", "0" * 64), ())
    return Report(run=run, nodes=(), findings=tuple(findings))


def test_a_fleet_rule_out_of_time_is_a_rule_error_naming_it_and_the_run_is_incomplete(
    openssl_pki: OpenSSLPki,
) -> None:
    incident = load_incident(compromised_cas=[openssl_pki.root.cert])
    judged = detect(fleet(openssl_pki), Context(incident=incident), ["compromised-issuer"])
    assert {f.rule for f in judged} == {"compromised-issuer"}, "with time, the rule judges"

    found = detect(fleet(openssl_pki), Context(incident=incident, rule_budget=0), ["compromised-issuer"])
    (error,) = found
    assert error.rule == RULE_ERROR and error.severity == Severity.HIGH
    assert error.evidence["failed_rule"] == "compromised-issuer"
    assert error.evidence["nodes"] == ["a", "b"] and "time budget" in error.evidence["error"]
    assert error.message == "rule compromised-issuer ran past its 0s time budget: not judged on 2 node(s)"
    assert exit_code(report_of([error]), Severity.HIGH) == EXIT_INCOMPLETE
    assert exit_code(report_of([*judged, *found]), Severity.HIGH) == EXIT_FINDINGS, "worse found: 1"


def test_a_rule_that_raises_on_one_node_costs_that_node_only(
    openssl_pki: OpenSSLPki, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = REGISTRY["key-exposed"].check

    def fragile(certificate, context):  # type: ignore[no-untyped-def]
        if certificate.node == "a":
            raise RecursionError("maximum recursion depth exceeded")
        return real(certificate, context)

    monkeypatch.setitem(REGISTRY, "key-exposed", replace(REGISTRY["key-exposed"], check=fragile))
    found = detect(fleet(openssl_pki), Context(), ["key-exposed", "untrusted-chain"])
    (error,) = [f for f in found if f.rule == RULE_ERROR]
    assert error.node == "a" and error.evidence["failed_rule"] == "key-exposed"
    assert error.evidence["error"] == "failed (RecursionError: maximum recursion depth exceeded)"
    assert any(f.rule == "untrusted-chain" for f in found), "the other rules' findings stand"
    assert exit_code(report_of([error]), Severity.HIGH) == EXIT_INCOMPLETE


def test_a_merge_keeps_a_shards_rule_error_unless_it_re_runs_that_rule() -> None:
    from sweeper.merge import _judged_again
    from sweeper.report.schema import Finding as ReportFinding

    def error_of(rule_id: str) -> ReportFinding:
        evidence = {"failed_rule": rule_id, "error": "x", "nodes": ["a"], "nodes_total": 1}
        return ReportFinding(
            rule=RULE_ERROR, severity="high", node="a", store=None, entry=None, sha256=None, message="m",
            evidence=evidence,
        )  # fmt: skip

    assert not _judged_again(error_of("expired")), (
        "a cert rule's error in a shard stays: the merge does not re-run it"
    )
    assert _judged_again(error_of("compromised-issuer")), (
        "a fleet rule's error is replaced by the merge's own verdict"
    )
