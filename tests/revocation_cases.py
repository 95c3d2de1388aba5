"""Revocation conformance as a table: per case, the certificate path, CRLs, RFC 5280 clause and verdict.

Every case has its own self-signed `root` (its empty, fresh CRL is served unless the case
gives one or says `root_crl=False`), so cases cannot speak for each other when one sweep
holds them all. Certificates name their issuer by case-local name ("self": self-signed);
`served=False` keeps one off the node (a forger's key, a missing intermediate). The node
serves `leaf` in a leaf store, every other served certificate in a trust bundle, and the
CRLs as DER files in a CRL folder. Verdicts: `revoked` (a `revoked` finding on `revoked`,
default the leaf), `good` (no `revoked`, no `revocation-unknown`), `unknown` (no `revoked`
and a `revocation-unknown` on the node); `also` lists further (rule, certificate) findings
the case must show. Material: tests/support/revocation_pki.py, the openssl CLI only.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from tests.support.revocation_pki import REASON_BITS, Entry, Made, Partition, Point, RevocationPki

COMPROMISE = ("keyCompromise", "cACompromise")
OTHER_REASONS = tuple(reason for reason in REASON_BITS if reason not in COMPROMISE)
P1, P2 = "http://crl.test/part1.crl", "http://crl.test/part2.crl"


@dataclass(frozen=True, slots=True)
class Cert:
    """A certificate of a case: its issuer (case-local name), usage, distribution points."""

    name: str
    issuer: str = "ca"
    usage: str = "leaf"
    points: tuple[Point, ...] = ()
    cn: str | None = None
    """Subject CN within the case (default: the name); a CRL-signing key shares its CA's."""
    served: bool = True


@dataclass(frozen=True, slots=True)
class Revoke:
    """A CRL entry: a certificate of the case (by name) or a bare serial."""

    cert: str | int
    reason: str | None = "keyCompromise"
    certificate_issuer: str | None = None
    unknown_critical: bool = False


@dataclass(frozen=True, slots=True)
class Crl:
    """A CRL of the case, in `issuer`'s name, signed with `signer`'s key (default the issuer's)."""

    issuer: str
    entries: tuple[Revoke, ...] = ()
    signer: str | None = None
    number: int = 1
    partition: Partition | None = None
    delta_base: int | None = None
    stale: bool = False
    unknown_critical: bool = False


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    clause: str
    what: str
    verdict: str
    certs: tuple[Cert, ...]
    crls: tuple[Crl, ...] = ()
    revoked: str = "leaf"
    reason: str | None = None
    also: tuple[tuple[str, str], ...] = ()
    root_crl: bool = True


CA = Cert("ca", issuer="root", usage="ca")
CHAIN = (CA, Cert("leaf"))
LISTED = (Revoke("leaf"),)

