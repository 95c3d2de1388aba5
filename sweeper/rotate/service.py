"""Rotation from start to end: preflight sweep and plan (read-only), then the journaled run,
then a verify sweep; and the same for `resume` and `rollback`, from the journal alone."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sweeper import health, names
from sweeper.detect import Context
from sweeper.errors import (
    EXIT_INCOMPLETE,
    EXIT_ROTATION_STOPPED,
    BadInput,
    CorruptInput,
    NodeError,
    SweeperError,
    os_reason,
)
from sweeper.incident import reload_incident
from sweeper.inventory import Inventory, load_inventory
from sweeper.model import Finding, Node, Profile, Report, Severity
from sweeper.pki import rotation
from sweeper.report import schema
from sweeper.rotate.engine import Engine, Outcome, Progress
from sweeper.rotate.journal import Journal
from sweeper.rotate.plan import Plan, WaveOptions, flagged_from_report, make_plan
from sweeper.rotate.rollback import refuse_unplanned, rollback_node
from sweeper.rotate.steps import StepContext
from sweeper.rotate.vcenter import check_sts_domains, precheck_vcenters, prechecked
from sweeper.rotate.verify import VerifyBasis, verify_basis
from sweeper.rotate.vmdir import sso_password_of
from sweeper.scan import ScanOptions, Swept, judge, sweep_again
from sweeper.ssh import MAX_NODE_BYTES, AskSecret, Connector, RetryPolicy


class PreflightIncomplete(SweeperError):
    """Some nodes could not be swept before the rotation: it does not start (nothing changed)."""

    exit_code = EXIT_INCOMPLETE


class RotationStopped(SweeperError):
    """The rotation stopped after it began changing nodes; the journal says where."""

    exit_code = EXIT_ROTATION_STOPPED

    def __init__(self, reason: str, journal: Path) -> None:
        super().__init__(
            f"{reason}; the rotation stopped after it began changing nodes (journal {journal}): "
            f"go on with `sweeper resume {journal}`, or undo it with `sweeper rollback {journal}`"
        )


@dataclass(frozen=True, slots=True)
class RotateRequest:
    """What to rotate and how; `source` is the `--from` scan report, already read and checked."""

    inventory: Path
    source: schema.Report
    journal_dir: Path
    root_key_type: str = "rsa3072"
    ca_cert: Path | None = None
    ca_key: Path | None = None
    ca_passphrase: str | None = None
    waves: WaveOptions = WaveOptions()
    limit: tuple[str, ...] = ()
    force: bool = False
    allow_partial: bool = False
    concurrency: int = 50
    retry: RetryPolicy = RetryPolicy()
    leaf_days: int = 730
    max_node_bytes: int = MAX_NODE_BYTES
    """The most one node may print for one command before it is cut off (`--max-node-bytes`)."""
    env: Mapping[str, str] | None = None
    """Where the inventory's secret variables are read (None: this process's environment)."""
    new_data_encipherment_key: bool = False
    """vCenter data-encipherment gets a new key (`--new-data-encipherment-key`), not just a certificate."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """Everything decided before a single change: the fleet as it is, the CA, the plan."""

    inventory: Inventory
    nodes: tuple[Node, ...]
    before: Report
    ca: rotation.CertificateAuthority
    plan: Plan
    verify: VerifyBasis


@dataclass(frozen=True, slots=True)
class RotationResult:
    outcome: Outcome
    report: Report
    journal_dir: Path


def prepare(request: RotateRequest, ask: AskSecret | None, on_node: Callable | None = None) -> Prepared:
    """Read-only: sweep the fleet, make or load the CA, and plan. Nothing on a node changes."""
    inventory = load_inventory(request.inventory)
    nodes = inventory.limited(list(request.limit))
    incident = reload_incident(request.source.run.inputs)  # checked before any node is swept
    ca = _authority(request, ask)
    before, plan = asyncio.run(_preflight(request, inventory, nodes, ca, ask, on_node))
    verify = verify_basis(request.source, incident, plan.remove, ca.sha256)
    return Prepared(inventory, nodes, before, ca, plan, verify)


async def _preflight(
    request: RotateRequest,
    inventory: Inventory,
    nodes: tuple[Node, ...],
    ca: rotation.CertificateAuthority,
    ask: AskSecret | None,
    on_node: Callable | None,
) -> tuple[Report, Plan]:
    """Sweep and plan, then precheck the vCenters the plan changes over the connections the sweep
    logged in with (only theirs are kept; all are closed before the operator is asked to go on)."""
    options = ScanOptions(
        concurrency=request.concurrency,
        retry=request.retry,
        ask=ask,
        env=request.env,
        max_node_bytes=request.max_node_bytes,
    )
    vcenters = [n.name for n in nodes if n.profile is Profile.VCSA]
    connector = Connector(nodes, options.retry, ask, options.env, options.max_node_bytes, keep_open=vcenters)
    try:
        before = judge(inventory, await sweep_again(nodes, connector, options.concurrency, on_node), options)
        missing = [n.name for n in before.nodes if not n.swept]
        if missing and not request.allow_partial:
            raise PreflightIncomplete(
                f"preflight: {len(missing)} node(s) could not be swept ({', '.join(missing[:5])}); "
                "fix them or pass --allow-partial"
            )
        plan = make_plan(
            {n.name: n for n in nodes},
            before.nodes,
            flagged_from_report(request.source),
            ca.sha256,
            request.waves,
            vmca_compatible=ca.is_rsa,
            name_policies=names.policies(inventory.nodes),
            new_data_encipherment_key=request.new_data_encipherment_key,
        )
        _check_sso(nodes, plan, request.env, ask)
        check_sts_domains(inventory.nodes, nodes, plan)
        checked = set(prechecked(plan))
        if checked:
            prechecks = {n.name: n for n in nodes if n.name in checked}
            await precheck_vcenters(prechecks, plan, connector, sso_password_of(connector))
        return before, plan
    finally:
        await connector.close()


def _check_sso(
    nodes: tuple[Node, ...], plan: Plan, env: Mapping[str, str] | None, ask: AskSecret | None
) -> None:
    """Before any change: every node whose steps log in to VMware Directory is a vCenter whose
    SSO password can be had (its variable is set, or there is a terminal to ask)."""
    needing = {s.node for s in plan.steps if s.uses_sso}
    environment = os.environ if env is None else env
    for node in nodes:
        if node.name not in needing:
            continue
        if node.profile is not Profile.VCSA:
            raise BadInput(f"node '{node.name}' has VECS stores but is not a vCenter (profile = \"vcsa\")")
        if not node.sso_password_env:
            raise BadInput(
                f"node '{node.name}': set sso_password_env: the rotation publishes to VMware Directory"
            )
        if node.sso_password_env not in environment and ask is None:
            raise BadInput(
                f"node '{node.name}': the SSO password variable {node.sso_password_env} is not set "
                "(and there is no terminal to ask)"
            )


def _authority(request: RotateRequest, ask: AskSecret | None) -> rotation.CertificateAuthority:
    if request.ca_cert or request.ca_key:
        if not (request.ca_cert and request.ca_key):
            raise BadInput("--ca-cert and --ca-key go together")
        try:
            cert, key = request.ca_cert.read_bytes(), request.ca_key.read_bytes()
        except OSError as exc:
            raise CorruptInput(exc.filename, f"cannot read: {os_reason(exc)}") from None
        passphrase = request.ca_passphrase
        if passphrase is None and ask is not None and b"ENCRYPTED" in key:
            passphrase = ask(f"passphrase for the CA key {request.ca_key}: ")
        return rotation.load_authority(cert, key, passphrase, str(request.ca_key))
    try:
        return rotation.new_root(request.root_key_type)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def start(
    prepared: Prepared,
    request: RotateRequest,
    passphrase: str,
    argv: list[str],
    ask: AskSecret | None,
    progress: Progress | None = None,
) -> RotationResult:
    """Create the journal, then carry the plan out."""
    journal = Journal.create(
        request.journal_dir,
        passphrase,
        {
            "inventory": str(prepared.inventory.path.resolve()),
            "inventory_sha256": prepared.inventory.sha256,
            "limit": list(request.limit),
            "plan": prepared.plan.to_json(),
            "ca_cert": prepared.ca.cert_pem.decode(),
            "options": {
                "force": request.force,
                "concurrency": request.concurrency,
                "leaf_days": request.leaf_days,
                "attempts": request.retry.attempts,
                "max_node_bytes": request.max_node_bytes,
            },
            "argv": list(argv),
            "before": [schema.Node.model_validate(n).model_dump(mode="json") for n in prepared.before.nodes],
            "verify": prepared.verify.to_json(),
            "state": "running",
        },
    )
    journal.put_secret("ca_key", prepared.ca.key_pem)
    # The new root is public: operators hand it to clients and to later scans (--expected-roots).
    (request.journal_dir / "new-root.pem").write_bytes(prepared.ca.cert_pem)
    return _carry_out(
        journal,
        prepared.inventory,
        prepared.nodes,
        prepared.plan,
        prepared.ca,
        prepared.verify,
        ask,
        progress,
        request.env,
    )


def resume(
    journal_dir: Path, passphrase: str, ask: AskSecret | None, progress: Progress | None = None
) -> RotationResult:
    """Go on with a rotation from its journal, without redoing a finished step."""
    journal = Journal.open(journal_dir, passphrase)
    try:
        inventory, nodes, plan, ca = _from_journal(journal)
        if inventory.sha256 != journal.meta("inventory_sha256"):
            raise BadInput(
                f"{inventory.path}: the inventory changed since this rotation started; restore it first"
            )
        verify = VerifyBasis.from_json(journal.meta("verify"))
    except BaseException:
        journal.close()
        raise
    return _carry_out(journal, inventory, nodes, plan, ca, verify, ask, progress)


def _from_journal(
    journal: Journal,
) -> tuple[Inventory, tuple[Node, ...], Plan, rotation.CertificateAuthority]:
    """The rotation as the journal recorded it: its inventory and nodes, its plan, its CA."""
    inventory = load_inventory(Path(journal.meta("inventory")))
    nodes = inventory.limited(journal.meta("limit"))
    plan = Plan.from_json(journal.meta("plan"), str(journal.directory))
    return inventory, nodes, plan, _journal_ca(journal)


def _connect(
    journal: Journal,
    nodes: tuple[Node, ...],
    plan: Plan,
    ca: rotation.CertificateAuthority,
    ask: AskSecret | None,
    env: Mapping[str, str] | None = None,
) -> tuple[Connector, StepContext]:
    """A connector for the rotation's nodes, and what the steps need."""
    options = journal.meta("options")
    retry = RetryPolicy(attempts=options["attempts"])
    max_bytes = options.get("max_node_bytes", MAX_NODE_BYTES)
    # one login per node for all the phases, not one per phase
    connector = Connector(nodes, retry, ask, env, max_bytes, keep_open=True)
    context = StepContext(
        ca=ca,
        sso_password=sso_password_of(connector),
        journal=journal,
        plan=plan,
        leaf_days=options["leaf_days"],
    )
    return connector, context


