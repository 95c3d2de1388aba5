"""The rotation plan from a preflight sweep: which typed steps, in which order, and what it refuses."""

from __future__ import annotations

import pytest

from sweeper.errors import BadInput
from sweeper.model import KeyInfo, Node, NodeResult, Profile, Role, StoreKind, StoreResult
from sweeper.pki import rotation
from sweeper.platforms import default_persist, default_restart, esxi
from sweeper.rotate.plan import Plan, WaveOptions, make_plan
from sweeper.rotate.steps import (
    AddAnchor,
    Persist,
    Phase,
    ReissueFile,
    RemoveAnchors,
    Restart,
    ScriptContext,
    VerifyTls,
)
from sweeper.stores.records import certificate_record

NEW_ROOT = "ff" * 32


def esxi_node(restart: str | None = None) -> Node:
    root = "/srv/esx1"
    return Node(
        name="esx1",
        host="esx1.corp.example",
        profile=Profile.ESXI,
        root=root,
        restart=restart or default_restart(Profile.ESXI, root),
        persist=default_persist(Profile.ESXI, root),
        tls_port=443,
        stores=esxi.DEFAULT_STORES,
    )


def swept(node: Node, openssl_pki, *, key: bool = True, chain_in_leaf_file: bool = False) -> NodeResult:
    """What the preflight sweep would report for an ESXi host holding the test PKI's RSA leaf."""
    leaf_key = KeyInfo(path=esxi.RUI_KEY, mode="0600", spki_sha256="00", matches=True) if key else None
    entry = f"{esxi.RUI_CRT}#1" if chain_in_leaf_file else esxi.RUI_CRT
    leaf = certificate_record(
        node.name, esxi.RUI_CRT, entry, Role.LEAF, openssl_pki.leaf_rsa.der.read_bytes(), key=leaf_key
    )
    anchors = [
        certificate_record(node.name, esxi.CASTORE, f"{esxi.CASTORE}#{i}", Role.TRUST, c.der.read_bytes())
        for i, c in enumerate((openssl_pki.root, openssl_pki.intermediate), start=1)
    ]
    stores = (
        StoreResult(esxi.RUI_CRT, StoreKind.PEM, Role.LEAF, certificates=1),
        StoreResult(esxi.CASTORE, StoreKind.BUNDLE, Role.TRUST, certificates=2),
    )
    return NodeResult(node.name, node.host, "ok", certificates=(leaf, *anchors), stores=stores)


def plan_for(node: Node, result: NodeResult) -> Plan:
    return make_plan({node.name: node}, [result], {}, NEW_ROOT, WaveOptions())


def test_esxi_persists_every_phase_that_changed_files_even_with_its_own_restart(openssl_pki) -> None:
    node = esxi_node(restart="/etc/init.d/hostd restart")
    plan = plan_for(node, swept(node, openssl_pki))
    kinds = {
        phase: [type(s) for s in plan.for_phase(phase)] for phase in (Phase.TRUST, Phase.REISSUE, Phase.PURGE)
    }
    assert kinds[Phase.TRUST] == [AddAnchor, Persist]
    assert kinds[Phase.REISSUE] == [ReissueFile, Persist, Restart, VerifyTls], "persist before the restart"
    assert kinds[Phase.PURGE] == [RemoveAnchors, Persist]
    persist = plan.for_phase(Phase.REISSUE)[1]
    assert persist.command == "/srv/esx1/bin/auto-backup.sh" and persist.phase == Phase.REISSUE


def test_the_old_chain_is_purged_and_the_new_root_is_never(openssl_pki) -> None:
    node = esxi_node()
    plan = plan_for(node, swept(node, openssl_pki))
    (purge,) = [s for s in plan.for_phase(Phase.PURGE) if isinstance(s, RemoveAnchors)]
    assert set(purge.sha256) == set(plan.remove) and NEW_ROOT not in plan.remove
    assert {r.reasons for r in plan.remove.values()} == {("old-root",)}
    assert {r.subject.split(",")[0] for r in plan.remove.values()} == {
        "CN=Sweeper Test Root CA",
        "CN=Sweeper Test Intermediate CA",
    }


def test_a_leaf_file_that_carries_its_chain_is_reissued(openssl_pki) -> None:
    node = esxi_node()
    plan = plan_for(node, swept(node, openssl_pki, chain_in_leaf_file=True))
    (reissue,) = [s for s in plan.steps if isinstance(s, ReissueFile)]
    assert reissue.cert == esxi.RUI_CRT and reissue.key == esxi.RUI_KEY


def test_a_node_certificate_without_a_key_in_the_inventory_is_refused_before_any_change(openssl_pki) -> None:
    node = esxi_node()
    with pytest.raises(BadInput, match="esx1.*names no key"):
        plan_for(node, swept(node, openssl_pki, key=False))


def test_the_plan_round_trips_through_the_journal_and_a_tampered_step_is_refused(openssl_pki) -> None:
    node = esxi_node()
    plan = plan_for(node, swept(node, openssl_pki))
    assert Plan.from_json(plan.to_json(), "journal") == plan
    tampered = plan.to_json()
    tampered["steps"][0]["kind"] = "run-anything"
    with pytest.raises(BadInput, match="journal's plan cannot be read"):
        Plan.from_json(tampered, "journal")


def test_scripts_shown_for_a_dry_run_hold_placeholders_never_secrets(openssl_pki) -> None:
    node = esxi_node()
    plan = plan_for(node, swept(node, openssl_pki))
    context = ScriptContext.preview(rotation.new_root("ec-p384"))
    shown = {step.name: step.scripts(context, node) for step in plan.steps}
    (install,) = [body for what, body in shown[f"reissue-file:{esxi.RUI_CRT}"] if what.startswith("install")]
    assert "<base64 of the new certificate" in install and "/srv/esx1/etc/vmware/ssl/rui.key" in install
    assert shown["persist:files"] and "auto-backup.sh" in shown["persist:files"][0][1]


def test_an_inventory_restart_on_esxi_keeps_auto_backup_before_it(openssl_pki, tmp_path) -> None:
    from sweeper.inventory import load_inventory
    from tests.support.inventory import write_inventory

    root = "/srv/esx1"
    restart = "/etc/init.d/hostd restart"
    esx = {"name": "esx1", "host": "esx1.corp.example", "profile": "esxi", "root": root, "restart": restart}
    (node,) = load_inventory(write_inventory(tmp_path / "inv.toml", [esx])).nodes
    assert node.restart == restart and node.persist == f"{root}/bin/auto-backup.sh"
    reissue = plan_for(node, swept(node, openssl_pki)).for_phase(Phase.REISSUE)
    commands = [s.command for s in reissue if isinstance(s, Persist | Restart)]
    assert commands == [f"{root}/bin/auto-backup.sh", restart], "persist runs, and before the restart"
