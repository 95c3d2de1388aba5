"""--ocsp: ask the responder in each certificate's AIA; only a verified answer counts.

The responder is the openssl CLI (`openssl ocsp -index … -reqin … -respout …`, one run
per request) behind a small HTTP server bound to 127.0.0.1, so each test can choose who
signs the answers: the CA itself, a delegated OCSPSigning responder, or an impostor.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sweeper.detect import Context, detect
from sweeper.detect.ocsp import MAX_PARALLEL, check_allowed
from sweeper.errors import BadInput
from sweeper.incident import Incident
from sweeper.model import NodeResult, Severity
from tests.detect_material import Minted, extension_file, node, pem_der, record
from tests.support.openssl_pki import openssl

CA_CNF = """\
[ req ]
distinguished_name = dn
[ dn ]
[ ca ]
default_ca = ocsp_ca
[ ocsp_ca ]
dir = {d}
database = {d}/index.txt
new_certs_dir = {d}/new
serial = {d}/serial
certificate = {d}/ca.crt
private_key = {d}/ca.key
default_md = sha256
default_days = 365
policy = any
[ any ]
commonName = supplied
"""


class Responder(http.server.ThreadingHTTPServer):
    """Answers OCSP POSTs on 127.0.0.1 with `openssl ocsp`, signed by `signer`."""

    def __init__(self, directory: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.directory = directory
        self.signer: tuple[Path, Path] | None = None
        self.redirect: str | None = None
        self.requests = 0


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Responder

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests += 1
        if self.server.redirect:
            self.send_response(307)
            self.send_header("Location", self.server.redirect)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        d = self.server.directory
        request = d / f"req-{threading.get_ident()}.der"
        request.write_bytes(body)
        cert, key = self.server.signer or (d / "ca.crt", d / "ca.key")
        answer = openssl(
            "ocsp", "-index", d / "index.txt", "-CA", d / "ca.crt", "-rsigner", cert, "-rkey", key,
            "-reqin", request, "-respout", "-", "-nmin", "60",
        )  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/ocsp-response")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@dataclass(frozen=True)
class OcspPki:
    responder: Responder
    ca: Minted
    good: Minted
    revoked: Minted
    delegate: Minted
    impostor: Minted
    stranger: Minted


def _issue(d: Path, name: str, section: str, url: str) -> Minted:
    key = d / f"{name}.key"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
    csr = d / f"{name}.csr"
    openssl("req", "-new", "-key", key, "-subj", f"/CN={name}", "-out", csr, "-config", d / "ca.cnf")
    ext = d / f"{name}.ext"
    extra = {
        "leaf": f"authorityInfoAccess = OCSP;URI:{url}\nsubjectAltName = DNS:{name}.test\n",
        "delegate": "extendedKeyUsage = OCSPSigning\n",
    }[section]
    ext.write_text("[x]\nbasicConstraints = critical, CA:FALSE\n" + extra)
    cert = d / f"{name}.crt"
    openssl(
        "ca",
        "-batch",
        "-config",
        d / "ca.cnf",
        "-in",
        csr,
        "-out",
        cert,
        "-notext",
        "-extfile",
        ext,
        "-extensions",
        "x",
    )
    return Minted(name, cert, key, pem_der(cert))


@pytest.fixture(scope="module")
def ocsp_pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OcspPki]:
    d = tmp_path_factory.mktemp("ocsp")
    (d / "new").mkdir()
    (d / "index.txt").write_text("")
    (d / "serial").write_text("3000\n")
    (d / "ca.cnf").write_text(CA_CNF.format(d=d))
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", d / "ca.key")
    ca_ext = extension_file(d, "ca", "ca")
    self_sign = ["x509", "-new", "-subj", "/CN=OCSP Test CA", "-days", "365", "-extensions", "x"]
    openssl(*self_sign, "-key", d / "ca.key", "-out", d / "ca.crt", "-extfile", ca_ext)
    responder = Responder(d)
    url = f"http://127.0.0.1:{responder.server_address[1]}/"
    good, revoked, delegate = (
        _issue(d, n, s, url) for n, s in (("good", "leaf"), ("gone", "leaf"), ("delegate", "delegate"))
    )
    openssl("ca", "-batch", "-config", d / "ca.cnf", "-revoke", revoked.cert, "-crl_reason", "keyCompromise")
    impostor_key = d / "impostor.key"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", impostor_key)
    (d / "impostor.ext").write_text("[x]\nextendedKeyUsage = OCSPSigning\n")
    # Same name as the CA, its own key, OCSPSigning usage: what a man in the middle would sign with.
    openssl(*self_sign, "-key", impostor_key, "-out", d / "impostor.crt", "-extfile", d / "impostor.ext")
    impostor = Minted("impostor", d / "impostor.crt", impostor_key, pem_der(d / "impostor.crt"))
    # Its own name and key, OCSPSigning usage, but no CA ever authorised it.
    stranger_sign = ["x509", "-new", "-subj", "/CN=Stranger OCSP", "-days", "3", "-extensions", "x"]
    openssl(*stranger_sign, "-key", impostor_key, "-out", d / "stranger.crt", "-extfile", d / "impostor.ext")
    stranger = Minted("stranger", d / "stranger.crt", impostor_key, pem_der(d / "stranger.crt"))
    thread = threading.Thread(target=responder.serve_forever, daemon=True)
    thread.start()
    ca = Minted("ca", d / "ca.crt", d / "ca.key", pem_der(d / "ca.crt"))
    yield OcspPki(responder, ca, good, revoked, delegate, impostor, stranger)
    responder.shutdown()
    responder.server_close()


def fleet(pki: OcspPki) -> list[NodeResult]:
    return [node("n", record("n", pki.good), record("n", pki.revoked), record("n", pki.ca, "trust"))]


def scan(
    pki: OcspPki,
    nodes: list[NodeResult] | None = None,
    ocsp: bool = True,
    timeout: float = 5.0,
    allow: tuple[str, ...] = ("127.0.0.1",),
    budget: float = 60.0,
) -> dict:
    context = Context(
        incident=Incident(), ocsp=ocsp, ocsp_timeout=timeout, ocsp_allow=allow, ocsp_budget=budget
    )
    found = detect(nodes or fleet(pki), context, ("revoked", "ocsp-unknown"))
    return {(f.rule, f.entry.rsplit("#", 1)[-1]): f for f in found if f.entry}


def test_a_responder_signing_as_the_ca_revokes_and_passes_good(ocsp_pki: OcspPki) -> None:
    ocsp_pki.responder.signer = None
    found = scan(ocsp_pki)
    assert set(found) == {("revoked", "gone")}
    hit = found[("revoked", "gone")]
    assert hit.severity == Severity.CRITICAL and hit.evidence["source"] == "ocsp"
    assert hit.evidence["reason"] == "keyCompromise" and hit.evidence["responder"] == "CN=OCSP Test CA"


def test_a_delegated_ocsp_signing_responder_is_believed(ocsp_pki: OcspPki) -> None:
    ocsp_pki.responder.signer = (ocsp_pki.delegate.cert, ocsp_pki.delegate.key)
    found = scan(ocsp_pki)
    assert (
        set(found) == {("revoked", "gone")}
        and found[("revoked", "gone")].evidence["responder"] == "CN=delegate"
    )


@pytest.mark.parametrize("signer", ["impostor", "stranger"])
def test_answers_signed_by_anyone_else_are_unknown_never_revoked(ocsp_pki: OcspPki, signer: str) -> None:
    cert = getattr(ocsp_pki, signer)
    ocsp_pki.responder.signer = (cert.cert, cert.key)
    found = scan(ocsp_pki)
    assert set(found) == {("ocsp-unknown", "good"), ("ocsp-unknown", "gone")}
    assert all(f.severity == Severity.INFO for f in found.values())


def test_a_silent_responder_is_unknown_within_the_timeout(ocsp_pki: OcspPki) -> None:
    with socket.socket() as listener:  # accepts, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        ocsp_pki.responder.signer = None
        d = ocsp_pki.responder.directory
        mute = _issue(d, "mute", "leaf", f"http://127.0.0.1:{port}/")
        found = scan(ocsp_pki, [node("n", record("n", mute), record("n", ocsp_pki.ca, "trust"))], timeout=0.5)
    assert set(found) == {("ocsp-unknown", "mute")}


def test_without_the_option_no_responder_is_asked(ocsp_pki: OcspPki) -> None:
    before = ocsp_pki.responder.requests
    assert scan(ocsp_pki, ocsp=False) == {}
    assert ocsp_pki.responder.requests == before


def test_only_responders_the_operator_allows_are_asked(ocsp_pki: OcspPki) -> None:
    ocsp_pki.responder.signer = None
    port = ocsp_pki.responder.server_address[1]
    for allow in ((), ("ocsp.corp.example",), (f"http://127.0.0.1:{port}/ocsp",), ("http://127.0.0.1/",)):
        before = ocsp_pki.responder.requests
        found = scan(ocsp_pki, allow=allow)
        assert ocsp_pki.responder.requests == before, allow
        assert set(found) == {("ocsp-unknown", "good"), ("ocsp-unknown", "gone")}, allow
        assert all(f.evidence["detail"].startswith("not asked:") for f in found.values())
    assert "--ocsp-allow" in scan(ocsp_pki, allow=())[("ocsp-unknown", "good")].evidence["detail"]
    for allow in (("127.0.0.1",), (f"http://127.0.0.1:{port}",), (f"http://127.0.0.1:{port}/",)):
        assert set(scan(ocsp_pki, allow=allow)) == {("revoked", "gone")}, allow


def test_a_responder_cannot_redirect_sweeper_elsewhere(ocsp_pki: OcspPki) -> None:
    port = ocsp_pki.responder.server_address[1]
    ocsp_pki.responder.signer = None
    ocsp_pki.responder.redirect = f"http://localhost:{port}/elsewhere"
    try:
        before = ocsp_pki.responder.requests
        found = scan(ocsp_pki)
    finally:
        ocsp_pki.responder.redirect = None
    assert ocsp_pki.responder.requests == before + 2, "one post per certificate, the redirect not followed"
    assert set(found) == {("ocsp-unknown", "good"), ("ocsp-unknown", "gone")}
    assert "307" in found[("ocsp-unknown", "good")].evidence["detail"]


def test_the_ocsp_budget_bounds_the_whole_run(ocsp_pki: OcspPki) -> None:
    with socket.socket() as listener:  # accepts, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        d = ocsp_pki.responder.directory
        mute = [_issue(d, f"mute{i}", "leaf", url) for i in range(MAX_PARALLEL + 2)]
        nodes = [node("n", *(record("n", m) for m in mute), record("n", ocsp_pki.ca, "trust"))]
        started = time.monotonic()
        found = scan(ocsp_pki, nodes, timeout=30, budget=1.0)
        took = time.monotonic() - started
    assert took < 5, f"{took:.1f}s: each request waits no longer than the budget left"
    assert set(found) == {("ocsp-unknown", m.name) for m in mute}
    details = {f.evidence["detail"] for f in found.values()}
    assert "not asked: the --ocsp-budget of 1s ran out" in details, details


def test_a_bad_allow_entry_is_bad_input() -> None:
    assert check_allowed(["ocsp.corp.example", "https://ocsp.corp.example:8443/ca1"])
    for bad in ("ftp://ocsp.corp.example", "http://", "ocsp.corp.example/path", "http://h:port/"):
        with pytest.raises(BadInput, match="--ocsp-allow"):
            check_allowed([bad])
