"""The lab: a real multi-node SSH fleet on 127.0.0.1, its VMware stand-ins and its incident."""

from __future__ import annotations

import asyncio
import json
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
from cryptography import x509

from sweeper.lab import LabError, LabHandle, build_lab, start_lab, stop_lab
from sweeper.lab.control import group_members
from sweeper.lab.incident import PLANTS
from sweeper.lab.plan import plan_fleet
from sweeper.pki import issue

VECS = "usr/lib/vmware-vmafd/bin/vecs-cli"
DIR_CLI = "usr/lib/vmware-vmafd/bin/dir-cli"
NOT_FOUND = b"vecs-cli failed. Error 4312: Operation failed with error ERROR_OBJECT_NOT_FOUND (4312) \n"
INVALID = b"vecs-cli failed. Error 87: Operation failed with error ERROR_INVALID_PARAMETER (87) \n"
LOGON_FAILURE = b"dir-cli failed. Error 1326: Operation failed with error ERROR_LOGON_FAILURE (1326) \n"
# Captured from the stand-in and checked against VMware's vecs-cli source (lightwave).
SECRET_STORE_LISTING = (
    b"Number of entries in store :\t1\n"
    b"Alias :\tlocation_password_default\n"
    b"Entry type :\tSecret Key\n"
    b"Certificate :\t\n"
    b"\n"
)
MACHINE_SSL_LISTING = (  # with certificate-manager's CSR entry, as an appliance it was run on keeps it
    b"Number of entries in store :\t2\n"
    b"Alias :\t__MACHINE_CERT\n"
    b"Entry type :\tPrivate Key\n"
    b"Certificate :\t%(pem)s\n"
    b"Alias :\t__MACHINE_CSR\n"
    b"Entry type :\tPrivate Key\n"
    b"Certificate :\t%(csr)s\n"
)
STORES = [
    "MACHINE_SSL_CERT", "TRUSTED_ROOTS", "TRUSTED_ROOT_CRLS", "machine", "vsphere-webclient", "vpxd",
    "vpxd-extension", "hvc", "data-encipherment", "APPLMGMT_PASSWORD", "SMS", "wcp", "BACKUP_STORE",
    "BACKUP_STORE_H5C", "STS_INTERNAL_SSL_CERT",
]  # fmt: skip


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with start_lab(tmp_path_factory.mktemp("lab"), nodes=6) as handle:
        yield handle


@pytest.fixture(scope="module")
def manifest(lab: LabHandle) -> dict:
    return json.loads((lab.dir / "incident" / "manifest.json").read_text())


def node(lab: LabHandle, profile: str) -> str:
    return next(n.name for n in plan_fleet(lab.nodes) if n.profile == profile)


def root(lab: LabHandle, name: str) -> Path:
    return lab.dir / "nodes" / name


async def _run(
    lab: LabHandle, name: str, command: str, input: bytes | None = None, known_hosts: object = None
) -> asyncssh.SSHCompletedProcess:
    async with asyncssh.connect(
        "127.0.0.1",
        lab.ports[name],
        username="anyone",
        known_hosts=known_hosts or str(lab.known_hosts),
        client_keys=[str(lab.client_key)],
        config=None,
        agent_path=None,
    ) as conn:
        return await conn.run(command, input=input, encoding=None)


def ssh(lab: LabHandle, name: str, command: str, input: bytes | None = None) -> asyncssh.SSHCompletedProcess:
    return asyncio.run(_run(lab, name, command, input))


def vecs(lab: LabHandle, name: str, args: str) -> asyncssh.SSHCompletedProcess:
    return ssh(lab, name, f"{root(lab, name)}/{VECS} {args}")


def dir_cli(
    lab: LabHandle, name: str, args: str, password: str | None = None
) -> asyncssh.SSHCompletedProcess:
    login = f"--login administrator@vsphere.local --password '{password or lab.sso_password}'"
    return ssh(lab, name, f"{root(lab, name)}/{DIR_CLI} {args} {login}")


def certs_in(path: Path) -> list[x509.Certificate]:
    data = path.read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificates(data)
    return [x509.load_der_x509_certificate(data)]


# --- the plan: any size from five holds every profile and every plant -------------------