CASES = (
    Case(
        "listed",
        "§6.3.3 (i)",
        "the CA's CRL lists the leaf",
        "revoked",
        CHAIN,
        (Crl("ca", LISTED),),
        reason="keyCompromise",
    ),
    Case(
        "not-listed",
        "§6.3.3 (k)",
        "the CA's CRL lists another serial",
        "good",
        CHAIN,
        (Crl("ca", (Revoke(0x999),)),),
    ),
    Case("no-crl", "§6.3.3 (k)", "no CRL of the CA anywhere", "unknown", CHAIN),
    Case(
        "other-ca-same-serial",
        "§5.3 (issuer and serial)",
        "another CA's CRL lists the leaf's serial",
        "good",
        (*CHAIN, Cert("other", issuer="root", usage="ca")),
        (Crl("ca"), Crl("other", LISTED)),
    ),
    Case(
        "forged",
        "§6.3.3 (g)",
        "a CRL in the CA's name, signed by an unknown key, lists the leaf",
        "unknown",
        (*CHAIN, Cert("forger", issuer="self", usage="ca", cn="ca", served=False)),
        (Crl("ca", LISTED, signer="forger"),),
    ),
    Case(
        "separate-key",
        "§6.3.3 (f)",
        "the CA's CRL-signing key (same name, cRLSign, from the root) lists it",
        "revoked",
        (*CHAIN, Cert("crl-key", issuer="root", usage="crl-signer", cn="ca")),
        (Crl("ca", LISTED, signer="crl-key"),),
    ),
    Case(
        "separate-key-clears",
        "§6.3.3 (f)",
        "the CA's CRL-signing key lists another serial",
        "good",
        (*CHAIN, Cert("crl-key", issuer="root", usage="crl-signer", cn="ca")),
        (Crl("ca", (Revoke(0x999),), signer="crl-key"),),
    ),
    Case(
        "separate-key-other-anchor",
        "§6.3.3 (f)",
        "a CRL key of the CA's name under another root lists it",
        "unknown",
        (
            *CHAIN,
            Cert("other-root", issuer="self", usage="ca"),
            Cert("crl-key", issuer="other-root", usage="crl-signer", cn="ca"),
        ),
        (Crl("ca", LISTED, signer="crl-key"),),
    ),
    Case(
        "separate-key-revoked",
        "§6.3.3 (f)",
        "the CA's CRL-signing key, itself revoked by the root, lists it",
        "unknown",
        (*CHAIN, Cert("crl-key", issuer="root", usage="crl-signer", cn="ca")),
        (Crl("root", (Revoke("crl-key"),)), Crl("ca", LISTED, signer="crl-key")),
        also=(("revoked", "crl-key"),),
    ),
    Case(
        "no-crl-sign",
        "§6.3.3 (f)",
        "the CA's key usage leaves out cRLSign; its CRL lists the leaf",
        "unknown",
        (Cert("ca", issuer="root", usage="ca-no-crl-sign"), Cert("leaf")),
        (Crl("ca", LISTED),),
    ),
    Case(
        "indirect",
        "§5.3.3, §6.3.3 (b)(1)",
        "another CA's indirect CRL lists it after a certificateIssuer entry",
        "revoked",
        (CA, Cert("crl-ca", issuer="root", usage="ca"), Cert("leaf", points=(Point(crl_issuer="crl-ca"),))),
        (
            Crl(
                "crl-ca",
                (Revoke(0x77, certificate_issuer="ca"), Revoke("leaf")),
                partition=Partition(indirect=True),
            ),
        ),
    ),
    Case(
        "indirect-inherited",
        "§5.3.3",
        "the CA's own indirect CRL lists the leaf's serial for another CA",
        "good",
        (*CHAIN, Cert("other", issuer="root", usage="ca")),
        (
            Crl(
                "ca",
                (Revoke(0x77, certificate_issuer="other"), Revoke("leaf")),
                partition=Partition(indirect=True),
            ),
        ),
    ),
    Case(
        "indirect-not-marked",
        "§6.3.3 (b)(1)",
        "another CA's CRL lists it, not marked indirect",
        "unknown",
        (CA, Cert("crl-ca", issuer="root", usage="ca"), Cert("leaf", points=(Point(crl_issuer="crl-ca"),))),
        (Crl("crl-ca", (Revoke(0x77, certificate_issuer="ca"), Revoke("leaf"))),),
    ),
    Case(
        "dp-uri",
        "§6.3.3 (b)(2)(i)",
        "the CRL for the leaf's URI distribution point lists it",
        "revoked",
        (CA, Cert("leaf", points=(Point(uri=P1),))),
        (Crl("ca", LISTED, partition=Partition(uri=P1)),),
    ),
    Case(
        "dp-uri-other",
        "§6.3.3 (b)(2)(i)",
        "the CRL of another partition lists its serial",
        "unknown",
        (CA, Cert("leaf", points=(Point(uri=P2),))),
        (Crl("ca", LISTED, partition=Partition(uri=P1)),),
    ),
    Case(
        "dp-directory-name",
        "§6.3.3 (b)(2)(i)",
        "the CRL for its directoryName point lists it",
        "revoked",
        (CA, Cert("leaf", points=(Point(dn="ca part1"),))),
        (Crl("ca", LISTED, partition=Partition(dn="ca part1")),),
    ),
    Case(
        "dp-relative-name",
        "§6.3.3 (b)(2)(i)",
        "the CRL for its point relative to the CRL issuer lists it",
        "revoked",
        (CA, Cert("leaf", points=(Point(relative="part1"),))),
        (Crl("ca", LISTED, partition=Partition(relative="part1")),),
    ),
    Case(
        "dp-absent",
        "§6.3.3 (b)(2)(i)",
        "a partitioned CRL lists it; the leaf names no point",
        "unknown",
        CHAIN,
        (Crl("ca", LISTED, partition=Partition(uri=P1)),),
    ),
    Case(
        "only-user-certs",
        "§6.3.3 (b)(2)(ii)",
        "a user-certificates-only CRL lists a CA certificate",
        "unknown",
        (CA, Cert("leaf", usage="ca")),
        (Crl("ca", LISTED, partition=Partition(only_user=True)),),
    ),
    Case(
        "only-ca-certs",
        "§6.3.3 (b)(2)(iii)",
        "a CA-certificates-only CRL lists an end entity",
        "unknown",
        CHAIN,
        (Crl("ca", LISTED, partition=Partition(only_ca=True)),),
    ),
    Case(
        "only-ca-certs-ca",
        "§6.3.3 (b)(2)(iii)",
        "a CA-certificates-only CRL lists a CA certificate",
        "revoked",
        (CA, Cert("leaf", usage="ca")),
        (Crl("ca", LISTED, partition=Partition(only_ca=True)),),
    ),
    Case(
        "only-attribute-certs",
        "§6.3.3 (b)(2)(iv)",
        "an attribute-certificates-only CRL lists it",
        "unknown",
        CHAIN,
        (Crl("ca", LISTED, partition=Partition(only_attribute=True)),),
    ),
    Case(
        "some-reasons",
        "§6.3.3 (d)",
        "one CRL for compromise reasons only, not listing it",
        "unknown",
        CHAIN,
        (Crl("ca", partition=Partition(reasons=COMPROMISE)),),
    ),
    Case(
        "some-reasons-all",
        "§6.3.3 (d)",
        "two CRLs that cover every reason between them",
        "good",
        CHAIN,
        (
            Crl("ca", partition=Partition(reasons=COMPROMISE)),
            Crl("ca", partition=Partition(reasons=OTHER_REASONS)),
        ),
    ),
    Case(
        "some-reasons-listed",
        "§6.3.3 (d), (i)",
        "the compromise-reasons CRL lists it",
        "revoked",
        CHAIN,
        (Crl("ca", LISTED, partition=Partition(reasons=COMPROMISE)),),
    ),
    Case(
        "dp-reasons",
        "§6.3.3 (d)",
        "two points split the reasons, a CRL for each",
        "good",
        (CA, Cert("leaf", points=(Point(uri=P1, reasons=COMPROMISE), Point(uri=P2, reasons=OTHER_REASONS)))),
        (Crl("ca", partition=Partition(uri=P1)), Crl("ca", partition=Partition(uri=P2))),
    ),
    Case(
        "unknown-critical-extension",
        "§5.2",
        "a CRL with an unknown critical extension lists it",
        "unknown",
        CHAIN,
        (Crl("ca", LISTED, unknown_critical=True),),
    ),
    Case(
        "unknown-critical-entry-extension",
        "§5.3",
        "its entry carries an unknown critical extension",
        "unknown",
        CHAIN,
        (Crl("ca", (Revoke("leaf", unknown_critical=True),)),),
    ),
    Case(
        "hold",
        "§5.3.1",
        "the CRL puts it on hold (certificateHold)",
        "revoked",
        CHAIN,
        (Crl("ca", (Revoke("leaf", reason="certificateHold"),)),),
        reason="certificateHold",
    ),
    Case(
        "hold-released",
        "§5.3.1",
        "CRL #1 holds it, CRL #2 no longer lists it",
        "good",
        CHAIN,
        (Crl("ca", (Revoke("leaf", reason="certificateHold"),)), Crl("ca", number=2)),
    ),
    Case(
        "hold-removed-by-delta",
        "§5.2.4, §5.3.1",
        "the base CRL holds it, a delta says removeFromCRL",
        "good",
        CHAIN,
        (
            Crl("ca", (Revoke("leaf", reason="certificateHold"),)),
            Crl("ca", (Revoke("leaf", reason="removeFromCRL"),), number=2, delta_base=1),
        ),
    ),
    Case(
        "delta-revokes",
        "§5.2.4, §6.3.3 (c)",
        "the base CRL is empty, its delta lists it",
        "revoked",
        CHAIN,
        (Crl("ca"), Crl("ca", LISTED, number=2, delta_base=1)),
    ),
    Case(
        "delta-alone",
        "§5.2.4",
        "only a delta CRL, no complete CRL under it",
        "unknown",
        CHAIN,
        (Crl("ca", LISTED, number=2, delta_base=1),),
    ),
    Case(
        "remove-from-crl-on-complete",
        "§5.3.1",
        "a complete CRL lists it with removeFromCRL",
        "good",
        CHAIN,
        (Crl("ca", (Revoke("leaf", reason="removeFromCRL"),)),),
    ),
    Case(
        "stale",
        "§6.3.3 (a)",
        "the only CRL is past its nextUpdate",
        "unknown",
        CHAIN,
        (Crl("ca", stale=True),),
    ),
    Case(
        "stale-listed",
        "§6.3.3 (a)",
        "a CRL past its nextUpdate lists it: still revoked",
        "revoked",
        CHAIN,
        (Crl("ca", LISTED, stale=True),),
    ),
    Case(
        "revoked-ca",
        "§6.1.3 (a)(3)",
        "the root's CRL lists the leaf's CA",
        "revoked",
        CHAIN,
        (Crl("root", (Revoke("ca", reason="cACompromise"),)), Crl("ca")),
        revoked="ca",
        also=(("revoked-issuer", "leaf"),),
    ),
    Case(
        "revoked-ca-above",
        "§6.1.3 (a)(3)",
        "the root's CRL lists the CA above the leaf's CA",
        "revoked",
        (CA, Cert("sub", usage="ca"), Cert("leaf", issuer="sub")),
        (Crl("root", (Revoke("ca"),)), Crl("ca"), Crl("sub")),
        revoked="ca",
        also=(("revoked-issuer", "leaf"), ("revoked-issuer", "sub")),
    ),
    Case(
        "issuer-not-known",
        "§6.3.3 (f)",
        "the leaf's CA certificate is nowhere",
        "unknown",
        (Cert("ca", issuer="root", usage="ca", served=False), Cert("leaf")),
        (Crl("ca", LISTED),),
    ),
    Case(
        "ca-status-unknown",
        "§6.1.3 (a)(3)",
        "the leaf is cleared, but no CRL of the root covers its CA",
        "unknown",
        CHAIN,
        (Crl("ca"),),
        root_crl=False,
    ),
)


