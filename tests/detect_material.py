"""Extra PKI material for the detection tests, made with the openssl CLI beside `openssl_pki`.

`openssl_pki` (tests/support) is shared and owned elsewhere, so what the rules need on top
of it — an impostor CA with the intermediate's name, CRLs scoped by IDP, a lifted hold,
broken keys, a name-constrained root — is minted here, in its own folder, by `openssl x509
-new` and `openssl ca`. Records are built by the production path (`certificate_record`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import gmpy2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sweeper.model import CertRecord, CrlRecord, KeyInfo, NodeResult
from sweeper.pki.parse import pem_blocks
from sweeper.stores.records import certificate_record
from tests.support.openssl_pki import OpenSSLPki, PkiCert, openssl

BADKEYS_DATA = Path(__file__).parent / "data" / "badkeys"

_SECTIONS = {
    "ca": "basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n"
    "subjectKeyIdentifier = hash\n",
    "constrained_ca": "basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n"
    "subjectKeyIdentifier = hash\nnameConstraints = critical, permitted;DNS:allowed.test\n",
    "leaf": "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n",
}


def extension_file(directory: Path, name: str, section: str, san: str | None = None) -> Path:
    """An openssl extension file with one section `x` (and the SAN for a leaf)."""
    path = directory / f"{name}.ext"
    body = _SECTIONS[section] + (f"subjectAltName = DNS:{san}\n" if san else "")
    path.write_text("[x]\n" + body)
    return path


_CA = ("ca", "-batch", "-config")
_CA_CNF = """\
[ req ]
distinguished_name = dn
[ dn ]
[ ca ]
default_ca = scope_ca
[ scope_ca ]
dir = {d}
database = {d}/index.txt
new_certs_dir = {d}/new
serial = {d}/serial
crlnumber = {d}/crlnumber
certificate = {d}/scope_ca.crt
private_key = {d}/scope_ca.key
default_md = sha256
default_days = 365
default_crl_days = 30
policy = any
[ any ]
commonName = supplied
[ only_user ]
issuingDistributionPoint = critical, @only_user_idp
[ only_user_idp ]
onlyuser = TRUE
[ only_ca ]
issuingDistributionPoint = critical, @only_ca_idp
[ only_ca_idp ]
onlyCA = TRUE
"""


@dataclass(frozen=True, slots=True)
class Minted:
    """One certificate made here: PEM path, DER, and its key (private, or public only)."""

    name: str
    cert: Path
    key: Path
    der: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Material:
    directory: Path
    certs: dict[str, Minted]
    crls: dict[str, bytes]

    def __getitem__(self, name: str) -> Minted:
        return self.certs[name]


class _Minter:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.certs: dict[str, Minted] = {}

    def key(self, name: str, *options: str) -> Path:
        path = self.directory / f"{name}.key"
        openssl(
            "genpkey", *(options or ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")), "-out", path
        )
        return path

    def mint(
        self,
        name: str,
        subject: str,
        *,
        issuer: str | None = None,
        key: Path | None = None,
        public_key: Path | None = None,
        section: str = "leaf",
        san: str = "x.test",
        serial: int | None = None,
        digest: str = "-sha256",
    ) -> Minted:
        """`openssl x509 -new`: self-signed with `key`, or signed by `issuer` over `key`/`public_key`."""
        key = key or (public_key if public_key else self.key(name))
        cert = self.directory / f"{name}.crt"
        args = ["x509", "-new", "-subj", subject, "-days", "365", digest, "-out", cert]
        leaf_san = san if section == "leaf" else None
        args += ["-extfile", extension_file(self.directory, name, section, leaf_san), "-extensions", "x"]
        if serial is not None:
            args += ["-set_serial", hex(serial)]
        if issuer is None:
            args += ["-key", key]
        else:
            signer = self.certs[issuer]
            public = public_key or self._public(key)
            args += ["-CA", signer.cert, "-CAkey", signer.key, "-force_pubkey", public]
        openssl(*args)
        minted = Minted(name, cert, key, pem_der(cert))
        self.certs[name] = minted
        return minted

    def _public(self, key: Path) -> Path:
        public = key.with_suffix(".pub")
        openssl("pkey", "-in", key, "-pubout", "-out", public)
        return public


def pem_der(path: Path) -> bytes:
    """The DER inside a one-block PEM file openssl wrote (no extra openssl run: they cost ~30 ms each)."""
    (block,) = pem_blocks(path.read_bytes())
    return block.der


def spki_pem(text: str, out: Path) -> Path:
    """The public key in badkeys' test file (PKCS#1 or SPKI, text around it) as SPKI PEM for openssl."""
    block = re.search(r"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----", text, re.DOTALL)
    assert block is not None
    key = serialization.load_pem_public_key(block.group(0).encode())
    out.write_bytes(
        key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return out


def _shared_prime_keys(directory: Path) -> tuple[Path, Path]:
    """Two RSA-2048 public keys that share one prime (a weak RNG's signature), fresh for this run."""
    state = gmpy2.random_state(20261127)
    p = gmpy2.next_prime(gmpy2.mpz_urandomb(state, 1024) | (1 << 1023))
    paths = []
    for index in range(2):
        q = gmpy2.next_prime(gmpy2.mpz_urandomb(state, 1024) | (1 << 1023))
        key = rsa.RSAPublicNumbers(65537, int(p * q)).public_key()
        path = directory / f"shared-prime-{index}.pub"
        path.write_bytes(
            key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        paths.append(path)
    return paths[0], paths[1]


def make_material(directory: Path, pki: OpenSSLPki) -> Material:
    m = _Minter(directory)
    intermediate_subject = "/O=Sweeper Test/CN=Sweeper Test Intermediate CA"
    rsa_key = m.key("other_root", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
    m.mint("other_root", "/CN=Other Root CA", key=rsa_key, section="ca")  # RSA: it signs an MD5 leaf
    m.mint("other_leaf", "/CN=other.test", issuer="other_root", san="other.test")
    # A CA that takes the real intermediate's name with its own key, and what it signs.
    m.mint("impostor", intermediate_subject, section="ca")
    m.mint(
        "impostor_leaf",
        "/CN=impostor.test",
        issuer="impostor",
        san="impostor.test",
        serial=pki.revoked.serial,
    )
    # Weak material the openssl_pki fixture does not have.
    m.mint("md5_leaf", "/CN=md5.test", issuer="other_root", san="md5.test", digest="-md5")
    p224 = m.key("p224_leaf", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-224")
    m.mint("p224_leaf", "/CN=p224.test", issuer="other_root", key=p224, san="p224.test")
    # A root that may only vouch for *.allowed.test, and a leaf outside its constraint.
    m.mint("nc_root", "/CN=Constrained Root", section="constrained_ca")
    m.mint("nc_good", "/CN=good.allowed.test", issuer="nc_root", san="good.allowed.test")
    m.mint("nc_evil", "/CN=evil.test", issuer="nc_root", san="evil.test")
    # badkeys' broken public keys, in certificates that an ordinary CA signed.
    for stem in ("roca", "fermat-pkcs8", "smallfactors-valid", "pattern", "sharedprimes", "debianweak", "ok"):
        text = (BADKEYS_DATA / f"rsa-{stem}.key").read_text()
        public = spki_pem(text, directory / f"bk-{stem}.pub")
        m.mint(
            f"bk_{stem}", f"/CN=bk-{stem}.test", issuer="other_root", public_key=public, san=f"bk-{stem}.test"
        )
    for index, public in enumerate(_shared_prime_keys(directory)):
        m.mint(f"shared_{index}", f"/CN=shared{index}.test", issuer="other_root", public_key=public)
    crls = _scope_crls(directory / "scope", m, pki)
    forged = _forged_crl(directory, m, pki)
    return Material(directory, m.certs, {**crls, "forged": forged})


def _scope_crls(ca_dir: Path, m: _Minter, pki: OpenSSLPki) -> dict[str, bytes]:
    """`openssl ca` CRLs of one CA: full, onlyContainsUserCerts, onlyContainsCACerts, a lifted hold."""
    (ca_dir / "new").mkdir(parents=True)
    (ca_dir / "index.txt").write_text("")
    (ca_dir / "serial").write_text("2000\n")
    (ca_dir / "crlnumber").write_text("10\n")
    cnf = ca_dir / "ca.cnf"
    cnf.write_text(_CA_CNF.format(d=ca_dir))
    m.mint("scope_ca", "/CN=Scope CA", section="ca")
    (ca_dir / "scope_ca.crt").write_bytes(m.certs["scope_ca"].cert.read_bytes())
    (ca_dir / "scope_ca.key").write_bytes(m.certs["scope_ca"].key.read_bytes())
    for name, section in (
        ("scope_leaf", "leaf"),
        ("scope_sub", "ca"),
        ("scope_held", "leaf"),
        ("scope_hold", "leaf"),
    ):
        key = m.key(name)
        csr = ca_dir / f"{name}.csr"
        openssl("req", "-new", "-key", key, "-subj", f"/CN={name}", "-out", csr, "-config", cnf)
        cert = ca_dir / f"{name}.crt"
        extensions = extension_file(ca_dir, name, section, f"{name}.test" if section == "leaf" else None)
        openssl(*_CA, cnf, "-in", csr, "-out", cert, "-notext", "-extfile", extensions, "-extensions", "x")
        m.certs[name] = Minted(name, cert, key, pem_der(cert))
    ca = ("ca", "-batch", "-config", cnf)
    openssl(*ca, "-revoke", ca_dir / "scope_leaf.crt", "-crl_reason", "keyCompromise")
    openssl(*ca, "-revoke", ca_dir / "scope_sub.crt", "-crl_reason", "cACompromise")
    openssl(*ca, "-revoke", ca_dir / "scope_held.crt", "-crl_reason", "removeFromCRL")
    crls = {}
    for name, extensions in (("full", None), ("only_user", "only_user"), ("only_ca", "only_ca")):
        out = ca_dir / f"{name}.crl"
        args = [*ca, "-gencrl", "-out", out]
        if extensions:
            args += ["-crlexts", extensions]
        openssl(*args)
        crls[name] = pem_der(out)
    # A hold, then the next CRL after the hold was released (openssl ca cannot un-revoke: edit its index).
    openssl(*ca, "-revoke", ca_dir / "scope_hold.crt", "-crl_reason", "certificateHold")
    for name in ("hold", "released"):
        if name == "released":
            index = ca_dir / "index.txt"
            lines = index.read_text().splitlines()
            index.write_text("".join(_unrevoked(line) + "\n" for line in lines))
        openssl(*ca, "-gencrl", "-out", ca_dir / f"{name}.crl")
        crls[name] = pem_der(ca_dir / f"{name}.crl")
    return crls


def _unrevoked(index_line: str) -> str:
    """An `openssl ca` index line for a held certificate, put back to valid."""
    fields = index_line.split("\t")
    if fields[0] == "R" and fields[2].endswith("certificateHold"):
        fields[0], fields[2] = "V", ""
    return "\t".join(fields)


def _forged_crl(directory: Path, m: _Minter, pki: OpenSSLPki) -> bytes:
    """A CRL in the intermediate's name, listing leaf_rsa, signed by the impostor's key."""
    ca_dir = directory / "forge"
    (ca_dir / "new").mkdir(parents=True)
    (ca_dir / "index.txt").write_text(
        f"R\t301231000000Z\t261101000000Z,keyCompromise\t{pki.leaf_rsa.serial:04X}\tunknown\t/CN=web1.test\n"
    )
    (ca_dir / "serial").write_text("01\n")
    (ca_dir / "crlnumber").write_text("99\n")
    cnf = ca_dir / "ca.cnf"
    cnf.write_text(_CA_CNF.format(d=ca_dir))
    (ca_dir / "scope_ca.crt").write_bytes(m.certs["impostor"].cert.read_bytes())
    (ca_dir / "scope_ca.key").write_bytes(m.certs["impostor"].key.read_bytes())
    out = ca_dir / "forged.crl"
    openssl("ca", "-batch", "-config", cnf, "-gencrl", "-out", out)
    return pem_der(out)


_MADE: dict[Path, Material] = {}


@pytest.fixture(scope="session", name="material")
def material_fixture(tmp_path_factory: pytest.TempPathFactory, openssl_pki: OpenSSLPki) -> Material:
    """The material, made once per session even though several test modules import this fixture."""
    if openssl_pki.directory not in _MADE:
        _MADE[openssl_pki.directory] = make_material(tmp_path_factory.mktemp("detect-material"), openssl_pki)
    return _MADE[openssl_pki.directory]


def record(
    node: str,
    cert: PkiCert | Minted,
    role: str = "leaf",
    store: str | None = None,
    entry: str | None = None,
    key: KeyInfo | None = None,
    entry_type: str | None = None,
) -> CertRecord:
    """A CertRecord as a store read would make it from this certificate."""
    der = cert.der.read_bytes() if isinstance(cert.der, Path) else cert.der
    store = store or ("/etc/pki/trust.pem" if role == "trust" else f"/etc/tls/{cert.name}.crt")
    return certificate_record(node, store, entry or f"{store}#{cert.name}", role, der, entry_type, key)


def node(
    name: str, *records: CertRecord, host: str | None = None, crls: tuple[CrlRecord, ...] = ()
) -> NodeResult:
    return NodeResult(name=name, host=host or f"{name}.test", status="ok", certificates=records, crls=crls)


def crl_record(source: str, der: bytes, node_name: str | None = None) -> CrlRecord:
    return CrlRecord(source=source, der=der, node=node_name)
