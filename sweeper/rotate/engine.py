"""Carry out a plan, phase by phase, node by node, with the journal as the only source of progress.

Each phase finishes on every node before the next starts, so no node stops trusting a
peer that still presents an old certificate: preflight (backups) and trust everywhere,
then re-issue in canary-then-waves under a failure budget, then purge — only once every
node is re-issued (or with --force, said loudly). A node is one SSH connection for every phase;
transient faults are retried by the connector, and finished steps are never redone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sweeper.errors import NodeError, SweeperError
from sweeper.model import Node
from sweeper.rotate import node as on_node
from sweeper.rotate.preflight import back_up
from sweeper.rotate.steps import Phase, Step, StepContext
from sweeper.ssh import Connector, Session
from sweeper.ssh.session import CHANNELS

PREFLIGHT = (Phase.PREFLIGHT, "backup")
Progress = Callable[[str, str, str], None]
"""(phase, node, status) as each node finishes a phase, or "waiting ..." while it cannot start one
yet: for the live display."""


@dataclass(slots=True)
class Outcome:
    """How far the rotation got; `failed` maps node -> the error that stopped it."""

    failed: dict[str, str] = field(default_factory=dict)
    stopped_at: str | None = None
    purged: bool = False
    forced: bool = False

    @property
    def complete(self) -> bool:
        return self.stopped_at is None and not self.failed


class Engine:
    def __init__(
        self,
        context: StepContext,
        nodes: dict[str, Node],
        connector: Connector,
        concurrency: int = 50,
        progress: Progress | None = None,
    ) -> None:
        self.ctx = context
        self.nodes = nodes
        self.connector = connector
        self.gate = asyncio.Semaphore(max(1, concurrency))
        self.progress = progress or (lambda phase, node, status: None)
        self._mid_step: set[str] = set()  # nodes an earlier run left with a step running or failed
        self._of_node: dict[str, list[Step]] = {}  # looked up per node and phase: indexed once
        self._steps: dict[tuple[str, Phase], list[Step]] = {}
        for step in context.plan.steps:
            self._of_node.setdefault(step.node, []).append(step)
            self._steps.setdefault((step.node, step.phase), []).append(step)

    def record_plan(self) -> None:
        """Every step of the plan, pending, in the journal (idempotent: resume keeps progress)."""
        rows = [(name, *PREFLIGHT) for name in self._nodes_with_work()]
        rows += [(s.node, s.phase, s.name) for s in self.ctx.plan.steps]
        self.ctx.journal.plan_steps(rows)

    async def run(self, force: bool = False) -> Outcome:
        outcome = Outcome(forced=force)
        self._mid_step = {s.node for s in self.ctx.journal.steps() if s.state in ("running", "failed")}
        everyone = self._nodes_with_work()
        if not await self._phase(Phase.PREFLIGHT, everyone, outcome):
            return self._stop(outcome, Phase.PREFLIGHT)
        if not await self._phase(Phase.TRUST, everyone, outcome):
            return self._stop(outcome, Phase.TRUST)
        budget = self.ctx.plan.max_failures
        for wave in self.ctx.plan.waves:
            await self._phase(Phase.REISSUE, list(wave), outcome)
            if len(outcome.failed) > budget:
                return self._stop(outcome, Phase.REISSUE)
        if outcome.failed and not force:
            return self._stop(outcome, Phase.REISSUE)
        outcome.purged = await self._phase(Phase.PURGE, everyone, outcome)
        if not outcome.purged:
            outcome.stopped_at = Phase.PURGE
        return outcome

    def _stop(self, outcome: Outcome, phase: str) -> Outcome:
        outcome.stopped_at = phase
        return outcome

    def _nodes_with_work(self) -> list[str]:
        named = {s.node for s in self.ctx.plan.steps}
        return [name for name in self.nodes if name in named]

    async def _phase(self, phase: Phase, names: list[str], outcome: Outcome) -> bool:
        """Run one phase on `names` concurrently; True when every one of them finished it."""
        names = [n for n in names if n not in outcome.failed]
        results = await asyncio.gather(*(self._node_phase(phase, n) for n in names))
        for name, error in zip(names, results, strict=True):
            if error is not None:
                outcome.failed[name] = error
        return all(error is None for error in results)

    async def _node_phase(self, phase: Phase, name: str) -> str | None:
        node = self.nodes[name]
        steps = (
            self._of_node.get(name, []) if phase == Phase.PREFLIGHT else self._steps.get((name, phase), [])
        )
        if phase != Phase.PREFLIGHT and not steps:
            return None
        if not self._pending(name, phase, steps):
            self.progress(phase, name, "already done")
            return None

        attempts = 0

        async def work(session: Session) -> None:
            nonlocal attempts
            attempts += 1
            if attempts > 1 or name in self._mid_step:  # what did a step before may still run there
                await on_node.wait_for_earlier_scripts(session, lambda why: self.progress(phase, name, why))
                self._mid_step.discard(name)
            if phase == Phase.PREFLIGHT:
                await self._step(name, *PREFLIGHT, lambda: back_up(self.ctx, session, steps))
                return
            for batch in _batches(steps):
                await self._together(name, phase, batch, session)

        try:
            async with self.gate:
                await self.connector.with_session(node, work)
        except NodeError as exc:
            self.progress(phase, name, f"failed: {exc}")
            return str(exc)
        finally:  # the node's last outcomes, which no later intent of its own carries in
            await self.ctx.journal.durable()
        self.progress(phase, name, "done")
        return None

    async def _together(self, name: str, phase: Phase, batch: list[Step], session: Session) -> None:
        """A batch of steps, at most as many at once as a connection runs commands (one channel
        each, `session.CHANNELS`: a vCenter's vmafd and VMware Directory serve each in turn); each
        is journaled on its own. All of them end before the first failure is raised, so none is
        left changing the node unwatched."""
        channels = asyncio.Semaphore(CHANNELS)

        async def one(step: Step) -> None:
            async with channels:
                await self._step(name, phase, step.name, lambda: step.apply(self.ctx, session))

        results = await asyncio.gather(*(one(step) for step in batch), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        stops = [e for e in errors if not isinstance(e, NodeError)]  # the run's, before the node's
        if stops or errors:
            raise (stops or errors)[0]

    def _pending(self, name: str, phase: Phase, steps: list[Step]) -> bool:
        done = {s.step for s in self.ctx.journal.steps(phase, name) if s.state == "done"}
        if phase == Phase.PREFLIGHT:
            return PREFLIGHT[1] not in done
        return any(s.name not in done for s in steps)

    async def _step(self, node: str, phase: str, step: str, do: Callable[[], Awaitable[dict]]) -> None:
        """Intent in the journal, the change, the outcome in the journal; a done step is skipped."""
        journal = self.ctx.journal
        if not await journal.begin(node, phase, step):
            return
        try:
            detail = await do()
        except NodeError as exc:
            journal.fail(node, phase, step, str(exc))
            raise
        except SweeperError:
            raise  # bad input or a journal in the wrong state: the whole run stops, in one line
        except Exception as exc:  # anything else a node's data provoked is that node's failure
            journal.fail(node, phase, step, f"unexpected: {type(exc).__name__}: {exc}")
            raise NodeError(f"{step}: unexpected: {type(exc).__name__}: {exc}") from exc
        journal.finish(node, phase, step, detail)


def _batches(steps: list[Step]) -> list[list[Step]]:
    """The node's steps in plan order, neighbouring ALONGSIDE steps grouped to run together."""
    batches: list[list[Step]] = []
    for step in steps:
        if step.ALONGSIDE and batches and batches[-1][0].ALONGSIDE:
            batches[-1].append(step)
        else:
            batches.append([step])
    return batches
