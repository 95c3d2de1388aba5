"""Real PKI material made with the openssl CLI, independent of sweeper's own `pki`.

Made by `openssl req`/`openssl ca` against a minimal openssl.cnf and CA databases, so
the scanner is tested against certificates, CRLs and fingerprints that its own
(cryptography-based) code did not produce.
"""

from __future__ import annotations

import hashlib
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

ROOT_SERIAL = 0x0100
INTERMEDIATE_SERIAL = 0x1000
EXPIRED_WINDOW = ("200101000000Z", "210101000000Z")  # 2020-01-01 .. 2021-01-01 UTC
ANCIENT_WINDOW = ("00010101000000Z", "99991231235959Z")  # year 1 .. 9999: the widest X.509 allows


class PkiError(RuntimeError):
    """An openssl command failed; the message carries its stderr."""


@dataclass(frozen=True, slots=True)
class PkiCert:
    """One certificate made by the helper, with its key and identifiers.

    ``sha256`` comes from ``openssl x509 -fingerprint -sha256``, ``spki_sha256`` is the
    SHA-256 of the DER SubjectPublicKeyInfo; both lower-case hex without colons.
    """

    name: str
    cert: Path  # PEM
    der: Path  # the same certificate, DER
    key: Path  # PKCS#8 PEM, unencrypted
    sha256: str
    spki_sha256: str
    serial: int
    names: tuple[str, ...] = ()  # the host names it carries (CN and subjectAltName), for inventories


@dataclass(frozen=True, slots=True)
class OpenSSLPki:
    """Everything :func:`make_openssl_pki` wrote. Leaves are issued by ``intermediate``."""

    directory: Path
    openssl_cnf: Path
    root: PkiCert  # self-signed, RSA 2048, SHA-256
    intermediate: PkiCert  # CA:TRUE, pathlen:0, issued by root
    leaf_rsa: PkiCert  # RSA 2048; SAN DNS:web1.test, DNS:localhost, IP:127.0.0.1
    leaf_ec: PkiCert  # EC P-256; SAN DNS:web2.test, DNS:localhost
    revoked: PkiCert  # revoked (keyCompromise) through `openssl ca -revoke`, listed in crl
    expired: PkiCert  # valid 2020-01-01 .. 2021-01-01 only
    weak_rsa1024: PkiCert  # RSA 1024
    sha1_signed: PkiCert  # sha1WithRSAEncryption
    ancient: PkiCert  # EC P-256, valid from year 1 to 9999 (GeneralizedTime at both ends)
    chain: Path  # intermediate then root, PEM
    crl: Path  # the intermediate's CRL, lists `revoked`, PEM
    crl_der: Path  # the same CRL, DER
    root_crl: Path  # the root's CRL (empty), PEM; for `openssl verify -crl_check_all`
    bundle_crlf: Path  # root + intermediate, text between the blocks, CRLF line endings

    @property
    def certs(self) -> dict[str, PkiCert]:
        """Every certificate by name."""
        return {f.name: value for f in fields(self) if isinstance(value := getattr(self, f.name), PkiCert)}

    @property
    def fingerprints(self) -> dict[str, str]:
        """Certificate name -> SHA-256 fingerprint."""
        return {name: cert.sha256 for name, cert in self.certs.items()}


_CNF = """\
# Minimal openssl.cnf for the sweeper test PKI (written by tests/support/openssl_pki.py).
[ req ]
distinguished_name = req_dn
[ req_dn ]

[ root_ca ]
dir = {directory}/ca/root
certificate = {directory}/root.crt
private_key = {directory}/root.key
{ca_common}
[ intermediate_ca ]
dir = {directory}/ca/intermediate
certificate = {directory}/intermediate.crt
private_key = {directory}/intermediate.key
{ca_common}
[ policy_any ]
organizationName = optional
commonName = supplied

[ v3_root ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ v3_intermediate ]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ v3_leaf ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ crl_ext ]
authorityKeyIdentifier = keyid:always
"""

_CA_COMMON = """\
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_days = 365
default_crl_days = 30
crl_extensions = crl_ext
policy = policy_any
unique_subject = no
copy_extensions = copy
email_in_dn = no
"""

_RSA2048 = ("-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")


@dataclass(frozen=True, slots=True)
class _Leaf:
    """How one leaf is made: genpkey options, CN, SANs, extra `openssl ca` options."""

    key: tuple[str, ...]
    common_name: str
    sans: str
    ca_args: tuple[str, ...] = ()


