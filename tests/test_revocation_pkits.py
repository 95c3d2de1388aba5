"""NIST PKITS (public conformance material), every revocation test: each test is a node holding its path and
CRLs, all in one fleet, judged as DESIGN's rules judge a sweep.

The vectors ship with the `cryptography-vectors` test dependency (x509/PKITS_data). Each row
states the PKITS test, its end entity, the CA certificates between the trust anchor and it,
its CRLs (the trust anchor's own CRL is always served too), the RFC 5280 clause and the
verdict: `revoked` (a `revoked` finding on `revoked`, default the end entity), `good` (no
`revoked`, no `revocation-unknown` on the node) or `unknown` (no `revoked` but the ones in
`also`, and a `revocation-unknown` on the node). PKITS' "Invalid" maps to revoked when a
usable CRL lists a certificate of the path, else to unknown; its "Valid" to good.

Sections left out, each for a reason:
* 4.1-4.3, 4.6, 4.8-4.13, 4.16: signatures, validity dates, name chaining, basic constraints,
  policies, name constraints and private extensions are path validation (untrusted-chain and
  the strength rules), not revocation; no CRL of theirs decides anything those tests check.
* 4.7.1-4.7.3: keyCertSign and keyUsage criticality are path validation; 4.7.4 and 4.7.5
  (no cRLSign on the CRL issuer) are revocation and are here.
* 4.5.8 (Invalid Basic Self-Issued CRL Signing Key Test8): the end entity is signed by a key
  certified for cRLSign only, a path-validation failure; its serial is on no CRL.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cryptography_vectors
import pytest

from sweeper.detect import Context, detect
from sweeper.model import CrlRecord, Finding, NodeResult
from sweeper.stores.records import certificate_record

pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")

PKITS = Path(cryptography_vectors.__file__).parent / "x509" / "PKITS_data"
ANCHOR, ANCHOR_CRL = "TrustAnchorRootCertificate", "TrustAnchorRootCRL"
NOW = datetime(2026, 1, 1, tzinfo=UTC)  # inside every PKITS 2011 validity window (2010-2030)
RULES = ("revoked", "revoked-issuer", "revocation-unknown", "crl-unverified", "crl-stale")


@dataclass(frozen=True, slots=True)
class Row:
    test: str
    ee: str
    path: tuple[str, ...]
    crls: tuple[str, ...]
    clause: str
    verdict: str
    revoked: str | None = None
    also: tuple[str, ...] = ()


# (path, CRLs) shared by several tests
UNKNOWN_CRL_EXTENSION = (("UnknownCRLExtensionCACert",), ("UnknownCRLExtensionCACRL",))
NEGATIVE_SERIAL = (("NegativeSerialNumberCACert",), ("NegativeSerialNumberCACRL",))
LONG_SERIAL = (("LongSerialNumberCACert",), ("LongSerialNumberCACRL",))
SEPARATE_KEYS = (
    (
        "SeparateCertificateandCRLKeysCertificateSigningCACert",
        "SeparateCertificateandCRLKeysCRLSigningCert",
    ),
    ("SeparateCertificateandCRLKeysCRL",),
)
OLD_WITH_NEW = (
    (
        "BasicSelfIssuedNewKeyCACert",
        "BasicSelfIssuedNewKeyOldWithNewCACert",
    ),
    ("BasicSelfIssuedNewKeyCACRL",),
)
NEW_WITH_OLD = (
    (
        "BasicSelfIssuedOldKeyCACert",
        "BasicSelfIssuedOldKeyNewWithOldCACert",
    ),
    (
        "BasicSelfIssuedOldKeyCACRL",
        "BasicSelfIssuedOldKeySelfIssuedCertCRL",
    ),
)
SELF_ISSUED_CRL_KEY = (
    (
        "BasicSelfIssuedCRLSigningKeyCACert",
        "BasicSelfIssuedCRLSigningKeyCRLCert",
    ),
    (
        "BasicSelfIssuedCRLSigningKeyCACRL",
        "BasicSelfIssuedCRLSigningKeyCRLCertCRL",
    ),
)
DP1_CA = (("distributionPoint1CACert",), ("distributionPoint1CACRL",))
DP2_CA = (("distributionPoint2CACert",), ("distributionPoint2CACRL",))
ONLY_CA_CERTS = (("onlyContainsCACertsCACert",), ("onlyContainsCACertsCACRL",))
SOME_REASONS_CA1 = (
    ("onlySomeReasonsCA1Cert",),
    (
        "onlySomeReasonsCA1compromiseCRL",
        "onlySomeReasonsCA1otherreasonsCRL",
    ),
)
SOME_REASONS_CA4 = (
    ("onlySomeReasonsCA4Cert",),
    (
        "onlySomeReasonsCA4compromiseCRL",
        "onlySomeReasonsCA4otherreasonsCRL",
    ),
)
INDIRECT_CA1 = (("indirectCRLCA1Cert",), ("indirectCRLCA1CRL",))
INDIRECT_CA2_VIA_CA1 = (
    (
        "indirectCRLCA2Cert",
        "indirectCRLCA1Cert",
    ),
    ("indirectCRLCA1CRL",),
)
INDIRECT_CA3 = (
    (
        "indirectCRLCA3Cert",
        "indirectCRLCA3cRLIssuerCert",
    ),
    (
        "indirectCRLCA3CRL",
        "indirectCRLCA3cRLIssuerCRL",
    ),
)
INDIRECT_CA6_VIA_CA5 = (
    (
        "indirectCRLCA6Cert",
        "indirectCRLCA5Cert",
    ),
    ("indirectCRLCA5CRL",),
)
DELTA_CA1 = (
    ("deltaCRLCA1Cert",),
    (
        "deltaCRLCA1CRL",
        "deltaCRLCA1deltaCRL",
    ),
)
DELTA_CA2 = (
    ("deltaCRLCA2Cert",),
    (
        "deltaCRLCA2CRL",
        "deltaCRLCA2deltaCRL",
    ),
)

ROWS = (
    Row("4.4.1", "InvalidMissingCRLTest1EE", ("NoCRLCACert",), (), "§6.3.3 (k)", "unknown"),
    Row(
        "4.4.2",
        "InvalidRevokedCATest2EE",
        (
            "GoodCACert",
            "RevokedsubCACert",
        ),
        (
            "GoodCACRL",
            "RevokedsubCACRL",
        ),
        "§6.1.3 (a)(3)",
        "revoked",
        revoked="RevokedsubCACert",
    ),
    Row("4.4.3", "InvalidRevokedEETest3EE", ("GoodCACert",), ("GoodCACRL",), "§6.3.3 (i)", "revoked"),
    Row(
        "4.4.4",
        "InvalidBadCRLSignatureTest4EE",
        ("BadCRLSignatureCACert",),
        ("BadCRLSignatureCACRL",),
        "§6.3.3 (g)",
        "unknown",
    ),
    Row(
        "4.4.5",
        "InvalidBadCRLIssuerNameTest5EE",
        ("BadCRLIssuerNameCACert",),
        ("BadCRLIssuerNameCACRL",),
        "§6.3.3 (b)(1)",
        "unknown",
    ),
    Row(
        "4.4.6", "InvalidWrongCRLTest6EE", ("WrongCRLCACert",), ("WrongCRLCACRL",), "§6.3.3 (b)(1)", "unknown"
    ),
    Row(
        "4.4.7",
        "ValidTwoCRLsTest7EE",
        ("TwoCRLsCACert",),
        (
            "TwoCRLsCAGoodCRL",
            "TwoCRLsCABadCRL",
        ),
        "§6.3.3 (g)",
        "good",
    ),
    Row(
        "4.4.8",
        "InvalidUnknownCRLEntryExtensionTest8EE",
        ("UnknownCRLEntryExtensionCACert",),
        ("UnknownCRLEntryExtensionCACRL",),
        "§5.3",
        "unknown",
    ),
    Row("4.4.9", "InvalidUnknownCRLExtensionTest9EE", *UNKNOWN_CRL_EXTENSION, "§5.2", "unknown"),
    Row("4.4.10", "InvalidUnknownCRLExtensionTest10EE", *UNKNOWN_CRL_EXTENSION, "§5.2", "unknown"),
    Row(
        "4.4.11",
        "InvalidOldCRLnextUpdateTest11EE",
        ("OldCRLnextUpdateCACert",),
        ("OldCRLnextUpdateCACRL",),
        "§6.3.3 (a)",
        "unknown",
    ),
    Row(
        "4.4.12",
        "Invalidpre2000CRLnextUpdateTest12EE",
        ("pre2000CRLnextUpdateCACert",),
        ("pre2000CRLnextUpdateCACRL",),
        "§6.3.3 (a)",
        "unknown",
    ),
    Row(
        "4.4.13",
        "ValidGeneralizedTimeCRLnextUpdateTest13EE",
        ("GeneralizedTimeCRLnextUpdateCACert",),
        ("GeneralizedTimeCRLnextUpdateCACRL",),
        "§5.1.2.5",
        "good",
    ),
    Row("4.4.14", "ValidNegativeSerialNumberTest14EE", *NEGATIVE_SERIAL, "§5.1.2.6", "good"),
    Row("4.4.15", "InvalidNegativeSerialNumberTest15EE", *NEGATIVE_SERIAL, "§5.1.2.6", "revoked"),
    Row("4.4.16", "ValidLongSerialNumberTest16EE", *LONG_SERIAL, "§5.1.2.6", "good"),
    Row("4.4.17", "ValidLongSerialNumberTest17EE", *LONG_SERIAL, "§5.1.2.6", "good"),
    Row("4.4.18", "InvalidLongSerialNumberTest18EE", *LONG_SERIAL, "§5.1.2.6", "revoked"),
    Row(
        "4.4.19",
        "ValidSeparateCertificateandCRLKeysTest19EE",
        *SEPARATE_KEYS,
        "§6.3.3 (f)",
        "good",
    ),
    Row(
        "4.4.20",
        "InvalidSeparateCertificateandCRLKeysTest20EE",
        *SEPARATE_KEYS,
        "§6.3.3 (f)",
        "revoked",
    ),
    Row(
        "4.4.21",
        "InvalidSeparateCertificateandCRLKeysTest21EE",
        (
            "SeparateCertificateandCRLKeysCA2CertificateSigningCACert",
            "SeparateCertificateandCRLKeysCA2CRLSigningCert",
        ),
        ("SeparateCertificateandCRLKeysCA2CRL",),
        "§6.3.3 (f)",
        "unknown",
        also=("SeparateCertificateandCRLKeysCA2CRLSigningCert",),
    ),
    Row(
        "4.5.1",
        "ValidBasicSelfIssuedOldWithNewTest1EE",
        *OLD_WITH_NEW,
        "§6.3.3 (f)",
        "good",
    ),
    Row(
        "4.5.2",
        "InvalidBasicSelfIssuedOldWithNewTest2EE",
        *OLD_WITH_NEW,
        "§6.3.3 (f)",
        "revoked",
    ),
    Row(
        "4.5.3",
        "ValidBasicSelfIssuedNewWithOldTest3EE",
        *NEW_WITH_OLD,
        "§6.3.3 (f)",
        "good",
    ),
    Row(
        "4.5.4",
        "ValidBasicSelfIssuedNewWithOldTest4EE",
        *NEW_WITH_OLD,
        "§6.3.3 (f)",
        "good",
    ),
    Row(
        "4.5.5",
        "InvalidBasicSelfIssuedNewWithOldTest5EE",
        *NEW_WITH_OLD,
        "§6.3.3 (f)",
        "revoked",
    ),
    Row(
        "4.5.6",
        "ValidBasicSelfIssuedCRLSigningKeyTest6EE",
        *SELF_ISSUED_CRL_KEY,
        "§6.3.3 (f)",
        "good",
    ),
    Row(
        "4.5.7",
        "InvalidBasicSelfIssuedCRLSigningKeyTest7EE",
        *SELF_ISSUED_CRL_KEY,
        "§6.3.3 (f)",
        "revoked",
    ),
    Row(
        "4.7.4",
        "InvalidkeyUsageCriticalcRLSignFalseTest4EE",
        ("keyUsageCriticalcRLSignFalseCACert",),
        ("keyUsageCriticalcRLSignFalseCACRL",),
        "§6.3.3 (f)",
        "unknown",
    ),
    Row(
        "4.7.5",
        "InvalidkeyUsageNotCriticalcRLSignFalseTest5EE",
        ("keyUsageNotCriticalcRLSignFalseCACert",),
        ("keyUsageNotCriticalcRLSignFalseCACRL",),
        "§6.3.3 (f)",
        "unknown",
    ),
    Row("4.14.1", "ValiddistributionPointTest1EE", *DP1_CA, "§6.3.3 (b)(2)(i)", "good"),
    Row("4.14.2", "InvaliddistributionPointTest2EE", *DP1_CA, "§6.3.3 (b)(2)(i)", "revoked"),
    Row("4.14.3", "InvaliddistributionPointTest3EE", *DP1_CA, "§6.3.3 (b)(2)(i)", "unknown"),
    Row("4.14.4", "ValiddistributionPointTest4EE", *DP1_CA, "§6.3.3 (b)(2)(i)", "good"),
    Row("4.14.5", "ValiddistributionPointTest5EE", *DP2_CA, "§6.3.3 (b)(2)(i)", "good"),
    Row("4.14.6", "InvaliddistributionPointTest6EE", *DP2_CA, "§6.3.3 (b)(2)(i)", "revoked"),
    Row("4.14.7", "ValiddistributionPointTest7EE", *DP2_CA, "§6.3.3 (b)(2)(i)", "good"),
    Row("4.14.8", "InvaliddistributionPointTest8EE", *DP2_CA, "§6.3.3 (b)(2)(i)", "unknown"),
    Row("4.14.9", "InvaliddistributionPointTest9EE", *DP2_CA, "§6.3.3 (b)(2)(i)", "unknown"),
    Row(
        "4.14.10",
        "ValidNoissuingDistributionPointTest10EE",
        ("NoissuingDistributionPointCACert",),
        ("NoissuingDistributionPointCACRL",),
        "§6.3.3 (b)(2)(i)",
        "good",
    ),
    Row(
        "4.14.11",
        "InvalidonlyContainsUserCertsTest11EE",
        ("onlyContainsUserCertsCACert",),
        ("onlyContainsUserCertsCACRL",),
        "§6.3.3 (b)(2)(ii)",
        "unknown",
    ),
    Row(
        "4.14.12",
        "InvalidonlyContainsCACertsTest12EE",
        *ONLY_CA_CERTS,
        "§6.3.3 (b)(2)(iii)",
        "unknown",
    ),
    Row("4.14.13", "ValidonlyContainsCACertsTest13EE", *ONLY_CA_CERTS, "§6.3.3 (b)(2)(iii)", "good"),
    Row(
        "4.14.14",
        "InvalidonlyContainsAttributeCertsTest14EE",
        ("onlyContainsAttributeCertsCACert",),
        ("onlyContainsAttributeCertsCACRL",),
        "§6.3.3 (b)(2)(iv)",
        "unknown",
    ),
    Row("4.14.15", "InvalidonlySomeReasonsTest15EE", *SOME_REASONS_CA1, "§6.3.3 (d)", "revoked"),
    Row("4.14.16", "InvalidonlySomeReasonsTest16EE", *SOME_REASONS_CA1, "§6.3.3 (d)", "revoked"),
    Row(
        "4.14.17",
        "InvalidonlySomeReasonsTest17EE",
        ("onlySomeReasonsCA2Cert",),
        (
            "onlySomeReasonsCA2CRL1",
            "onlySomeReasonsCA2CRL2",
        ),
        "§6.3.3 (d)",
        "unknown",
    ),
    Row(
        "4.14.18",
        "ValidonlySomeReasonsTest18EE",
        ("onlySomeReasonsCA3Cert",),
        (
            "onlySomeReasonsCA3compromiseCRL",
            "onlySomeReasonsCA3otherreasonsCRL",
        ),
        "§6.3.3 (d)",
        "good",
    ),
    Row("4.14.19", "ValidonlySomeReasonsTest19EE", *SOME_REASONS_CA4, "§6.3.3 (d)", "good"),
    Row("4.14.20", "InvalidonlySomeReasonsTest20EE", *SOME_REASONS_CA4, "§6.3.3 (d)", "revoked"),
    Row("4.14.21", "InvalidonlySomeReasonsTest21EE", *SOME_REASONS_CA4, "§6.3.3 (d)", "revoked"),
    Row("4.14.22", "ValidIDPwithindirectCRLTest22EE", *INDIRECT_CA1, "§5.2.5, §6.3.3 (b)(1)", "good"),
    Row("4.14.23", "InvalidIDPwithindirectCRLTest23EE", *INDIRECT_CA1, "§5.2.5, §6.3.3 (b)(1)", "revoked"),
    Row("4.14.24", "ValidIDPwithindirectCRLTest24EE", *INDIRECT_CA2_VIA_CA1, "§5.2.5, §6.3.3 (b)(1)", "good"),
    Row("4.14.25", "ValidIDPwithindirectCRLTest25EE", *INDIRECT_CA2_VIA_CA1, "§5.2.5, §6.3.3 (b)(1)", "good"),
    Row(
        "4.14.26",
        "InvalidIDPwithindirectCRLTest26EE",
        *INDIRECT_CA2_VIA_CA1,
        "§5.2.5, §6.3.3 (b)(1)",
        "unknown",
    ),
    Row(
        "4.14.27",
        "InvalidcRLIssuerTest27EE",
        (
            "indirectCRLCA2Cert",
            "GoodCACert",
        ),
        ("GoodCACRL",),
        "§5.3.3, §6.3.3 (b)(1)",
        "unknown",
    ),
    Row("4.14.28", "ValidcRLIssuerTest28EE", *INDIRECT_CA3, "§5.3.3, §6.3.3 (b)(1)", "good"),
    Row("4.14.29", "ValidcRLIssuerTest29EE", *INDIRECT_CA3, "§5.3.3, §6.3.3 (b)(1)", "good"),
    Row(
        "4.14.30",
        "ValidcRLIssuerTest30EE",
        (
            "indirectCRLCA4Cert",
            "indirectCRLCA4cRLIssuerCert",
        ),
        ("indirectCRLCA4cRLIssuerCRL",),
        "§5.3.3, §6.3.3 (b)(1)",
        "good",
    ),
    Row("4.14.31", "InvalidcRLIssuerTest31EE", *INDIRECT_CA6_VIA_CA5, "§5.3.3, §6.3.3 (b)(1)", "revoked"),
    Row("4.14.32", "InvalidcRLIssuerTest32EE", *INDIRECT_CA6_VIA_CA5, "§5.3.3, §6.3.3 (b)(1)", "revoked"),
    Row("4.14.33", "ValidcRLIssuerTest33EE", *INDIRECT_CA6_VIA_CA5, "§5.3.3, §6.3.3 (b)(1)", "good"),
    Row(
        "4.14.34",
        "InvalidcRLIssuerTest34EE",
        ("indirectCRLCA5Cert",),
        ("indirectCRLCA5CRL",),
        "§5.3.3, §6.3.3 (b)(1)",
        "revoked",
    ),
    Row(
        "4.14.35",
        "InvalidcRLIssuerTest35EE",
        (
            "indirectCRLCA5Cert",
            "indirectCRLCA6Cert",
        ),
        ("indirectCRLCA5CRL",),
        "§5.3.3, §6.3.3 (b)(1)",
        "unknown",
    ),
    Row(
        "4.15.1",
        "InvaliddeltaCRLIndicatorNoBaseTest1EE",
        ("deltaCRLIndicatorNoBaseCACert",),
        ("deltaCRLIndicatorNoBaseCACRL",),
        "§5.2.4, §6.3.3 (c)",
        "unknown",
    ),
    Row("4.15.2", "ValiddeltaCRLTest2EE", *DELTA_CA1, "§5.2.4, §6.3.3 (c)", "good"),
    Row("4.15.3", "InvaliddeltaCRLTest3EE", *DELTA_CA1, "§5.2.4, §6.3.3 (c)", "revoked"),
    Row("4.15.4", "InvaliddeltaCRLTest4EE", *DELTA_CA1, "§5.2.4, §6.3.3 (c)", "revoked"),
    Row("4.15.5", "ValiddeltaCRLTest5EE", *DELTA_CA1, "§5.2.4, §6.3.3 (c)", "good"),
    Row("4.15.6", "InvaliddeltaCRLTest6EE", *DELTA_CA1, "§5.2.4, §6.3.3 (c)", "revoked"),
    Row("4.15.7", "ValiddeltaCRLTest7EE", *DELTA_CA1, "§5.2.4, §6.3.3 (c)", "good"),
    Row("4.15.8", "ValiddeltaCRLTest8EE", *DELTA_CA2, "§5.2.4, §6.3.3 (c)", "good"),
    Row("4.15.9", "InvaliddeltaCRLTest9EE", *DELTA_CA2, "§5.2.4, §6.3.3 (c)", "revoked"),
    Row(
        "4.15.10",
        "InvaliddeltaCRLTest10EE",
        ("deltaCRLCA3Cert",),
        (
            "deltaCRLCA3CRL",
            "deltaCRLCA3deltaCRL",
        ),
        "§5.2.4, §6.3.3 (c)",
        "unknown",
    ),
)


def _der(kind: str, stem: str) -> bytes:
    return (PKITS / kind / f"{stem}.{'crt' if kind == 'certs' else 'crl'}").read_bytes()


def _node(row: Row) -> NodeResult:
    name = row.test
    certificates = [certificate_record(name, "ee", row.ee, "leaf", _der("certs", row.ee))]
    certificates += [
        certificate_record(name, "trust", stem, "trust", _der("certs", stem)) for stem in (*row.path, ANCHOR)
    ]
    crls = tuple(CrlRecord(f"{name}:{stem}", _der("crls", stem), name) for stem in (*row.crls, ANCHOR_CRL))
    return NodeResult(name=name, host=name, status="ok", certificates=tuple(certificates), crls=crls)


@pytest.fixture(scope="module")
def findings() -> list[Finding]:
    """One sweep's rules over every row at once: rows must not speak for each other."""
    return detect([_node(row) for row in ROWS], Context(now=NOW), RULES)


def _sha256(stem: str) -> str:
    return hashlib.sha256(_der("certs", stem)).hexdigest()


@pytest.mark.parametrize("row", ROWS, ids=[f"{row.test}-{row.ee}" for row in ROWS])
def test_every_pkits_revocation_test_gets_its_verdict(row: Row, findings: list[Finding]) -> None:
    mine = [f for f in findings if f.node == row.test]
    revoked = {f.sha256 for f in mine if f.rule == "revoked"}
    unknown = [f for f in mine if f.rule == "revocation-unknown"]
    if row.verdict == "revoked":
        assert _sha256(row.revoked or row.ee) in revoked, row.clause
    elif row.verdict == "good":
        assert (revoked, unknown) == (set(), []), row.clause
    else:
        assert revoked == {_sha256(stem) for stem in row.also}, row.clause
        assert unknown and all(f.entry == row.ee for f in unknown), row.clause