@dataclass(frozen=True, slots=True)
class Built:
    """A case's material: its certificates by name and its CRL files."""

    case: Case
    certs: dict[str, Made]
    crls: tuple[Path, ...]

    @property
    def served(self) -> list[Made]:
        return [self.certs[c.name] for c in self.case.certs if c.served and c.name != "leaf"] + [
            self.certs["root"]
        ]


def build_case(pki: RevocationPki, case: Case) -> Built:
    """Make the case's certificates (root first, each after its issuer) and CRLs."""
    made: dict[str, Made] = {}
    cns: dict[str, str] = {}
    specs = [Cert("root", issuer="self", usage="ca"), *case.certs]
    for index, spec in enumerate(specs):
        cns[spec.name] = f"{case.id} {spec.cn or spec.name}"
        points = tuple(replace(p, crl_issuer=cns[p.crl_issuer]) if p.crl_issuer else p for p in spec.points)
        made[spec.name] = pki.certificate(
            f"{case.id}-{spec.name}",
            cns[spec.name],
            issuer=None if spec.issuer == "self" else made[spec.issuer],
            key=index,
            serial=0x100 + index,
            usage=spec.usage,
            points=points,
        )
    crls = list(case.crls)
    if case.root_crl and not any(c.issuer == "root" for c in crls):
        crls.append(Crl("root"))
    files = []
    for index, crl in enumerate(crls):
        entries = [
            Entry(
                made[e.cert].serial if isinstance(e.cert, str) else e.cert,
                e.reason,
                cns[e.certificate_issuer] if e.certificate_issuer else None,
                e.unknown_critical,
            )
            for e in crl.entries
        ]
        files.append(
            pki.crl(
                f"{case.id}-crl{index}",
                issuer_cn=cns[crl.issuer],
                signer=made[crl.signer or crl.issuer],
                number=crl.number,
                entries=entries,
                partition=crl.partition,
                delta_base=crl.delta_base,
                stale=crl.stale,
                unknown_critical=crl.unknown_critical,
            )
        )
    return Built(case, made, tuple(files))


def build_cases(directory: Path, cases: tuple[Case, ...] = CASES) -> dict[str, Built]:
    """Every case's material, made in parallel (each case is a few openssl runs)."""
    pki = RevocationPki(directory)
    with ThreadPoolExecutor(max_workers=4) as pool:
        built = list(pool.map(lambda case: build_case(pki, case), cases))
    return {b.case.id: b for b in built}
