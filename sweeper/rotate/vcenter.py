"""vCenter prechecks before any change on any node (DESIGN "A vCenter keeps working only if these
hold", 1, 5 and 9): VMware Directory is Normal, the SSO login binds, every solution user the plan
re-issues has its ServicePrincipal, VCDB answers where the plan updates its extension thumbprints,
and no vCenter of an SSO domain whose STS certificate changes is left out. A failure is one line
naming the node and the reason (exit 2)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Mapping

from sweeper.errors import BadInput, NodeError
from sweeper.model import Node, Profile
from sweeper.platforms import vmdir as facts
from sweeper.platforms.vcsa import DIR_CLI
from sweeper.rotate import vmdir
from sweeper.rotate.node import run
from sweeper.rotate.plan import Plan
from sweeper.rotate.steps import ReissueVecs, ReplaceSts, UpdateVpxExt
from sweeper.rotate.steps import vcdb as vcdb_step
from sweeper.shell import Output, Tag, mark
from sweeper.shell import quote as q
from sweeper.ssh import Connector, Session

STATE = re.compile(r"VmDir State is - (\S+)")
LOGON_FAILURE = "1326"
LISTED = re.compile(r"^\d+\. (\S+)$")


def precheck_script(node: Node, password: str) -> str:
    """Read-only: vmdird's state (vdcadmintool option 6), the machine ID, `dir-cli service list`."""
    return (
        mark(Tag.DIRCLI, "v0")
        + f"printf '6\\n0\\n' | sw_run {q(node.path(facts.VDCADMINTOOL))}\n"
        + vmdir.machine_id_script(node)
        + mark(Tag.DIRCLI, "l0")
        + f"printf '%s\\n' {q(password)} | sw_run {q(node.path(DIR_CLI))} service list"
        + f" --login {q(vmdir.login_of(node))}\n"
    )


def problem(output: Output, solution_users: list[str]) -> str | None:
    """Why this vCenter must not be changed, or None."""
    state = STATE.search(output.text("v0"))
    if state is None or state.group(1) != facts.NORMAL_STATE:
        said = state.group(1) if state else output.error("v0") or "no state"
        return f"VMware Directory is not Normal ({said})"
    listing = output.error("l0")
    if listing:
        if LOGON_FAILURE in listing:
            return "the SSO credentials do not bind to VMware Directory (dir-cli: ERROR_LOGON_FAILURE)"
        return f"dir-cli service list failed: {listing}"
    machine_id = output.text("m0").strip()
    if output.error("m0") or not machine_id:
        return f"vmafd-cli get-machine-id failed: {output.error('m0') or 'no machine ID'}"
    listed = {m.group(1) for line in output.text("l0").splitlines() if (m := LISTED.match(line.strip()))}
    missing = [su for su in solution_users if f"{su}-{machine_id}" not in listed]
    if missing:
        return f"ServicePrincipal {missing[0]}-{machine_id} is missing from dir-cli service list"
    return None


def prechecked(plan: Plan) -> list[str]:
    """The nodes the vCenter precheck visits: those the plan logs in to SSO on or updates VCDB of."""
    return list(dict.fromkeys(s.node for s in plan.steps if s.uses_sso or isinstance(s, UpdateVpxExt)))


async def precheck_vcenters(
    nodes: Mapping[str, Node], plan: Plan, connector: Connector, password: Callable[[Node], str]
) -> None:
    """Every vCenter the plan logs in to or whose VCDB it updates, checked concurrently before
    anything changes.

    :raises BadInput: naming the first node (in plan order) that fails, and why
    """
    sso: dict[str, list[str]] = {}
    for step in plan.steps:
        if step.uses_sso:
            users = sso.setdefault(step.node, [])
            if isinstance(step, ReissueVecs) and step.service_principal:
                users.append(step.store)
    vcdb = {step.node for step in plan.steps if isinstance(step, UpdateVpxExt)}

    async def one(name: str) -> str | None:
        node = nodes[name]

        async def work(session: Session) -> str | None:
            script = precheck_script(node, password(node)) if name in sso else ""
            script += vcdb_step.reachable_script(node) if name in vcdb else ""
            output = await run(session, script, "vCenter precheck")
            found = problem(output, sso[name]) if name in sso else None
            return found or (vcdb_step.unreachable(output) if name in vcdb else None)

        try:
            found, _ = await connector.with_session(node, work)
        except NodeError as exc:
            return f"cannot run the vCenter precheck: {exc}"
        return found

    names = prechecked(plan)
    for name, found in zip(names, await asyncio.gather(*(one(name) for name in names)), strict=True):
        if found:
            raise BadInput(f"node '{name}': {found}; nothing was changed")


def check_sts_domains(inventory: Iterable[Node], chosen: Iterable[Node], plan: Plan) -> None:
    """A new STS signing certificate takes effect only once every vCenter of its SSO domain restarts:
    a `--limit` that leaves one of them out would leave it on the old chain.

    :raises BadInput: naming the domain and the vCenters left out
    """
    names = {node.name for node in chosen}
    for domain in sorted({step.domain for step in plan.steps if isinstance(step, ReplaceSts)}):
        left_out = [
            node.name
            for node in inventory
            if node.profile is Profile.VCSA and vmdir.domain_of(node) == domain and node.name not in names
        ]
        if left_out:
            raise BadInput(
                f"SSO domain {domain}: the rotation replaces its STS signing certificate, after which every "
                f"vCenter of the domain must restart; --limit leaves out {', '.join(left_out)}"
            )