def _journal_ca(journal: Journal) -> rotation.CertificateAuthority:
    key = journal.secret("ca_key")
    if key is None:
        raise BadInput(f"{journal.directory}: the journal holds no CA key")
    return rotation.load_authority(journal.meta("ca_cert").encode(), key, None, str(journal.directory))


def _carry_out(
    journal: Journal,
    inventory: Inventory,
    nodes: tuple[Node, ...],
    plan: Plan,
    ca: rotation.CertificateAuthority,
    verify: VerifyBasis,
    ask: AskSecret | None,
    progress: Progress | None,
    env: Mapping[str, str] | None = None,
) -> RotationResult:
    options = journal.meta("options")
    retry = RetryPolicy(attempts=options["attempts"])

    async def go() -> tuple[Outcome, Swept, list[Finding]]:
        connector, ctx = _connect(journal, nodes, plan, ca, ask, env)
        engine = Engine(ctx, {n.name: n for n in nodes}, connector, options["concurrency"], progress)
        engine.record_plan()
        try:
            outcome = await engine.run(force=options["force"])
            journal.set_meta("state", "complete" if outcome.complete else f"stopped at {outcome.stopped_at}")
            swept = await sweep_again(nodes, connector, options["concurrency"])  # the verify's read
            rotated = _rotated(nodes, plan, outcome)  # check_vcenters keeps the vCenters among them
            return outcome, swept, await health.check_vcenters(rotated, connector, ctx.sso_password)
        finally:
            await connector.close()

    try:
        try:
            outcome, swept, unhealthy = asyncio.run(go())
        except SweeperError as exc:
            raise RotationStopped(exc.message, journal.directory) from None
        verify_options = ScanOptions(
            concurrency=options["concurrency"],
            retry=retry,
            context=Context(incident=verify.incident),
            ask=ask,
            env=env,
            max_node_bytes=options.get("max_node_bytes", MAX_NODE_BYTES),
        )
        after = _fail_unhealthy(outcome, judge(inventory, swept, verify_options), unhealthy)
        report = _rotation_report(journal, plan, ca, outcome, after)
    finally:
        journal.close()
    return RotationResult(outcome, report, journal.directory)


