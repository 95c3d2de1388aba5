"""PEM blocks as nodes hold them (surrounding text, CRLF, unmatched and nested markers, headers), and
what a certificate's facts say of its key."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sweeper.pki.parse import ParseError, PemBlock, certificate_facts, pem_blocks
from tests.support.openssl_pki import OpenSSLPki, openssl


def test_blocks_are_found_among_any_text_with_crlf_and_spaces_around_the_body() -> None:
    data = (
        b"subject=CN=x\r\n-----BEGIN X509 CRL----- \r\n QUJD \r\n-----END X509 CRL-----tail"
        b"-----BEGIN CERTIFICATE-----\nQU\nJD\n-----END CERTIFICATE-----\n"
    )
    assert pem_blocks(data) == [PemBlock("X509 CRL", b"ABC"), PemBlock("CERTIFICATE", b"ABC")]


def test_a_begin_without_its_end_is_skipped_and_a_later_block_still_read() -> None:
    assert pem_blocks(b"-----BEGIN CERTIFICATE-----\nQUJD\n") == []
    data = b"-----BEGIN A-----\nQUJD\n-----END B----- -----BEGIN B-----QUJD-----END B-----"
    assert pem_blocks(data) == [PemBlock("B", b"ABC")]
    assert pem_blocks(b"-----BEGIN A-----BEGIN B-----\nQUJD\n-----END B-----") == [PemBlock("B", b"ABC")]


def test_a_block_ends_at_the_first_end_of_its_own_label() -> None:
    data = b"-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\nREVG\n-----END CERTIFICATE-----"
    assert pem_blocks(data) == [PemBlock("CERTIFICATE", b"ABC")]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            b"-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\nQUJD\n-----END CERTIFICATE-----",
            "encrypted",
        ),
        (b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----", "not valid base64"),
        (
            b"-----BEGIN CERTIFICATE-----\nQUJD\n-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----",
            "base64",
        ),
    ],
)
def test_headed_or_broken_bodies_are_one_line_errors(data: bytes, problem: str) -> None:
    with pytest.raises(ParseError, match=problem):
        pem_blocks(data)


def test_blocks_after_a_begin_without_end_are_found_as_before() -> None:
    """Past the first unmatched BEGIN, ENDs come from an index: same blocks as `bytes.find` gave,
    overlapping END lines included."""
    data = b"-----BEGIN X-----\n-----BEGIN A-----QUJD-----END A-----END B-----BEGIN B-----REVG-----END B-----"
    assert pem_blocks(data) == [PemBlock("A", b"ABC"), PemBlock("B", b"DEF")]


def test_a_file_of_begin_lines_alone_is_read_in_linear_time() -> None:
    """Each BEGIN without an END read to the end of the data: 170,000 of them (3 MiB of the 64 MiB
    a node may send) took minutes. Bounded generously: a hostile node must not stall the sweep."""
    data = b"".join(b"-----BEGIN A%d-----\n" % (i % 1000) for i in range(170_000)) + b"-----BEGIN A-----"
    started = time.perf_counter()
    assert pem_blocks(data + b"QUJD-----END A-----") == [PemBlock("A", b"ABC")]
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    ("algorithm", "described"),
    [("X25519", ("X25519", 256)), ("X448", ("X448", 448)), ("ED448", ("Ed448", 456))],
)
def test_a_certified_key_of_any_type_cryptography_loads_is_named_and_sized(
    tmp_path: Path, openssl_pki: OpenSSLPki, algorithm: str, described: tuple[str, int]
) -> None:
    """X25519 and X448 keys (certified for key agreement, `-force_pubkey`) were named after their
    Python class, `X448PublicKey`, with 0 bits."""
    key, public = tmp_path / "k.pem", tmp_path / "pub.pem"
    openssl("genpkey", "-algorithm", algorithm, "-out", key)
    openssl("pkey", "-in", key, "-pubout", "-out", public)
    made = openssl(
        "x509", "-new", "-subj", "/CN=agreement.test", "-force_pubkey", public, "-days", "1",
        "-CA", openssl_pki.intermediate.cert, "-CAkey", openssl_pki.intermediate.key, "-outform", "DER",
    )  # fmt: skip
    facts = certificate_facts(made)
    assert (facts.key_type, facts.key_bits) == described