_LEAVES = {
    "leaf_rsa": _Leaf(_RSA2048, "web1.test", "DNS:web1.test,DNS:localhost,IP:127.0.0.1"),
    "leaf_ec": _Leaf(
        ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"),
        "web2.test",
        "DNS:web2.test,DNS:localhost",
    ),
    "revoked": _Leaf(_RSA2048, "revoked.test", "DNS:revoked.test"),
    "expired": _Leaf(
        _RSA2048,
        "expired.test",
        "DNS:expired.test",
        ("-startdate", EXPIRED_WINDOW[0], "-enddate", EXPIRED_WINDOW[1]),
    ),
    "weak_rsa1024": _Leaf(
        ("-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"), "weak.test", "DNS:weak.test"
    ),
    "sha1_signed": _Leaf(_RSA2048, "sha1.test", "DNS:sha1.test", ("-md", "sha1")),
    "ancient": _Leaf(
        ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"),
        "ancient.test",
        "DNS:ancient.test",
        ("-startdate", ANCIENT_WINDOW[0], "-enddate", ANCIENT_WINDOW[1]),
    ),
}


def openssl(*args: str | Path, stdin: bytes | None = None) -> bytes:
    """Run the openssl CLI and return its stdout; raise :class:`PkiError` with stderr."""
    argv = ["openssl", *map(str, args)]
    result = subprocess.run(argv, input=stdin, capture_output=True, check=False)
    if result.returncode != 0:
        raise PkiError(f"{' '.join(argv)}: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def make_openssl_pki(directory: Path) -> OpenSSLPki:
    """Make a root, an intermediate, their CRLs and the leaves of :class:`OpenSSLPki`.

    Takes a second or two, mostly RSA key generation (run in parallel): make it once
    per test session.
    """
    directory.mkdir(parents=True, exist_ok=True)
    cnf = directory / "openssl.cnf"
    cnf.write_text(_CNF.format(directory=directory, ca_common=_CA_COMMON))
    _init_ca_database(directory / "ca" / "root", ROOT_SERIAL)
    _init_ca_database(directory / "ca" / "intermediate", INTERMEDIATE_SERIAL)

    key_options = {"root": _RSA2048, "intermediate": _RSA2048}
    key_options.update({name: leaf.key for name, leaf in _LEAVES.items()})
    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs = [
            pool.submit(openssl, "genpkey", *options, "-out", directory / f"{name}.key")
            for name, options in key_options.items()
        ]
    for job in jobs:
        job.result()

    root_request = ["req", "-x509", "-config", cnf, "-extensions", "v3_root", "-days", "3650"]
    root_request += ["-key", directory / "root.key", "-out", directory / "root.crt"]
    openssl(*root_request, "-subj", "/O=Sweeper Test/CN=Sweeper Test Root CA")
    _issue(
        cnf,
        "intermediate",
        issuer="root_ca",
        extensions="v3_intermediate",
        common_name="Sweeper Test Intermediate CA",
        ca_args=("-days", "3650"),
    )
    for name, leaf in _LEAVES.items():
        _issue(
            cnf,
            name,
            issuer="intermediate_ca",
            extensions="v3_leaf",
            common_name=leaf.common_name,
            sans=leaf.sans,
            ca_args=leaf.ca_args,
        )

    ca = ("ca", "-batch", "-config", cnf)
    revoked = directory / "revoked.crt"
    openssl(*ca, "-name", "intermediate_ca", "-revoke", revoked, "-crl_reason", "keyCompromise")
    crl = directory / "intermediate.crl.pem"
    openssl(*ca, "-name", "intermediate_ca", "-gencrl", "-out", crl)
    crl_der = directory / "intermediate.crl.der"
    openssl("crl", "-in", crl, "-outform", "DER", "-out", crl_der)
    root_crl = directory / "root.crl.pem"
    openssl(*ca, "-name", "root_ca", "-gencrl", "-out", root_crl)

    names = ["root", "intermediate", *_LEAVES]
    certs = {name: _describe(directory, name) for name in names}
    chain = directory / "chain.pem"
    chain.write_bytes(certs["intermediate"].cert.read_bytes() + certs["root"].cert.read_bytes())
    return OpenSSLPki(
        directory=directory,
        openssl_cnf=cnf,
        **certs,
        chain=chain,
        crl=crl,
        crl_der=crl_der,
        root_crl=root_crl,
        bundle_crlf=_write_crlf_bundle(directory, [certs["root"], certs["intermediate"]]),
    )


def _init_ca_database(ca_dir: Path, first_serial: int) -> None:
    """The files `openssl ca` keeps its state in: index, serial, CRL number."""
    (ca_dir / "newcerts").mkdir(parents=True, exist_ok=True)
    (ca_dir / "index.txt").write_text("")
    (ca_dir / "serial").write_text(f"{first_serial:04X}\n")
    (ca_dir / "crlnumber").write_text("01\n")


def _issue(
    cnf: Path,
    name: str,
    *,
    issuer: str,
    extensions: str,
    common_name: str,
    sans: str | None = None,
    ca_args: tuple[str, ...] = (),
) -> None:
    """CSR from ``<name>.key`` (SANs in the CSR, copied by the CA), signed by ``issuer``."""
    directory = cnf.parent
    csr = directory / f"{name}.csr"
    request = ["req", "-new", "-config", cnf, "-key", directory / f"{name}.key"]
    request += ["-subj", f"/O=Sweeper Test/CN={common_name}", "-out", csr]
    if sans:
        request += ["-addext", f"subjectAltName={sans}"]
    openssl(*request)
    sign = ["ca", "-batch", "-notext", "-config", cnf, "-name", issuer]
    sign += ["-extensions", extensions, "-in", csr, "-out", directory / f"{name}.crt", *ca_args]
    openssl(*sign)


def _describe(directory: Path, name: str) -> PkiCert:
    """DER copy, fingerprint, serial and SPKI hash of ``<name>.crt``, all via openssl."""
    cert = directory / f"{name}.crt"
    der = directory / f"{name}.der"
    openssl("x509", "-in", cert, "-outform", "DER", "-out", der)
    fields_ = {}
    text = openssl("x509", "-in", cert, "-noout", "-serial", "-fingerprint", "-sha256").decode()
    for line in text.splitlines():
        label, _, value = line.partition("=")
        fields_[label.strip().lower()] = value.strip()
    public_pem = openssl("x509", "-in", cert, "-noout", "-pubkey")
    spki_der = openssl("pkey", "-pubin", "-outform", "DER", stdin=public_pem)
    return PkiCert(
        name=name,
        cert=cert,
        der=der,
        key=directory / f"{name}.key",
        sha256=fields_["sha256 fingerprint"].replace(":", "").lower(),
        spki_sha256=hashlib.sha256(spki_der).hexdigest(),
        serial=int(fields_["serial"], 16),
        names=_names(name),
    )


def _names(name: str) -> tuple[str, ...]:
    """What a leaf names, as an inventory's `names` must allow it (roots and CAs name no host)."""
    leaf = _LEAVES.get(name)
    if leaf is None:
        return ()
    sans = [value.split(":", 1)[1] for value in leaf.sans.split(",")]
    return tuple(dict.fromkeys([leaf.common_name, *sans]))


def _write_crlf_bundle(directory: Path, certs: list[PkiCert]) -> Path:
    """A bundle as vendors ship them: comments and `subject=` text around the PEM blocks,
    CRLF line endings; parsers must skip everything outside BEGIN/END lines."""
    parts = ["# sweeper test trust bundle: root and intermediate", ""]
    for cert in certs:
        parts.append(openssl("x509", "-in", cert.cert, "-noout", "-subject", "-issuer").decode())
        parts.append(cert.cert.read_text())
    parts.append("# end of bundle")
    text = "\n".join(parts).replace("\r\n", "\n").replace("\n", "\r\n")
    path = directory / "bundle-crlf.pem"
    path.write_bytes(text.encode())
    return path


@dataclass(frozen=True, slots=True)
class UnloadableKeys:
    """Certificates whose keys cryptography cannot load (real ones: SM2 is China's national
    standard, brainpool "t" curves are in RFC 5639), made by the openssl CLI."""

    sm2_leaf: PkiCert  # SM2 key, issued by the test PKI's intermediate (an RSA signature)
    brainpool_leaf: PkiCert  # brainpoolP512t1 key, issued by the intermediate
    sm2_impostor: Path  # self-signed SM2 certificate named exactly as the intermediate


def make_unloadable_keys(pki: OpenSSLPki, directory: Path) -> UnloadableKeys:
    """Issued with `openssl x509 -req` and serials of their own: the test PKI's CA database, and
    so its CRLs, stay as they are."""
    directory.mkdir(parents=True, exist_ok=True)
    curves = {"sm2_leaf": "SM2", "brainpool_leaf": "brainpoolP512t1", "sm2_impostor": "SM2"}
    keys = {name: directory / f"{name}.key" for name in curves}
    for name, curve in curves.items():
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", f"ec_paramgen_curve:{curve}", "-out", keys[name])
    signer = ("-CA", pki.intermediate.cert, "-CAkey", pki.intermediate.key, "-days", "30")
    for serial, name in enumerate(("sm2_leaf", "brainpool_leaf"), start=0x5300):
        csr = directory / f"{name}.csr"
        openssl("req", "-new", "-key", keys[name], "-subj", f"/O=Sweeper Test/CN={name}.test", "-out", csr)
        openssl(
            "x509", "-req", "-in", csr, *signer, "-set_serial", str(serial), "-out", directory / f"{name}.crt"
        )
    impostor = directory / "sm2_impostor.crt"
    as_intermediate = ("-subj", "/O=Sweeper Test/CN=Sweeper Test Intermediate CA")
    openssl("req", "-x509", "-key", keys["sm2_impostor"], *as_intermediate, "-days", "30", "-out", impostor)
    return UnloadableKeys(
        sm2_leaf=_describe(directory, "sm2_leaf"),
        brainpool_leaf=_describe(directory, "brainpool_leaf"),
        sm2_impostor=impostor,
    )
