"""What the rotation CA's CRL revokes, and that the CRL it signs says so (checked with openssl)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from sweeper.pki import rotation
from sweeper.pki.rotation import LeafProfile
from sweeper.rotate.journal import Journal
from sweeper.rotate.plan import Plan
from sweeper.rotate.steps import OldCertificate, ReissueFile, StepContext, serials_to_revoke


def rotation_with(tmp_path: Path, ca: rotation.CertificateAuthority, old_issuer: str) -> StepContext:
    step = ReissueFile(
        node="n1",
        cert="/etc/tls/a.crt",
        key="/etc/tls/a.key",
        key_kind="rsa2048",
        rsa_only=False,
        profile=LeafProfile("a.example", ("a.example",)),
        old=OldCertificate(sha256="aa", serial="1f", issuer=old_issuer),
    )
    plan = Plan(steps=(step,), waves=(("n1",),), remove={}, max_failures=0)
    journal = Journal.create(tmp_path / "j", "pass", {})
    return StepContext(ca=ca, sso_password=lambda node: "", journal=journal, plan=plan)


def test_a_certificate_issued_then_replaced_by_a_retry_is_revoked_the_one_in_place_is_not(
    tmp_path: Path,
) -> None:
    ca = rotation.new_root("ec-p384")
    rot = rotation_with(tmp_path, ca, old_issuer="CN=Old Root")
    rot.journal.plan_steps([("n1", "reissue", "reissue-file:/etc/tls/a.crt")])

    async def issue_twice() -> None:
        await rot.journal.record_issued("n1", "/etc/tls/a.crt", "abc1", "sha-first-attempt")
        await rot.journal.record_issued("n1", "/etc/tls/a.crt", "abc2", "sha-in-place")
        await rot.journal.begin("n1", "reissue", "reissue-file:/etc/tls/a.crt")

    asyncio.run(issue_twice())
    rot.journal.finish("n1", "reissue", "reissue-file:/etc/tls/a.crt", {"new_sha256": "sha-in-place"})
    assert serials_to_revoke(rot) == ["abc1"], "the old root's leaves are not the new CA's to revoke"


def test_an_enterprise_ca_revokes_the_old_leaves_it_issued_itself(tmp_path: Path) -> None:
    ca = rotation.new_root("rsa3072")
    rot = rotation_with(tmp_path, ca, old_issuer=ca.subject)
    assert serials_to_revoke(rot) == ["1f"]
    crl = tmp_path / "ca.crl"
    crl.write_bytes(rotation.revocation_list(ca, serials_to_revoke(rot)))
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    text = subprocess.run(
        ["openssl", "crl", "-in", str(crl), "-CAfile", str(tmp_path / "ca.pem"), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "verify OK" in text.stdout + text.stderr and "Serial Number: 1F" in text.stdout