def _rotated(nodes: tuple[Node, ...], plan: Plan, outcome: Outcome) -> list[Node]:
    """The nodes the rotation changed that did not fail: the verify checks the vCenters among them
    as `sweeper check` does."""
    changed = {s.node for s in plan.steps}
    return [n for n in nodes if n.name in changed and n.name not in outcome.failed]


def _fail_unhealthy(outcome: Outcome, after: Report, found: list[Finding]) -> Report:
    """The verify's vCenter health findings join the report; each fails its node."""
    for finding in found:
        if finding.node is not None:
            outcome.failed.setdefault(finding.node, f"vCenter check: {finding.message}")
            outcome.stopped_at = outcome.stopped_at or "verify"
    return replace(after, findings=(*after.findings, *found))


def _rotation_report(
    journal: Journal, plan: Plan, ca: rotation.CertificateAuthority, outcome: Outcome, after: Report
) -> Report:
    """The verify sweep, with the plan, every step, and each node's certificates before and after."""
    already = {(f.rule, f.node, f.store, f.entry) for f in after.findings}
    leftovers = [
        Finding(
            "revoked-present",
            Severity.MEDIUM,
            cert.node,
            cert.store,
            cert.entry,
            cert.facts.sha256,
            f"still present after the rotation ({', '.join(plan.remove[cert.facts.sha256].reasons)}): "
            f"{cert.facts.subject}",
            {"reasons": list(plan.remove[cert.facts.sha256].reasons)},
        )
        for node in after.nodes
        for cert in node.certificates
        if cert.facts.sha256 in plan.remove
        and ("revoked-present", cert.node, cert.store, cert.entry) not in already
    ]
    return replace(
        after,
        run=replace(
            after.run,
            kind="rotate",
            started=datetime.fromisoformat(journal.meta("created")),  # the rotation's, not the verify's
            interrupted=not outcome.complete,
        ),
        findings=tuple(sorted((*after.findings, *leftovers), key=lambda f: -f.severity)),
        rotation=schema.Rotation.of(outcome, journal.directory, new_root=ca),
        plan=schema.Plan.model_validate(plan.to_report()),
        steps=tuple(schema.Step.model_validate(step) for step in journal.steps()),
        before=tuple(schema.Node.model_validate(node) for node in journal.meta("before")),
    )


