"""A vCenter's part of the plan: which step each VECS entry gets and in which order, what the purge
deletes, what is refused before any change; and the pure VCDB thumbprint check."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sweeper.errors import BadInput
from sweeper.model import Node, NodeResult, Profile, Role, StoreKind, StoreResult, vecs_label
from sweeper.pki.rotation import LeafProfile
from sweeper.platforms import default_restart, vcsa
from sweeper.platforms.vcdb import Source, thumbprint, vpx_ext_problems
from sweeper.rotate.plan import Plan, WaveOptions, make_plan
from sweeper.rotate.steps import (
    CopyMachineSsl,
    DeleteVecsEntries,
    Phase,
    RecertifyVecs,
    RegenerateSms,
    ReissueVecs,
    RekeyDataEncipherment,
    RepinLookupService,
    ReplaceSts,
    Restart,
    UpdateVpxExt,
)
from sweeper.rotate.vcenter import check_sts_domains
from sweeper.stores.records import certificate_record

NEW_ROOT = "ff" * 32
ENTRIES = (  # in the order `vecs-cli store list` gives them on an appliance with every extra
    (vcsa.MACHINE_SSL, vcsa.MACHINE_SSL_ALIAS),
    (vcsa.MACHINE_SSL, vcsa.MACHINE_CSR_ALIAS),
    ("vpxd-extension", "vpxd-extension"),
    (vcsa.DATA_ENCIPHERMENT, vcsa.DATA_ENCIPHERMENT),
    (vcsa.SMS, vcsa.SMS_SELF_SIGNED),
    (vcsa.STS_INTERNAL_SSL, vcsa.MACHINE_SSL_ALIAS),
)


def vcenter(names: tuple[str, ...] = ("web1.test", "localhost")) -> Node:
    root = "/srv/vc1"
    return Node(
        name="vc1",
        host="127.0.0.1",
        profile=Profile.VCSA,
        root=root,
        restart=default_restart(Profile.VCSA, root),
        stores=vcsa.DEFAULT_STORES,
        names=names,
    )


def swept(node: Node, openssl_pki) -> NodeResult:
    """The preflight sweep of a vCenter whose every entry holds the test PKI's RSA leaf (CN web1.test)."""
    der = openssl_pki.leaf_rsa.der.read_bytes()
    records = tuple(
        certificate_record(node.name, vecs_label(store), alias, Role.LEAF, der, entry_type="Private Key")
        for store, alias in ENTRIES
    )
    stores = tuple(
        StoreResult(vecs_label(store), StoreKind.VECS, Role.LEAF, certificates=1)
        for store in dict.fromkeys(s for s, _ in ENTRIES)
    )
    return NodeResult(node.name, node.host, "ok", certificates=records, stores=stores)


def plan_for(node: Node, openssl_pki, new_data_key: bool = False) -> Plan:
    result = swept(node, openssl_pki)
    return make_plan(
        {node.name: node}, [result], {}, NEW_ROOT, WaveOptions(), new_data_encipherment_key=new_data_key
    )


def test_each_vcenter_entry_gets_the_step_vmware_tooling_uses_in_a_safe_order(openssl_pki) -> None:
    plan = plan_for(vcenter(), openssl_pki)
    reissue = plan.for_phase(Phase.REISSUE)
    assert [type(s) for s in reissue] == [
        ReissueVecs,
        ReissueVecs,
        RecertifyVecs,
        CopyMachineSsl,
        RegenerateSms,
        UpdateVpxExt,
        RepinLookupService,
        Restart,
    ], "entries first, then what copies or names them, then one restart"
    assert [s.target for s in reissue[:3]] == [
        "MACHINE_SSL_CERT/__MACHINE_CERT",
        "vpxd-extension/vpxd-extension",
        "data-encipherment/data-encipherment",
    ], "__MACHINE_CSR is no identity: it is not re-issued"
    data = reissue[2]
    assert isinstance(data, RecertifyVecs) and data.profile.data_encipherment and data.consequence is None
    assert "keeps" in data.describe()
    assert reissue[-1].command.endswith("echo ' --vmon-profile HAActive')")
    (csr,) = [s for s in plan.for_phase(Phase.PURGE) if isinstance(s, DeleteVecsEntries)]
    assert (csr.store, csr.aliases) == (vcsa.MACHINE_SSL, (vcsa.MACHINE_CSR_ALIAS,))
    again = Plan.from_json(plan.to_json(), "journal")
    assert [type(s) for s in again.steps] == [type(s) for s in plan.steps], "the journal keeps every kind"


def test_a_new_data_encipherment_key_is_only_made_when_asked_and_says_what_it_breaks(openssl_pki) -> None:
    plan = plan_for(vcenter(), openssl_pki, new_data_key=True)
    (rekey,) = [s for s in plan.steps if s.target == "data-encipherment/data-encipherment"]
    assert isinstance(rekey, RekeyDataEncipherment) and rekey.profile.data_encipherment
    assert rekey.consequence is not None and "guest-customization passwords" in rekey.consequence
    action = next(a for a in plan.to_report()["actions"] if a["kind"] == "rekey-data-encipherment")
    assert "WARNING" in action["description"], "the report's plan records the consequence"


def test_a_machine_ssl_certificate_would_lose_the_pnid_is_refused_before_any_change(openssl_pki) -> None:
    with pytest.raises(BadInput, match="PNID 'web1.test'"):
        plan_for(vcenter(names=("localhost",)), openssl_pki)


def test_vpx_ext_problems_name_each_extension_whose_thumbprint_is_not_its_certificates() -> None:
    extension, machine, other = thumbprint(b"vpxd-extension"), thumbprint(b"machine"), thumbprint(b"x")
    rows = {
        "com.vmware.vim.eam": extension.lower().replace(":", ""),  # case and colons do not matter
        "com.vmware.rbd": other,
        "com.vmware.vsan.health": machine,
        "com.vmware.vmcam": other,  # no Authentication Proxy certificate: left alone
        "com.vmware.something.else": other,
    }
    problems = vpx_ext_problems(rows, {Source.VPXD_EXTENSION: extension, Source.MACHINE_SSL: machine})
    assert [(p.ext_id, p.wanted) for p in problems] == [("com.vmware.rbd", extension)]
    assert "com.vmware.rbd" in str(problems[0]) and len(extension) == 59 and extension.isupper()
    assert vpx_ext_problems({}, {Source.MACHINE_SSL: machine}) == ()


def test_a_limited_rotation_may_not_leave_out_a_vcenter_whose_sts_certificate_changes() -> None:
    """Every vCenter of an SSO domain must restart after its STS certificate changes: a --limit
    that leaves one out is refused before anything changes; another domain's vCenter is no matter."""
    first = vcenter()
    sts = ReplaceSts(node=first.name, domain="vsphere.local", profile=LeafProfile("ssoserverSign", ("vc1",)))
    plan = Plan(steps=(sts,), waves=((first.name,),), remove={}, max_failures=0)
    second = replace(first, name="vc2")
    elsewhere = replace(first, name="vc3", sso_user="administrator@branch.local")
    with pytest.raises(BadInput, match=r"SSO domain vsphere.local: .* --limit leaves out vc2$"):
        check_sts_domains([first, second, elsewhere], [first], plan)
    check_sts_domains([first, second, elsewhere], [first, second], plan)
    check_sts_domains([first, elsewhere], [first], plan)
