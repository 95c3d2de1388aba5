"""The vCenter health checks on what a vCenter holds (no node needed), and the LDIF they read."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from sweeper.health import CHECKS, VcenterState
from sweeper.pki import issue
from sweeper.platforms.vcdb import Source, thumbprint
from sweeper.stores.ldif import LdifEntry, add_ldif, parse_ldif, replace_ldif

NOW = datetime.now(UTC)
MACHINE_ID = "6f9d2e44-5836-4637-a7ff-438aeed55222"


@pytest.fixture(scope="module")
def pki() -> dict[str, bytes]:
    key = issue.generate_key("ec-p256")
    root = issue.make_root("Published Root", key)
    other_key = issue.generate_key("ec-p256")
    other = issue.make_root("Unpublished Root", other_key)

    def leaf(name: str, by: tuple = (root, key)) -> bytes:
        cert = issue.issue_leaf(
            by[0],
            by[1],
            name,
            [name],
            issue.generate_key("ec-p256").public_key(),
            NOW,
            NOW + timedelta(days=9),
        )
        return issue.cert_der(cert)

    made = {su: leaf(su) for su in ("machine", "vpxd")}
    made |= {
        "root": issue.cert_der(root),
        "other": issue.cert_der(other),
        "ssl": leaf("vc.example"),
        "rogue": leaf("rogue", (other, other_key)),
    }
    return made


def healthy(pki: dict[str, bytes]) -> VcenterState:
    ssl = pki["ssl"]
    endpoints = [
        LdifEntry("cn=Endpoint1,cn=r1,cn=x", (("vmwLKUPEndpointSslTrust", base64.b64encode(ssl)),)),
        LdifEntry("cn=Endpoint0,cn=r1,cn=x", (("vmwLKUPSslTrustAnchor", ssl),)),
    ]
    return VcenterState(
        node="vc",
        machine_id=MACHINE_ID,
        vecs={"MACHINE_SSL_CERT": ssl, "machine": pki["machine"], "vpxd": pki["vpxd"]},
        principals={"machine": pki["machine"], "vpxd": pki["vpxd"]},
        published=[pki["root"]],
        sts_chains=[[pki["machine"], pki["root"]]],
        endpoints=endpoints,
        served_sha256=hashlib.sha256(ssl).hexdigest(),
        crl_count=3,
        vpx_ext={"com.vmware.vsan.health": thumbprint(ssl), "com.vmware.rbd": None},
        thumbprints={Source.MACHINE_SSL: thumbprint(ssl)},
    )


def findings(state: VcenterState) -> list[tuple[str, str | None]]:
    return [(f.rule, f.store) for check in CHECKS for f in check(state)]


def test_a_healthy_vcenter_has_no_finding(pki: dict[str, bytes]):
    assert findings(healthy(pki)) == []


def test_each_broken_invariant_is_its_own_finding(pki: dict[str, bytes]):
    state = healthy(pki)
    assert findings(replace(state, vecs={**state.vecs, "vpxd": pki["machine"]})) == [
        ("vcenter-solution-user-mismatch", "vpxd")
    ]
    assert findings(replace(state, principals={"machine": pki["machine"]})) == [
        ("vcenter-solution-user-mismatch", "vpxd")
    ]
    assert findings(replace(state, vecs={**state.vecs, "MACHINE_SSL_CERT": pki["rogue"]})) == [
        ("vcenter-missing-ca", "MACHINE_SSL_CERT")
    ]
    assert findings(
        replace(state, sts_chains=[[pki["rogue"], pki["other"]], [pki["machine"], pki["root"]]])
    ) == [("vcenter-sts-unpublished-root", None)]
    assert findings(replace(state, served_sha256=hashlib.sha256(pki["rogue"]).hexdigest())) == [
        ("vcenter-lookup-service-mismatch", None),
        ("vcenter-lookup-service-mismatch", None),
    ]
    assert findings(replace(state, crl_count=101)) == [("vcenter-crl-count", "TRUSTED_ROOT_CRLS")]
    stale = {**state.vpx_ext, "com.vmware.vsan.health": thumbprint(pki["rogue"])}
    assert findings(replace(state, vpx_ext=stale)) == [("vcenter-vpx-ext-mismatch", None)]


def test_ldif_round_trips_exactly_and_skips_what_is_not_ldif():
    text = (
        "dn: cn=vpxd-1,cn=ServicePrincipals,dc=vsphere,dc=local\n"
        "objectClass: vmwServicePrincipal\n"
        "cn: vpxd-1\n"
        f"userCertificate:: {base64.b64encode(bytes(range(256))).decode()}\n"
        "garbage without a colon\n"
        "bad:: not base64!!\n"
        "\n"
        "# search result\n"
    )
    (entry,) = parse_ldif(text)
    assert entry.first("usercertificate") == bytes(range(256))
    assert [n for n, _ in entry.attributes] == ["objectClass", "cn", "userCertificate"]
    assert parse_ldif(add_ldif(entry)) == [entry]
    change = replace_ldif(entry.dn, [("userCertificate", [b"a", b"b"]), ("vmwSTSPrivateKey", [])])
    assert "replace: userCertificate\nuserCertificate:: YQ==\nuserCertificate:: Yg==\n-\n" in change
    assert "replace: vmwSTSPrivateKey\n-\n" in change


def test_reads_side_by_side_come_back_in_order_and_the_first_failure_stops_the_rest() -> None:
    import asyncio

    from sweeper.errors import CommandFailed
    from sweeper.health import together

    async def value(v: int) -> int:
        await asyncio.sleep(0)
        return v

    stopped: list[str] = []

    async def never_done() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopped.append("cancelled")
            raise

    async def fails() -> None:
        await asyncio.sleep(0)
        raise CommandFailed("vecs-cli: store not found")

    assert asyncio.run(together(value(3), value(1), value(2))) == [3, 1, 2]
    with pytest.raises(CommandFailed, match="store not found"):
        asyncio.run(together(never_done(), fails()))
    assert stopped == ["cancelled"], "a read still running after another failed was left behind"
