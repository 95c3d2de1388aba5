"""Loading the incident's inputs: IOC files, CRLs, CA files, expected roots, baselines, blocklists."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sweeper.errors import BadInput, CorruptInput
from sweeper.incident import load_incident, load_iocs
from tests.support import run
from tests.support.openssl_pki import OpenSSLPki, openssl


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_every_ioc_form_is_read_with_its_file_and_line(tmp_path: Path, openssl_pki: OpenSSLPki) -> None:
    public = openssl("pkey", "-in", openssl_pki.leaf_ec.key, "-pubout").decode()
    iocs = write(
        tmp_path / "iocs.txt",
        "# comment\n\n"
        + openssl_pki.root.sha256.upper()
        + "\n"
        + f"spki:{openssl_pki.leaf_rsa.spki_sha256}\n"
        + f"serial:00:10:02 issuer:{openssl_pki.intermediate.sha256}   # revoked leaf\n"
        + "serial:0x1F\n"
        + openssl_pki.expired.cert.read_text()
        + public
        + openssl_pki.weak_rsa1024.key.read_text(),
    )
    found = [(i.kind, i.value, i.issuer, i.source.rsplit(":", 1)[1]) for i in load_iocs(iocs)]
    assert found[:4] == [
        ("sha256", openssl_pki.root.sha256, None, "3"),
        ("spki", openssl_pki.leaf_rsa.spki_sha256, None, "4"),
        ("serial", "1002", openssl_pki.intermediate.sha256, "5"),
        ("serial", "1f", None, "6"),
    ]
    assert found[4][:2] == ("sha256", openssl_pki.expired.sha256) and found[5][:2] == (
        "spki",
        openssl_pki.expired.spki_sha256,
    )
    assert found[6][:2] == ("spki", openssl_pki.leaf_ec.spki_sha256)
    assert found[7][:2] == ("spki", openssl_pki.weak_rsa1024.spki_sha256)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("aa" * 32 + "\nnot-a-fingerprint\n", 2),
        ("spki:abc\n", 1),
        ("serial:xyz\n", 1),
        ("serial:10 owner:" + "aa" * 32 + "\n", 1),
        ("# ok\n-----BEGIN CERTIFICATE-----\nMIIB\n", 2),
        ("-----BEGIN X509 CRL-----\nMIIB\n-----END X509 CRL-----\n", 1),
        ("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", 1),
    ],
)
def test_a_malformed_ioc_line_is_an_error_naming_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    path = write(tmp_path / "bad.txt", text)
    with pytest.raises(CorruptInput) as caught:
        load_iocs(path)
    assert caught.value.path == f"{path}:{line}"


def test_an_encrypted_private_key_in_an_ioc_file_is_refused_without_echoing_it(
    tmp_path: Path, openssl_pki: OpenSSLPki
) -> None:
    locked = openssl("pkey", "-in", openssl_pki.leaf_ec.key, "-aes256", "-passout", "pass:x").decode()
    path = write(tmp_path / "locked.txt", locked)
    with pytest.raises(CorruptInput) as caught:
        load_iocs(path)
    assert locked.splitlines()[1][:30] not in str(caught.value)


def test_crls_load_from_pem_der_and_folders_with_their_issuers(
    tmp_path: Path, openssl_pki: OpenSSLPki
) -> None:
    folder = tmp_path / "crls"
    folder.mkdir()
    shutil.copy(openssl_pki.crl_der, folder / "intermediate.crl")
    shutil.copy(openssl_pki.intermediate.cert, folder / "intermediate.pem")
    incident = load_incident(crls=[openssl_pki.root_crl, folder], cas=[openssl_pki.root.der])
    assert [c.source for c in incident.crls] == [str(openssl_pki.root_crl), str(folder / "intermediate.crl")]
    assert [c.source for c in incident.issuers] == [
        str(folder / "intermediate.pem"),
        str(openssl_pki.root.der),
    ]


@pytest.mark.parametrize(
    "content", [b"", b"garbage", b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"]
)
def test_an_unreadable_crl_input_is_corrupt_input(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.crl"
    path.write_bytes(content)
    with pytest.raises(CorruptInput):
        load_incident(crls=[path])


def test_a_certificate_only_file_is_not_a_crl(openssl_pki: OpenSSLPki) -> None:
    with pytest.raises(CorruptInput):
        load_incident(crls=[openssl_pki.root.cert])


def test_missing_files_and_wrong_kinds_of_certificate_input_are_corrupt(tmp_path: Path) -> None:
    for option in ("compromised_cas", "cas", "iocs", "crls"):
        with pytest.raises(CorruptInput):
            load_incident(**{option: [tmp_path / "missing.pem"]})
    with pytest.raises(CorruptInput):
        load_incident(compromised_cas=[write(tmp_path / "x.pem", "no certificate here")])


def test_expected_roots_and_baseline_exclude_each_other(tmp_path: Path, openssl_pki: OpenSSLPki) -> None:
    with pytest.raises(BadInput):
        load_incident(expected_roots=openssl_pki.root.cert, baseline=tmp_path / "r.json")


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        json.dumps({"schema": "other/1", "nodes": []}),
        json.dumps({"nodes": [{"certificates": [{"role": "trust", "sha256": "xyz"}]}]}),
        json.dumps({"nodes": [{"certificates": [{"role": "leaf", "sha256": "aa" * 32}]}]}),
    ],
)
def test_a_baseline_that_is_not_a_sweeper_report_with_anchors_is_corrupt(tmp_path: Path, text: str) -> None:
    with pytest.raises(CorruptInput):
        load_incident(baseline=write(tmp_path / "r.json", text))


def test_a_file_that_is_not_a_badkeys_blocklist_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "blocklist.dat"
    path.write_bytes(b"x" * 17)
    with pytest.raises(CorruptInput):
        load_incident(badkeys_blocklist=path)


@pytest.mark.parametrize(
    ("option", "content", "where"),
    [
        ("--ioc", "# ok\nnonsense\n", ":2: "),
        ("--crl", "not a crl", ": "),
        ("--badkeys-blocklist", "x" * 17, ": "),
        ("--baseline", "{", ": not JSON"),
    ],
)
def test_scan_with_bad_incident_input_exits_2_with_one_line_naming_the_file(
    tmp_path: Path, option: str, content: str, where: str
) -> None:
    inventory = write(tmp_path / "inv.toml", '[[nodes]]\nname = "n"\nhost = "127.0.0.1"\nprofile = "esxi"\n')
    given = write(tmp_path / "input", content)
    done = run.sweeper("scan", inventory, option, given, "--out", tmp_path / "r")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(f"sweeper: {given}{where}")
    assert not (tmp_path / "r").exists(), "no node is contacted and no report written"
