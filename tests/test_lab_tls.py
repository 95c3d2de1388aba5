"""The lab's TLS endpoints: each node serves the certificate it loaded, and only its restart command
makes it load the files again, so a rotation's TLS check proves the restart ran."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import ssl
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from cryptography import x509

from sweeper.lab import LabHandle, start_lab
from sweeper.model import Profile
from sweeper.pki import issue
from sweeper.platforms import default_restart

MACHINE_CERT = "var/lib/vmware/vmafd/vecs/MACHINE_SSL_CERT/__MACHINE_CERT"
IDENTITY = {
    "linux": ("etc/pki/tls/certs/server.crt", "etc/pki/tls/private/server.key"),
    "esxi": ("etc/vmware/ssl/rui.crt", "etc/vmware/ssl/rui.key"),
    "vcsa": (f"{MACHINE_CERT}/cert.pem", f"{MACHINE_CERT}/key.pem"),
}
# Commands of each profile that must *not* reload: a backup, a stop, a status query.
NOT_A_RESTART = {
    "linux": "{root}/usr/bin/systemctl status httpd",
    "esxi": "{root}/bin/auto-backup.sh && {root}/etc/init.d/vpxa restart",
    "vcsa": "{root}/usr/bin/service-control --stop --all",
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with start_lab(tmp_path_factory.mktemp("lab"), nodes=6) as handle:
        yield handle


@pytest.fixture(scope="module")
def nodes(lab: LabHandle) -> list[dict[str, Any]]:
    return tomllib.loads(lab.inventory.read_text())["nodes"]


def served(lab: LabHandle, name: str) -> str:
    """SHA-256 of the certificate a plain handshake (no SNI, nothing verified) is shown."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", lab.tls_ports[name]), timeout=5)
    with raw, context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def on_disk(path: Path) -> str:
    return issue.fingerprint(x509.load_pem_x509_certificate(path.read_bytes()))


def replace(path: Path, data: bytes) -> None:
    """As a rotation installs a file: beside it, then renamed over it."""
    tmp = path.with_name(f".{path.name}.new")
    tmp.write_bytes(data)
    os.chmod(tmp, path.stat().st_mode & 0o777)
    os.replace(tmp, path)


def new_identity(name: str) -> tuple[bytes, bytes, str]:
    """A fresh self-issued leaf for `name`: (cert PEM, key PEM, SHA-256)."""
    key = issue.generate_key("ec-p256")
    now = datetime.now(UTC)
    ca = issue.make_root("TLS test CA", key)
    cert = issue.issue_leaf(
        ca, key, name, [name], key.public_key(), now - timedelta(days=1), now + timedelta(days=30)
    )
    return issue.cert_pem(cert), issue.key_pem(key), issue.fingerprint(cert)


def ssh(lab: LabHandle, name: str, command: str) -> asyncssh.SSHCompletedProcess:
    async def run() -> asyncssh.SSHCompletedProcess:
        async with asyncssh.connect(
            "127.0.0.1",
            lab.ports[name],
            username="root",
            known_hosts=str(lab.known_hosts),
            client_keys=[str(lab.client_key)],
            config=None,
            agent_path=None,
        ) as conn:
            return await conn.run(command)

    return asyncio.run(run())


def restart_command(node: dict[str, Any]) -> str:
    """What `sweeper rotate` runs: the inventory's `restart`, else its profile's default."""
    return node.get("restart") or default_restart(Profile(node["profile"]), node["root"]) or ""


def first(nodes: list[dict[str, Any]], profile: str, index: int = 0) -> dict[str, Any]:
    return [n for n in nodes if n["profile"] == profile][index]


def test_every_node_has_a_tls_port_serving_its_identity(lab: LabHandle, nodes: list[dict[str, Any]]) -> None:
    assert {n["name"]: n["tls_port"] for n in nodes} == lab.tls_ports
    assert len(set(lab.tls_ports.values()) | set(lab.ports.values())) == 2 * len(nodes)
    for node in nodes:  # the planted RSA-1024 and SHA-1 leaves included
        cert = Path(node["root"]) / IDENTITY[node["profile"]][0]
        assert served(lab, node["name"]) == on_disk(cert), node["name"]


@pytest.mark.parametrize("profile", ["linux", "esxi", "vcsa"])
def test_new_files_are_served_only_after_the_restart_command(
    lab: LabHandle, nodes: list[dict[str, Any]], profile: str
) -> None:
    node = first(nodes, profile)
    name, root = node["name"], Path(node["root"])
    cert, key = (root / p for p in IDENTITY[profile])
    before = served(lab, name)
    assert before == on_disk(cert)

    cert_pem, key_pem, after = new_identity(name)
    replace(key, key_pem)
    replace(cert, cert_pem)
    assert served(lab, name) == before, "a service keeps what it loaded until it restarts"
    assert ssh(lab, name, NOT_A_RESTART[profile].format(root=root)).exit_status == 0
    assert served(lab, name) == before
    if profile == "vcsa":  # a VECS-only change: vpxd refuses to start, as on a real vCenter
        refused = ssh(lab, name, restart_command(node))
        assert refused.exit_status == 1 and served(lab, name) == before
        assert "com.vmware.vsan.health" in refused.stderr and "MACHINE_SSL_CERT" in refused.stderr
        assert ssh(lab, name, vsan_health_update(root, cert)).exit_status == 0

    assert ssh(lab, name, restart_command(node)).exit_status == 0
    assert served(lab, name) == after


def vsan_health_update(root: Path, cert: Path) -> str:
    """The psql command that points VCDB's vsan.health thumbprint at `cert`, as vCert writes it."""
    digest = issue.fingerprint(x509.load_pem_x509_certificate(cert.read_bytes()), "sha1").upper()
    value = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    sql = f"UPDATE vpx_ext SET thumbprint = '{value}' WHERE ext_id = 'com.vmware.vsan.health'"
    return f'{root}/opt/vmware/vpostgres/current/bin/psql -d VCDB -U postgres -c "{sql}"'


def test_a_failed_reload_keeps_the_previous_certificate_and_says_why(
    lab: LabHandle, nodes: list[dict[str, Any]]
) -> None:
    node = first(nodes, "linux", index=-1)
    name, root = node["name"], Path(node["root"])
    cert, key = (root / p for p in IDENTITY["linux"])
    before = served(lab, name)
    cert_pem, _, _ = new_identity(name)
    _, other_key, _ = new_identity(name)
    replace(key, other_key)
    replace(cert, cert_pem)

    assert ssh(lab, name, restart_command(node)).exit_status == 0
    assert served(lab, name) == before
    log = (root / "var/log/lab-services.log").read_text().splitlines()
    assert log[-1].startswith("lab-tls reload failed, still serving the previous certificate: ")

    cert_pem, key_pem, after = new_identity(name)
    replace(key, key_pem)
    replace(cert, cert_pem)
    assert ssh(lab, name, restart_command(node)).exit_status == 0
    assert served(lab, name) == after
