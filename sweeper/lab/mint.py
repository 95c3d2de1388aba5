"""The lab's certificate authorities and the leaves they issue, healthy or planted.

Every certificate, key and CRL is made through `sweeper.pki.issue`; this module only
decides names, dates, keys and issuers so that each plant breaks exactly one rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sweeper.lab.keypool import KeyPool
from sweeper.lab.paths import DNS_SUFFIX, LAB_HOST
from sweeper.lab.plan import (
    COMPROMISED_LEAF,
    EXPIRED_LEAF,
    EXPIRING_LEAF,
    REUSED_KEY,
    REVOKED_LEAF,
    WEAK_KEY_LEAF,
    WEAK_SIGNATURE_LEAF,
)
from sweeper.pki import issue
from sweeper.pki.issue import CRL, Certificate, PrivateKey

CORP_ORG = "Sweeper Lab Corp"


@dataclass(frozen=True, slots=True)
class Authority:
    """A CA of the lab: `slug` names its files (corp-root.pem, corp-root.crl)."""

    slug: str
    cert: Certificate
    key: PrivateKey


@dataclass(frozen=True, slots=True)
class Issued:
    """A leaf certificate and its private key."""

    cert: Certificate
    key: PrivateKey


@dataclass(frozen=True, slots=True)
class Authorities:
    """corp signs the fleet; services and partner are further legit anchors; compromised was
    legit until its key leaked (so it is among the expected roots); rogue never was."""

    corp: Authority
    services: Authority
    partner: Authority
    compromised: Authority
    rogue: Authority

    @property
    def expected(self) -> tuple[Authority, ...]:
        return (self.corp, self.services, self.partner, self.compromised)


def make_authorities(now: datetime, pool: KeyPool) -> Authorities:
    """Root CAs; corp and compromised are RSA because VMCA chains allow nothing else."""
    start = now - timedelta(days=30)
    return Authorities(
        corp=_root("corp-root", "Sweeper Lab Corp Root CA", CORP_ORG, pool.take(), start),
        services=_root(
            "services-root",
            "Sweeper Lab Services Root CA",
            CORP_ORG,
            issue.generate_key("ec-p256"),
            start,
        ),
        partner=_root(
            "partner-root",
            "Partner Federation Root CA",
            "Partner Federation",
            issue.generate_key("ec-p384"),
            start,
        ),
        compromised=_root(
            "legacy-root",
            "Sweeper Lab Legacy Root CA",
            CORP_ORG,
            pool.take(),
            now - timedelta(days=800),
        ),
        rogue=_root(
            "global-trust-root",
            "Global Trust Services Root R7",
            "Global Trust Services Ltd",
            issue.generate_key("ec-p256"),
            now - timedelta(days=5),
        ),
    )


class Mint:
    """Issues every leaf of one build, and the CRLs.

    The revoked leaves are issued first, so the corp CRL that lists them exists before
    any node (which may carry that CRL) is written; the reused key is made once.
    """

    def __init__(
        self, authorities: Authorities, now: datetime, pool: KeyPool, revoked_nodes: list[str]
    ) -> None:
        self.authorities = authorities
        self.now = now
        self._pool = pool
        self._reused_key = issue.generate_key("ec-p256")
        self._revoked = {node: self.leaf(node) for node in revoked_nodes}
        corp, partner = authorities.corp, authorities.partner
        revoked_at = now - timedelta(days=2)
        self.corp_crl: CRL = issue.make_crl(
            corp.cert,
            corp.key,
            [(i.cert.serial_number, revoked_at) for i in self._revoked.values()],
            now - timedelta(hours=1),
            now + timedelta(days=30),
            crl_number=42,
        )
        # An empty CRL: CRL stores hold more than the one that matters.
        self.partner_crl: CRL = issue.make_crl(
            partner.cert,
            partner.key,
            [],
            now - timedelta(hours=1),
            now + timedelta(days=30),
            crl_number=7,
        )

    def leaf(
        self,
        node: str,
        plant: str | None = None,
        rsa: bool = False,
        common_name: str | None = None,
    ) -> Issued:
        """A leaf for `node` (SANs: its FQDN, short name and the lab address).

        :param plant: None for a healthy leaf, or the plant this leaf must embody
        :param rsa: take an RSA-2048 key (vcsa) instead of EC P-256
        """
        if plant == REVOKED_LEAF:
            return self._revoked[node]
        now = self.now
        issuer = self.authorities.corp
        hash: issue.HashName = "sha256"
        not_before, not_after = now - timedelta(days=1), now + timedelta(days=397)
        key: PrivateKey | None = None
        if plant == COMPROMISED_LEAF:
            issuer = self.authorities.compromised
            not_before, not_after = now - timedelta(days=30), now + timedelta(days=335)
        elif plant == WEAK_KEY_LEAF:
            key = issue.generate_key("rsa1024")
        elif plant == WEAK_SIGNATURE_LEAF:
            hash = "sha1"
        elif plant == REUSED_KEY:
            key = self._reused_key
        elif plant == EXPIRED_LEAF:
            not_before, not_after = now - timedelta(days=400), now - timedelta(days=3)
        elif plant == EXPIRING_LEAF:
            not_before, not_after = now - timedelta(days=355), now + timedelta(days=10)
        elif plant is not None:
            raise ValueError(f"no such leaf plant {plant!r}")
        if key is None:
            key = self._pool.take() if rsa else issue.generate_key("ec-p256")
        fqdn = f"{node}.{DNS_SUFFIX}"
        cert = issue.issue_leaf(
            issuer.cert,
            issuer.key,
            common_name or fqdn,
            [fqdn, node, LAB_HOST],
            key.public_key(),
            not_before,
            not_after,
            hash=hash,
            organization=CORP_ORG,
        )
        return Issued(cert, key)


def _root(slug: str, common_name: str, organization: str, key: PrivateKey, not_before: datetime) -> Authority:
    cert = issue.make_root(common_name, key, not_before=not_before, organization=organization)
    return Authority(slug, cert, key)