@dataclass(frozen=True, slots=True)
class RollbackResult:
    """Per node, what was restored (or why not), and the report of a sweep of those nodes after."""

    restored: dict[str, Any]
    report: Report
    journal_dir: Path


def rollback(
    journal_dir: Path,
    passphrase: str,
    only: list[str],
    ask: AskSecret | None,
    progress: Progress | None = None,
) -> RollbackResult:
    """Restore every backup of the journal (or of the named nodes), each node newest change first and
    as many nodes at once as the rotation changed, then sweep those nodes over the same connections
    so the audit trail holds the state the rollback left (a `rollback` report)."""
    journal = Journal.open(journal_dir, passphrase)
    started = datetime.now(UTC)
    try:
        inventory, nodes, plan, rot_ca = _from_journal(journal)
        if only:
            unknown = set(only) - {n.name for n in nodes}
            if unknown:
                raise BadInput(f"--node {', '.join(sorted(unknown))}: not in this rotation")
            nodes = tuple(n for n in nodes if n.name in only)

        options = journal.meta("options")

        async def go() -> tuple[dict[str, Any], Swept]:
            connector, ctx = _connect(journal, nodes, plan, rot_ca, ask)
            refuse_unplanned(ctx, nodes)
            gate = asyncio.Semaphore(max(1, options["concurrency"]))

            async def one(node: Node) -> dict[str, Any]:
                async with gate:
                    try:
                        done, _ = await connector.with_session(node, lambda s: rollback_node(ctx, s))
                    except NodeError as exc:
                        done = {"error": str(exc)}
                if progress:
                    progress("rollback", node.name, "failed" if "error" in done else "done")
                return done

            try:
                restored = await asyncio.gather(*(one(node) for node in nodes))
                journal.set_meta("state", "rolled back" if not only else f"rolled back {', '.join(only)}")
                swept = await sweep_again(nodes, connector, options["concurrency"])
                return dict(zip((n.name for n in nodes), restored, strict=True)), swept
            finally:
                await connector.close()

        results, swept = asyncio.run(go())
        after = judge(inventory, swept, ScanOptions(concurrency=options["concurrency"], ask=ask))
    finally:
        journal.close()
    failed = {name: r["error"] for name, r in results.items() if "error" in r}
    outcome = Outcome(failed=failed, stopped_at="rollback" if failed else None)
    report = replace(
        after,
        run=replace(after.run, kind="rollback", started=started, interrupted=bool(failed)),
        rotation=schema.Rotation.of(outcome, journal_dir, new_root=rot_ca),
    )
    return RollbackResult(results, report, journal_dir)
