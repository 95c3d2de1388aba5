"""Detached Ed25519 signatures over a report's exact bytes, with keys made by the openssl CLI."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sweeper.errors import CorruptInput
from sweeper.pki.sign import load_signer, signature_path, verify_file
from sweeper.report.formats import run_file_names
from tests.fixtures.reports import FIXTURE
from tests.support import run

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl CLI to make keys")


def openssl(*args: str) -> None:
    subprocess.run([OPENSSL, *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("keys")
    private, public = folder / "report.pem", folder / "report.pub"
    openssl("genpkey", "-algorithm", "ed25519", "-out", str(private))
    openssl("pkey", "-in", str(private), "-pubout", "-out", str(public))
    return private, public


def signed_copy(tmp_path: Path, private: Path) -> Path:
    report = tmp_path / "run.json"
    shutil.copyfile(FIXTURE, report)
    signature_path(report).write_bytes(load_signer(private).sign(report.read_bytes()))
    return report


def test_signature_verifies_and_fails_after_a_one_byte_change(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    private, public = keys
    report = signed_copy(tmp_path, private)
    assert verify_file(report, public).valid
    data = bytearray(report.read_bytes())
    data[len(data) // 2] ^= 0x01
    report.write_bytes(bytes(data))
    assert not verify_file(report, public).valid


def test_openssl_verifies_our_signature(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    report = signed_copy(tmp_path, private)
    openssl(
        "pkeyutl", "-verify", "-pubin", "-inkey", str(public), "-rawin",
        "-in", str(report), "-sigfile", str(signature_path(report)),
    )  # fmt: skip


def test_a_signature_by_another_key_is_invalid(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    report = signed_copy(tmp_path, keys[0])
    other = tmp_path / "other.pem"
    openssl("genpkey", "-algorithm", "ed25519", "-out", str(other))
    openssl("pkey", "-in", str(other), "-pubout", "-out", str(tmp_path / "other.pub"))
    assert not verify_file(report, tmp_path / "other.pub").valid


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"], "not an Ed25519 key"),
        (["genpkey", "-algorithm", "ed25519", "-aes-128-cbc", "-pass", "pass:secret"], "encrypted"),
    ],
)
def test_unusable_signing_key_is_bad_input(tmp_path: Path, make: list[str], reason: str) -> None:
    key = tmp_path / "key.pem"
    openssl(*make, "-out", str(key))
    with pytest.raises(CorruptInput, match=reason):
        load_signer(key)


def test_signer_repr_never_shows_the_key(keys: tuple[Path, Path]) -> None:
    assert "Ed25519PrivateKey" not in repr(load_signer(keys[0]))


def test_verify_report_exits_0_valid_1_altered_2_bad_input(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    report = signed_copy(tmp_path, private)
    valid = run.sweeper("verify-report", str(report), "--pub", str(public), in_process=True)
    assert valid.returncode == 0 and "signature valid" in valid.stdout
    report.write_bytes(report.read_bytes() + b" ")
    altered = run.sweeper("verify-report", str(report), "--pub", str(public), in_process=True)
    assert altered.returncode == 1 and "does not match" in altered.stderr
    for args in (["--pub", str(private)], ["--pub", str(tmp_path / "absent.pub")]):
        bad = run.sweeper("verify-report", str(report), *args, in_process=True)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    signature_path(report).unlink()
    missing = run.sweeper("verify-report", str(report), "--pub", str(public), in_process=True)
    assert missing.returncode == 2 and "cannot read signature" in missing.stderr


UNREACHABLE = (
    '[defaults]\nknown_hosts = "/dev/null"\nclient_keys = []\n'
    '[[nodes]]\nname = "n1"\nhost = "127.0.0.1"\nport = 1\nprofile = "esxi"\n'
)


@pytest.fixture(scope="module")
def signed_original(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Path, Path]) -> Path:
    """A real scan's files in every format, signed (its one node unreachable: no sshd needed)."""
    folder = tmp_path_factory.mktemp("signed")
    (folder / "inv.toml").write_text(UNREACHABLE)
    done = run.sweeper(
        "scan", folder / "inv.toml", "--out", folder / "out", "--retries", "1", "--format", "all",
        "--sign", keys[0],
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    return folder


@pytest.fixture
def signed_run(tmp_path: Path, signed_original: Path) -> Path:
    """A copy of the signed run for one test to tamper with: its JSON (the inventory one folder up)."""
    shutil.copytree(signed_original, tmp_path, dirs_exist_ok=True)
    (report,) = (tmp_path / "out").glob("*.json")
    return report


def verify(report: Path, public: Path) -> subprocess.CompletedProcess[str]:
    return run.sweeper("verify-report", str(report), "--pub", str(public), in_process=True)


def test_sign_covers_every_file_of_the_run_and_openssl_and_sha256sum_agree(
    signed_run: Path, keys: tuple[Path, Path]
) -> None:
    folder, stem = signed_run.parent, signed_run.name.removesuffix(".json")
    manifest = folder / f"{stem}.sha256sums"
    openssl("pkeyutl", "-verify", "-pubin", "-inkey", str(keys[1]), "-rawin",
            "-in", str(manifest), "-sigfile", f"{manifest}.sig")  # fmt: skip
    check = ["sha256sum", "--strict", "-c", manifest.name]
    subprocess.run(check, cwd=folder, check=True, capture_output=True)
    listed = {line.split("  ", 1)[1] for line in manifest.read_text().splitlines()}
    assert listed == set(run_file_names(stem)) and len(listed) == 7, "the JSON and every format"
    done = verify(signed_run, keys[1])
    assert done.returncode == 0, done.stderr
    assert all(name in done.stdout for name in listed)


@pytest.mark.parametrize("suffix", [".html", ".md", ".findings.csv", ".junit.xml", ".sarif"])
def test_verify_report_finds_a_swapped_file_of_the_run(
    signed_run: Path, keys: tuple[Path, Path], suffix: str
) -> None:
    swapped = signed_run.with_name(signed_run.name.removesuffix(".json") + suffix)
    swapped.write_bytes(swapped.read_bytes() + b"\nall clear\n")
    done = verify(signed_run, keys[1])
    assert done.returncode == 1
    assert (
        done.stderr == f"sweeper: {swapped.name}: does not match the signed manifest: the file was altered\n"
    )


def test_verify_report_finds_a_missing_file_an_altered_manifest_and_a_file_nothing_signs(
    signed_run: Path, keys: tuple[Path, Path]
) -> None:
    stem = signed_run.name.removesuffix(".json")
    html, manifest = signed_run.with_name(f"{stem}.html"), signed_run.with_name(f"{stem}.sha256sums")
    html.unlink()
    assert "html: listed in the signed manifest but missing" in verify(signed_run, keys[1]).stderr
    html.write_text("<p>all clear</p>")
    manifest.write_text(manifest.read_text().replace(manifest.read_text()[:64], "0" * 64, 1))
    done = verify(signed_run, keys[1])
    assert done.returncode == 1 and "sha256sums: signature does not match" in done.stderr
    manifest.unlink()
    done = verify(signed_run, keys[1])
    assert done.returncode == 1 and f"{stem}.html: not covered by any signature" in done.stderr
    assert "signature valid" in done.stdout, "the JSON's own signature still holds"


def test_rotate_from_pub_refuses_an_unsigned_or_altered_report_before_anything(
    signed_run: Path, keys: tuple[Path, Path]
) -> None:
    """One line, exit 2, no journal and no connection: the findings a rotation acts on must be the
    ones the signing key vouched for."""
    inventory = signed_run.parent.parent / "inv.toml"

    def rotate(in_process: bool = True) -> subprocess.CompletedProcess[str]:
        return run.sweeper(
            "rotate", inventory, "--from", signed_run, "--from-pub", keys[1], "--yes", "--retries", "1",
            "--journal", signed_run.parent.parent / "journal", "--out", signed_run.parent.parent / "rot",
            in_process=in_process,
        )  # fmt: skip

    trusted = rotate(in_process=False)
    assert trusted.returncode == 3 and "preflight: 1 node(s) could not be swept" in trusted.stderr

    signed_run.write_bytes(signed_run.read_bytes().replace(b'"n1"', b'"n9"'))
    altered = rotate()
    assert altered.returncode == 2 and len(altered.stderr.strip().splitlines()) == 1, altered.stderr
    assert "signature" in altered.stderr and "does not match" in altered.stderr
    signature_path(signed_run).unlink()
    unsigned = rotate()
    assert unsigned.returncode == 2 and len(unsigned.stderr.strip().splitlines()) == 1, unsigned.stderr
    assert "unsigned" in unsigned.stderr
    assert not (signed_run.parent.parent / "journal").exists()


def test_report_renders_a_signed_run_only_when_it_was_not_altered(
    signed_run: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """`sweeper report` of a signed JSON: --pub checks the signature; without it, the run's manifest
    still catches an altered JSON, and an unaltered one renders with a loud "not checked" warning."""
    out = tmp_path / "rendered"
    checked = run.sweeper("report", signed_run, "--pub", keys[1], "--out", out, in_process=True)
    assert checked.returncode == 0 and checked.stderr == "", checked.stderr
    unchecked = run.sweeper("report", signed_run, "--out", out, in_process=True)
    assert unchecked.returncode == 0
    assert "was not checked (no --pub KEY)" in unchecked.stderr

    altered = signed_run.read_bytes().replace(b'"high": 0', b'"high": 00', 1)
    assert altered != signed_run.read_bytes()
    signed_run.write_bytes(altered)
    for extra in (["--pub", keys[1]], []):
        refused = run.sweeper("report", signed_run, "--out", tmp_path / "refused", *extra, in_process=True)
        assert refused.returncode == 1, refused.stderr
        assert len(refused.stderr.splitlines()) == 1 and "altered" in refused.stderr
    assert not (tmp_path / "refused").exists()

    unsigned = tmp_path / "unsigned.json"
    unsigned.write_bytes(altered)
    asked = run.sweeper("report", unsigned, "--pub", keys[1], in_process=True)
    assert asked.returncode == 2 and "unsigned" in asked.stderr