@pytest.mark.parametrize("size", [5, 6, 7, 9, 13, 40, 200])
def test_every_fleet_size_from_five_holds_each_profile_and_plant(size: int) -> None:
    plan = plan_fleet(size, seed=3)
    assert len(plan) == size
    assert {n.profile for n in plan} == {"vcsa", "esxi", "linux"}
    leaf_plants = [s.plant for n in plan for s in n.leaves if s.plant] + [
        n.machine_ssl_plant for n in plan if n.machine_ssl_plant
    ]
    expected_leaf_plants = {p for p in PLANTS if p not in ("compromised-root", "rogue-root")}
    assert set(leaf_plants) == expected_leaf_plants
    reused = [n.name for n in plan for s in n.leaves if s.plant == "reused-key"]
    assert len(reused) == 2 and len(set(reused)) == 2
    assert sum(n.rogue_anchor for n in plan) == 1
    assert {n.profile for n in plan for s in n.leaves if s.plant == "compromised-leaf"} == {"esxi", "linux"}


def test_plan_is_deterministic_in_size_and_seed() -> None:
    assert plan_fleet(40, seed=7) == plan_fleet(40, seed=7)
    assert plan_fleet(40, seed=7) != plan_fleet(40, seed=8)


def test_a_lab_smaller_than_five_nodes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LabError):
        build_lab(tmp_path / "lab", nodes=4)


