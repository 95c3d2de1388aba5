"""The test harness itself, proven with plain asyncssh and openssl (no sweeper code).

Later end-to-end tests trust these servers, endpoints and certificates; if this file
fails, their failures mean nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import stat
import subprocess
import time
import tomllib
from pathlib import Path

import asyncssh
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.support.inventory import write_inventory
from tests.support.node_tree import LinuxNodeTree
from tests.support.openssl_pki import OpenSSLPki
from tests.support.processes import MARKER, RunProcesses, kill, left_running
from tests.support.sshd import (
    ClientKey,
    Endpoint,
    SilentListener,
    Sshd,
    SshdError,
    SshdFactory,
    write_known_hosts,
    wrong_host_key_line,
)


async def _connect(
    endpoint: Endpoint,
    client_key: ClientKey,
    known_hosts: asyncssh.SSHKnownHosts,
    connect_timeout: float = 5,
) -> asyncssh.SSHClientConnection:
    """Connect as sweeper will: loaded key and known_hosts, no ssh config, no agent."""
    return await asyncssh.connect(
        endpoint.host,
        endpoint.port,
        username="root",
        client_keys=[asyncssh.read_private_key(client_key.private_path)],
        known_hosts=known_hosts,
        config=None,
        agent_path=None,
        connect_timeout=connect_timeout,
    )


def _known_hosts(*lines: str) -> asyncssh.SSHKnownHosts:
    return asyncssh.import_known_hosts("".join(f"{line}\n" for line in lines))


def _openssl_verify(pki: OpenSSLPki, cert: Path, *options: str | Path) -> subprocess.CompletedProcess[str]:
    argv = ["openssl", "verify", "-CAfile", pki.root.cert, "-untrusted", pki.intermediate.cert]
    return subprocess.run([*map(str, argv), *map(str, options), str(cert)], capture_output=True, text=True)


# --- sshd ------------------------------------------------------------------------------


def test_sshd_runs_a_command_for_the_client_key(
    sshd_factory: SshdFactory, client_key: ClientKey, tmp_path: Path
) -> None:
    [sshd] = sshd_factory()
    known_hosts_file = write_known_hosts(tmp_path / "known_hosts", [sshd.host_key_line])

    async def echo_twice() -> list[str]:
        known_hosts = asyncssh.read_known_hosts(str(known_hosts_file))
        outputs = []
        for _ in range(2):
            async with await _connect(sshd.endpoint, client_key, known_hosts) as connection:
                outputs.append((await connection.run("echo ok", check=True)).stdout)
        return outputs

    assert asyncio.run(echo_twice()) == ["ok\n", "ok\n"]
    assert sshd.host.startswith("127.0.0.") and sshd.host != "127.0.0.1"
    assert sshd.host_key_line.startswith(f"[{sshd.host}]:{sshd.port} ssh-ed25519 AAAA")
    assert sshd.connection_count() == 2


def test_sshds_coexist_on_distinct_loopback_addresses(
    sshd_factory: SshdFactory, client_key: ClientKey
) -> None:
    sshds = sshd_factory(3)
    known_hosts = _known_hosts(*(sshd.host_key_line for sshd in sshds))

    async def server_side_address(sshd: Sshd) -> list[str]:
        async with await _connect(sshd.endpoint, client_key, known_hosts) as connection:
            return (await connection.run("echo $SSH_CONNECTION", check=True)).stdout.split()[2:]

    async def all_of_them() -> list[list[str]]:
        return list(await asyncio.gather(*(server_side_address(sshd) for sshd in sshds)))

    assert asyncio.run(all_of_them()) == [[sshd.host, str(sshd.port)] for sshd in sshds]
    assert len({sshd.host for sshd in sshds}) == 3
    assert [sshd.connection_count() for sshd in sshds] == [1, 1, 1]


def test_wrong_host_key_is_not_verifiable(sshd_factory: SshdFactory, client_key: ClientKey) -> None:
    [sshd] = sshd_factory()
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        asyncio.run(_connect(sshd.endpoint, client_key, _known_hosts(wrong_host_key_line(sshd))))
    assert sshd.connection_count() == 0


def test_refused_port_refuses(refused_port: Endpoint, client_key: ClientKey) -> None:
    with pytest.raises(ConnectionRefusedError):
        asyncio.run(_connect(refused_port, client_key, _known_hosts()))


def test_silent_listener_leaves_the_client_waiting_for_a_banner_until_its_connect_timeout(
    silent_listener: SilentListener, client_key: ClientKey
) -> None:
    async def connect() -> BaseException | None:
        attempt = asyncio.create_task(
            _connect(silent_listener.endpoint, client_key, _known_hosts(), connect_timeout=0.5)
        )
        finished, _ = await asyncio.wait({attempt}, timeout=60)  # a hang guard, not a measure
        assert finished, "connect_timeout never ended the attempt"
        return attempt.exception()

    assert isinstance(asyncio.run(connect()), TimeoutError)
    silent_listener.wait_for_connections(1)  # TCP was up: it was the SSH banner that never came


# How a client sees a MaxStartups drop: sshd accepts and closes at once, so asyncssh
# reports ConnectionLost, or ConnectionResetError when the RST wins the race.
DROPPED = (asyncssh.ConnectionLost, ConnectionResetError)


def test_max_startups_drops_unauthenticated_connections_past_the_limit(
    sshd_factory: SshdFactory, client_key: ClientKey
) -> None:
    """With ``MaxStartups 1:100:1`` and one connection parked before kex, every other
    connect is dropped before auth; once the slot frees, connecting works again. This is
    what makes a retry-on-MaxStartups test meaningful."""
    [sshd] = sshd_factory(max_startups="1:100:1", login_grace_time=30)
    known_hosts = _known_hosts(sshd.host_key_line)

    async def twenty_at_once() -> list[BaseException | asyncssh.SSHClientConnection]:
        return await asyncio.gather(
            *(_connect(sshd.endpoint, client_key, known_hosts) for _ in range(20)),
            return_exceptions=True,
        )

    async def connect_with_retries() -> str:
        for _ in range(50):
            try:
                async with await _connect(sshd.endpoint, client_key, known_hosts) as connection:
                    return (await connection.run("echo ok", check=True)).stdout
            except DROPPED:
                await asyncio.sleep(0.02)
        raise AssertionError("sshd kept dropping connections after the slot was freed")

    with socket.create_connection((sshd.host, sshd.port)) as parked:
        assert parked.recv(64).startswith(b"SSH-2.0-")  # accepted: holds the one pre-auth slot
        results = asyncio.run(twenty_at_once())
    assert all(isinstance(result, DROPPED) for result in results), results
    assert sshd.dropped_count() == 20
    assert sshd.connection_count() == 0

    assert asyncio.run(connect_with_retries()) == "ok\n"
    assert sshd.connection_count() == 1


def test_sshd_that_cannot_start_reports_its_log(tmp_path: Path, client_key: ClientKey) -> None:
    sshd = Sshd(tmp_path / "bad", [client_key.public_line], max_startups="not-a-number")
    with pytest.raises(SshdError, match="MaxStartups"):
        sshd.start()
    assert sshd.pid is None


def test_sshd_sessions_carry_the_test_run_marker(sshd_factory: SshdFactory, client_key: ClientKey) -> None:
    [sshd] = sshd_factory()

    async def marker() -> str:
        async with await _connect(sshd.endpoint, client_key, _known_hosts(sshd.host_key_line)) as connection:
            return (await connection.run(f"echo ${MARKER}", check=True)).stdout

    assert asyncio.run(marker()) == f"{os.getpid()}\n"


# --- processes -------------------------------------------------------------------------


def test_a_process_the_test_started_is_found_after_its_parent_is_gone_and_can_be_killed() -> None:
    processes = RunProcesses()
    before = processes.alive()
    subprocess.run(["sh", "-c", "setsid sleep 600 >/dev/null 2>&1 &"], check=True)  # adopted by init at once
    deadline = time.monotonic() + 5
    while not (started := processes.alive() - before) and time.monotonic() < deadline:
        time.sleep(0.01)  # on a loaded machine the background child may not be running yet
    (orphan,) = started
    assert left_running({orphan}, hang_guard=0.2) == {orphan}, "it keeps running"
    kill({orphan})
    assert left_running({orphan}) == set()


# --- OpenSSL PKI -----------------------------------------------------------------------


def test_openssl_pki_chains_and_the_revoked_leaf_fails_crl_check(openssl_pki: OpenSSLPki) -> None:
    pki = openssl_pki
    crl_check = ("-crl_check", "-CRLfile", pki.crl)
    for good in (pki.leaf_rsa, pki.leaf_ec, pki.weak_rsa1024, pki.sha1_signed):
        result = _openssl_verify(pki, good.cert, *crl_check)
        assert result.returncode == 0, result.stdout + result.stderr
    all_crls = ("-crl_check_all", "-CRLfile", pki.crl, "-CRLfile", pki.root_crl)
    assert _openssl_verify(pki, pki.leaf_rsa.cert, *all_crls).returncode == 0

    assert _openssl_verify(pki, pki.revoked.cert).returncode == 0  # fine without a CRL
    revoked = _openssl_verify(pki, pki.revoked.cert, *crl_check)
    assert revoked.returncode != 0
    assert "certificate revoked" in revoked.stdout + revoked.stderr
    expired = _openssl_verify(pki, pki.expired.cert)
    assert "certificate has expired" in expired.stdout + expired.stderr


def test_openssl_pki_material_is_what_its_names_say(openssl_pki: OpenSSLPki) -> None:
    """Checked with cryptography, independently of the openssl CLI that made it."""
    pki = openssl_pki
    certs = {name: x509.load_pem_x509_certificate(c.cert.read_bytes()) for name, c in pki.certs.items()}
    for name, made in pki.certs.items():
        cert = certs[name]
        assert made.sha256 == cert.fingerprint(hashes.SHA256()).hex()
        assert made.serial == cert.serial_number
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert made.spki_sha256 == hashlib.sha256(spki).hexdigest()
        assert x509.load_der_x509_certificate(made.der.read_bytes()) == cert
        assert serialization.load_pem_private_key(made.key.read_bytes(), None).public_key() == (
            cert.public_key()
        )
    assert len(set(pki.fingerprints.values())) == len(pki.certs)
    assert len({made.spki_sha256 for made in pki.certs.values()}) == len(pki.certs)  # no key reuse

    sans = certs["leaf_rsa"].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["web1.test", "localhost"]
    leaf_rsa_key = certs["leaf_rsa"].public_key()
    assert isinstance(leaf_rsa_key, rsa.RSAPublicKey) and leaf_rsa_key.key_size == 2048
    leaf_ec_key = certs["leaf_ec"].public_key()
    assert isinstance(leaf_ec_key, ec.EllipticCurvePublicKey)
    assert isinstance(leaf_ec_key.curve, ec.SECP256R1)
    weak_key = certs["weak_rsa1024"].public_key()
    assert isinstance(weak_key, rsa.RSAPublicKey) and weak_key.key_size == 1024
    assert isinstance(certs["sha1_signed"].signature_hash_algorithm, hashes.SHA1)
    assert certs["expired"].not_valid_after_utc.year == 2021
    assert certs["intermediate"].issuer == certs["root"].subject
    assert certs["leaf_rsa"].issuer == certs["intermediate"].subject

    crl = x509.load_der_x509_crl(pki.crl_der.read_bytes())
    assert [entry.serial_number for entry in crl] == [pki.revoked.serial]
    intermediate_key = certs["intermediate"].public_key()
    assert isinstance(intermediate_key, rsa.RSAPublicKey)
    assert crl.is_signature_valid(intermediate_key)


def _sha256s(pem_file: Path) -> list[str]:
    return [
        c.fingerprint(hashes.SHA256()).hex() for c in x509.load_pem_x509_certificates(pem_file.read_bytes())
    ]


def test_crlf_bundle_and_chain_hold_the_cas(openssl_pki: OpenSSLPki) -> None:
    pki = openssl_pki
    raw = pki.bundle_crlf.read_bytes()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r\nsubject=" in raw and raw.startswith(b"# ")
    assert _sha256s(pki.bundle_crlf) == [pki.root.sha256, pki.intermediate.sha256]
    assert _sha256s(pki.chain) == [pki.intermediate.sha256, pki.root.sha256]


# --- node tree and inventory -----------------------------------------------------------


def test_linux_node_tree_lays_files_under_its_root(
    linux_node_tree: LinuxNodeTree, openssl_pki: OpenSSLPki
) -> None:
    tree = linux_node_tree
    assert tree.host_path(tree.cert).read_bytes() == openssl_pki.leaf_rsa.cert.read_bytes()
    assert stat.S_IMODE(tree.host_path(tree.key).stat().st_mode) == 0o600
    assert tree.host_path(tree.trust_bundle).read_bytes() == openssl_pki.bundle_crlf.read_bytes()
    assert sorted(p.name for p in tree.host_path(tree.crl_dir).iterdir()) == [
        "intermediate.crl.pem",
        "root.crl.pem",
    ]
    for store in tree.stores:
        for key in ("cert", "key", "path"):
            if key in store:
                assert tree.host_path(store[key]).exists()


def test_write_inventory_round_trips_through_tomllib(tmp_path: Path, linux_node_tree: LinuxNodeTree) -> None:
    defaults = {
        "user": "root",
        "known_hosts": tmp_path / "known_hosts",
        "client_keys": ["/keys/id_ed25519"],
        "connect_timeout": 2.5,
    }
    nodes = [
        {
            "name": 'web "1"\\',
            "host": "127.0.0.9",
            "port": 40022,
            "profile": "linux",
            "root": str(linux_node_tree.root),
            "tags": ["site-a", "ünïcode\x7f"],
            "restart": None,
            "stores": linux_node_tree.stores,
        },
        {"name": "bare", "host": "127.0.0.10"},
    ]
    path = write_inventory(tmp_path / "inventory.toml", nodes, defaults)
    loaded = tomllib.loads(path.read_text())

    assert loaded["defaults"] == {**defaults, "known_hosts": str(tmp_path / "known_hosts")}
    assert loaded["nodes"][0] == {k: v for k, v in nodes[0].items() if v is not None}
    assert loaded["nodes"][1] == nodes[1]
    with pytest.raises(TypeError):
        write_inventory(tmp_path / "bad.toml", [{"name": "x", "nested": {"a": 1}}], {})