def test_a_foreign_directory_is_never_wiped(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(LabError):
        build_lab(tmp_path, nodes=5)
    assert (tmp_path / "thesis.tex").read_text() == "precious"


# --- the incident -------------------------------------------------------------------------


def test_manifest_places_every_plant_and_lists_its_findings(manifest: dict) -> None:
    plants = {p["plant"]: p for p in manifest["plants"]}
    assert set(plants) == set(PLANTS)
    for plant in plants.values():
        assert plant["locations"], plant["plant"]
        assert plant["rules"] == list(PLANTS[plant["plant"]][0])
    compromised = plants["compromised-leaf"]["locations"]
    assert {loc["profile"] for loc in compromised} == {"vcsa", "esxi", "linux"}
    reused = plants["reused-key"]["locations"]
    assert len({loc["node"] for loc in reused}) == 2
    rules = {f["rule"] for f in manifest["expected_findings"]}
    assert rules == {rule for rules, _ in PLANTS.values() for rule in rules}


def test_each_file_plant_is_on_disk_where_the_manifest_says(lab: LabHandle, manifest: dict) -> None:
    for plant in manifest["plants"]:
        for loc in plant["locations"]:
            store = loc["store"]
            base = root(lab, loc["node"])
            if store["kind"] == "pem":
                cert = certs_in(base / store["cert"].lstrip("/"))[0]
            elif store["kind"] == "bundle":
                cert = certs_in(base / store["path"].lstrip("/"))[loc["index"]]
            elif store["kind"] == "dir":
                cert = certs_in(base / store["path"].lstrip("/") / loc["entry"])[0]
            else:
                listing = vecs(
                    lab, loc["node"], f"entry getcert --store {store['store']} --alias {loc['entry']}"
                )
                cert = x509.load_pem_x509_certificate(listing.stdout)
            assert issue.fingerprint(cert) == loc["sha256"], (plant["plant"], loc)


def test_incident_files_name_the_compromised_ca_the_crl_and_the_iocs(lab: LabHandle, manifest: dict) -> None:
    incident = lab.dir / "incident"
    compromised = manifest["authorities"]["compromised"]
    assert issue.fingerprint(certs_in(incident / "compromised-ca.pem")[0]) == compromised["sha256"]
    expected = {issue.fingerprint(c) for c in certs_in(incident / "expected-roots.pem")}
    assert compromised["sha256"] in expected
    assert manifest["authorities"]["rogue"]["sha256"] not in expected
    corp = lab.dir / "corp.pem"
    corp.write_bytes(issue.cert_pem(certs_in(incident / "expected-roots.pem")[0]))
    crl = incident / "crl" / "corp-root.crl"
    checked = subprocess.run(
        ["openssl", "crl", "-in", str(crl), "-CAfile", str(corp), "-noout"], capture_output=True
    )
    assert b"verify OK" in checked.stdout + checked.stderr
    revoked = next(p for p in manifest["plants"] if p["plant"] == "revoked-leaf")["locations"][0]
    listing = subprocess.run(["openssl", "crl", "-in", str(crl), "-noout", "-text"], capture_output=True)
    assert revoked["serial"].upper() in listing.stdout.decode().replace("\n", "").upper()
    lines = [
        line for line in (incident / "ioc.txt").read_text().splitlines() if line and not line.startswith("#")
    ]
    assert [line.split(":")[0] for line in lines[1:]] == ["spki", "serial"]
    leaves = next(p for p in manifest["plants"] if p["plant"] == "compromised-leaf")["locations"]
    assert lines[0].replace(":", "") in {loc["sha256"] for loc in leaves}


def test_healthy_file_leaves_chain_to_an_anchor_on_their_node_and_keys_are_private(
    lab: LabHandle, manifest: dict
) -> None:
    planted = {(loc["node"], loc["store"].get("cert")) for p in manifest["plants"] for loc in p["locations"]}
    for spec in plan_fleet(lab.nodes):
        base = root(lab, spec.name)
        bundle = base / ("etc/vmware/ssl/castore.pem" if spec.profile == "esxi" else
                         "etc/pki/ca-trust/source/anchors/corp-bundle.pem")  # fmt: skip
        for leaf in spec.leaves:
            assert (base / leaf.key.lstrip("/")).stat().st_mode & 0o777 == 0o600
            if (spec.name, leaf.cert) in planted:
                continue
            verdict = subprocess.run(
                ["openssl", "verify", "-purpose", "sslserver", "-CAfile", str(bundle),
                 str(base / leaf.cert.lstrip("/"))],
                capture_output=True,
            )  # fmt: skip
            assert verdict.returncode == 0, (spec.name, leaf.cert, verdict.stderr)


# --- served over real SSH -----------------------------------------------------------------


def test_inventory_is_toml_with_the_documented_keys(lab: LabHandle) -> None:
    inventory = tomllib.loads(lab.inventory.read_text())
    defaults = inventory["defaults"]
    assert set(defaults) == {"user", "known_hosts", "client_keys", "connect_timeout"}
    assert defaults["client_keys"] == [str(lab.client_key)]
    nodes = {n["name"]: n for n in inventory["nodes"]}
    assert {name: n["port"] for name, n in nodes.items()} == lab.ports
    allowed = {"name", "host", "port", "tls_port", "profile", "tags", "root", "sso_user", "sso_password_env",
               "restart", "stores", "names"}  # fmt: skip
    for entry in nodes.values():
        assert set(entry) <= allowed and entry["host"] == "127.0.0.1"
        assert entry["names"] == [f"{entry['name']}.lab.sweeper.test", entry["name"]], "what its leaves name"
        assert Path(entry["root"]).is_dir()
        assert entry["profile"] in entry["tags"] and "lab" in entry["tags"]
        assert ("stores" in entry) == (entry["profile"] == "linux")
    vcsa = nodes[node(lab, "vcsa")]
    assert vcsa["sso_password_env"] == lab.sso_password_env
    for store in nodes[node(lab, "linux")]["stores"]:
        assert store["kind"] in {"pem", "bundle", "dir"} and store["role"] in {"leaf", "trust", "crl"}
    known = lab.known_hosts.read_text().splitlines()
    assert sorted(line.split()[0] for line in known) == sorted(f"[127.0.0.1]:{p}" for p in lab.ports.values())
    assert all(line.split()[1] == "ssh-ed25519" for line in known)
    assert oct(lab.dir.joinpath("lab.json").stat().st_mode & 0o777) == "0o600"


def test_a_command_runs_in_a_real_shell_with_status_and_stderr(lab: LabHandle) -> None:
    name = node(lab, "linux")
    result = ssh(lab, name, "cd etc/pki/tls/certs && cat server.crt; echo oops >&2; echo $LANG >&2; exit 3")
    assert result.stdout == (root(lab, name) / "etc/pki/tls/certs/server.crt").read_bytes()
    assert result.stderr == b"oops\nC\n"
    assert result.exit_status == 3


def test_stdin_reaches_the_command(lab: LabHandle) -> None:
    result = ssh(lab, node(lab, "esxi"), "wc -c", input=b"x" * 100_000)
    assert result.stdout.strip() == b"100000"


def test_esxi_service_commands_are_logged_stand_ins(lab: LabHandle) -> None:
    name = node(lab, "esxi")
    base = root(lab, name)
    result = ssh(lab, name, f"{base}/bin/auto-backup.sh && {base}/etc/init.d/hostd restart")
    assert result.exit_status == 0
    log = (base / "var/log/lab-services.log").read_text().splitlines()
    assert log[-2:] == ["auto-backup.sh ", "hostd restart"]


def test_a_wrong_host_key_is_rejected(lab: LabHandle) -> None:
    first, second = list(lab.ports)[:2]
    lines = lab.known_hosts.read_text().splitlines()
    second_key = next(line for line in lines if line.startswith(f"[127.0.0.1]:{lab.ports[second]} "))
    forged = asyncssh.import_known_hosts(f"[127.0.0.1]:{lab.ports[first]} {second_key.split(' ', 1)[1]}\n")
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        asyncio.run(_run(lab, first, "true", known_hosts=forged))


def test_an_unknown_client_key_is_refused(lab: LabHandle) -> None:
    async def attempt() -> None:
        stranger = asyncssh.generate_private_key("ssh-ed25519")
        async with asyncssh.connect(
            "127.0.0.1",
            lab.ports[node(lab, "linux")],
            username="root",
            known_hosts=str(lab.known_hosts),
            client_keys=[stranger],
            config=None,
            agent_path=None,
        ):
            pass

    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(attempt())


# --- the vecs-cli and dir-cli stand-ins ---------------------------------------------------


def test_vecs_cli_lists_the_vcenter_stores(lab: LabHandle) -> None:
    result = vecs(lab, node(lab, "vcsa"), "store list")
    assert result.exit_status == 0
    assert result.stdout.decode().splitlines() == STORES


def test_vecs_cli_entry_list_is_byte_exact(lab: LabHandle) -> None:
    name = node(lab, "vcsa")
    assert vecs(lab, name, "entry list --store APPLMGMT_PASSWORD").stdout == SECRET_STORE_LISTING
    store = root(lab, name) / "var/lib/vmware/vmafd/vecs/MACHINE_SSL_CERT"
    pem, csr = ((store / alias / "cert.pem").read_bytes() for alias in ("__MACHINE_CERT", "__MACHINE_CSR"))
    listing = vecs(lab, name, "entry list --store MACHINE_SSL_CERT").stdout
    assert listing == MACHINE_SSL_LISTING % {b"pem": pem, b"csr": csr}


def test_vecs_cli_getcert_and_getkey_return_a_matching_pair(lab: LabHandle) -> None:
    name = node(lab, "vcsa")
    cert = vecs(lab, name, "entry getcert --store vpxd --alias vpxd").stdout
    key = vecs(lab, name, "entry getkey --store vpxd --alias vpxd").stdout
    assert key.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    parsed = x509.load_pem_x509_certificate(cert)
    assert issue.load_key_pem(key).public_key() == parsed.public_key()


def test_vecs_cli_missing_store_fails_like_the_real_tool(lab: LabHandle) -> None:
    result = vecs(lab, node(lab, "vcsa"), "entry list --store NO_SUCH_STORE")
    assert (result.exit_status, result.stdout, result.stderr) == (4312 & 0xFF, b"", NOT_FOUND)


def test_vecs_cli_secret_key_has_no_certificate(lab: LabHandle) -> None:
    result = vecs(
        lab, node(lab, "vcsa"), "entry getcert --store APPLMGMT_PASSWORD --alias location_password_default"
    )
    assert result.exit_status == 87
    assert result.stderr == (
        b"Error: No certificates were found for entry [location_password_default] of type [Secret Key].\n"
        + INVALID
    )


def test_vecs_cli_unknown_verb_is_invalid_parameter(lab: LabHandle) -> None:
    result = vecs(lab, node(lab, "vcsa"), "entry frobnicate --store SMS")
    assert (result.exit_status, result.stderr) == (87, INVALID)
    assert result.stdout.startswith(b"Usage: vecs-cli")


def test_a_root_deleted_only_from_vecs_comes_back(lab: LabHandle, manifest: dict) -> None:
    name = node(lab, "vcsa")
    alias = issue.fingerprint(certs_in(lab.dir / "incident" / "compromised-ca.pem")[0], "sha1")
    deleted = vecs(lab, name, f"entry delete --store TRUSTED_ROOTS --alias {alias} -y")
    assert (
        deleted.stdout
        == f"Deleted entry with alias [{alias}] in store [TRUSTED_ROOTS] successfully\n ".encode()
    )
    assert alias.encode() in vecs(lab, name, "entry list --store TRUSTED_ROOTS --aliases").stdout


def test_a_root_unpublished_and_deleted_stays_gone_until_published(lab: LabHandle) -> None:
    name = node(lab, "vcsa")
    services = certs_in(lab.dir / "incident" / "expected-roots.pem")[1]  # corp, services, ...
    assert services.subject.rfc4514_string().endswith("CN=Sweeper Lab Services Root CA")
    alias = issue.fingerprint(services, "sha1")
    cert_file = lab.dir / "services-root.pem"
    cert_file.write_bytes(issue.cert_pem(services))
    assert dir_cli(lab, name, f"trustedcert unpublish --cert {cert_file}").exit_status == 0
    assert vecs(lab, name, f"entry delete --store TRUSTED_ROOTS --alias {alias} -y").exit_status == 0
    assert vecs(lab, name, "force-refresh").exit_status == 0
    assert alias.encode() not in vecs(lab, name, "entry list --store TRUSTED_ROOTS").stdout
    published = dir_cli(lab, name, f"trustedcert publish --cert {cert_file}")
    assert published.stdout == b"Certificate pubished successfully\n"
    assert alias.encode() in vecs(lab, name, "entry list --store TRUSTED_ROOTS --aliases").stdout


def test_dir_cli_lists_vmdir_and_rejects_a_wrong_password(lab: LabHandle) -> None:
    name = node(lab, "vcsa")
    listing = dir_cli(lab, name, "trustedcert list").stdout.decode()
    assert listing.startswith("Number of certificates:\t3\n#1:\nCN(id):\t\t")
    assert "CRL present:\tyes\n" in listing
    wrong = dir_cli(lab, name, "trustedcert list", password="guess")
    assert (wrong.exit_status, wrong.stderr) == (1326 & 0xFF, LOGON_FAILURE)


def test_dir_cli_reads_the_password_from_its_prompt(lab: LabHandle) -> None:
    name = node(lab, "vcsa")
    result = ssh(
        lab, name, f"{root(lab, name)}/{DIR_CLI} trustedcert list", input=lab.sso_password.encode() + b"\n"
    )
    assert result.exit_status == 0
    assert result.stdout.startswith(
        b"Enter password for administrator@vsphere.local: \nNumber of certificates:"
    )


def test_dir_cli_publishes_of_one_root_from_many_vcenters_at_once_all_succeed(lab: LabHandle) -> None:
    """VMware Directory applies each change as a whole: a rotation's vCenters publish its new root
    at the same time, and none of them may see another's half-written copy."""
    name = node(lab, "vcsa")
    new_root = issue.make_root("Sweeper Lab Concurrent Publish Root", issue.generate_key("ec-p256"))
    cert_file = lab.dir / "concurrent-root.pem"
    cert_file.write_bytes(issue.cert_pem(new_root))
    login = f"--login administrator@vsphere.local --password '{lab.sso_password}'"
    publish = f"{root(lab, name)}/{DIR_CLI} trustedcert publish --cert {cert_file} {login} >/dev/null 2>&1"
    at_once = f'for i in 1 2 3 4 5 6 7 8; do ( {publish}; echo "rc=$?" ) & done; wait'
    try:
        for _ in range(3):
            assert ssh(lab, name, at_once).stdout.decode().split() == ["rc=0"] * 8
    finally:
        assert dir_cli(lab, name, f"trustedcert unpublish --cert {cert_file}").exit_status == 0


# --- lifecycle ----------------------------------------------------------------------------


def test_stop_lab_leaves_no_process_behind(tmp_path: Path) -> None:
    handle = start_lab(tmp_path, nodes=5)
    name = next(iter(handle.ports))
    assert ssh(handle, name, "sleep 60 >/dev/null 2>&1 & echo started").stdout == b"started\n"
    assert stop_lab(tmp_path) is True
    assert not (tmp_path / "lab.json").exists()
    assert group_members(handle.pid) == []
    assert stop_lab(tmp_path) is False
    rebuilt = build_lab(tmp_path, nodes=5, rebuild=True)
    assert not rebuilt.reused
    assert (tmp_path / "hostkeys" / name).exists()


def test_a_lab_that_cannot_start_says_why(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="at least 5"):
        start_lab(tmp_path, nodes=2)
