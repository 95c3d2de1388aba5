"""The node read script, run by a real shell against real files, and its parser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from sweeper import shell, stores
from sweeper.model import Node, StoreSpec
from sweeper.shell.text import on_stdin
from sweeper.stores.vecs import parse_entry_list
from tests.support.openssl_pki import OpenSSLPki

TOKEN = "@@SWEEPER-test"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed leaf with its key, a second unrelated key, and an encrypted key (openssl CLI)."""
    d = tmp_path_factory.mktemp("material")
    openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.crt",
        "-subj",
        "/CN=web1.example",
        "-days",
        "90",
        "-addext",
        "subjectAltName=DNS:web1.example,IP:10.0.0.1",
        cwd=d,
    )
    openssl("genpkey", "-algorithm", "ed25519", "-out", "other.key", cwd=d)
    openssl("pkey", "-in", "leaf.key", "-out", "encrypted.key", "-aes256", "-passout", "pass:secret", cwd=d)
    openssl("x509", "-in", "leaf.crt", "-outform", "DER", "-out", "leaf.der", cwd=d)
    return d


def run_locally(
    body: str,
    sh: str = "sh",
    user: str | None = None,
    env: dict[str, str] | None = None,
    max_bytes: int = 0,
) -> shell.Output:
    """A node script run here as a node runs it: framed, on stdin, under the same runner line, its
    output decoded as the session decodes a node's (bytes that are not UTF-8 shown as `\\xNN`).

    `sh`: "sh" (dash on Debian), "dash", or "busybox" (ESXi's shell)."""
    command = ["busybox", "sh", "-s"] if sh == "busybox" else [sh, "-s"]
    if user:
        command = ["setpriv", f"--reuid={user}", "--regid=65534", "--clear-groups", *command]
    done = subprocess.run(
        command,
        input=on_stdin(shell.frame(TOKEN, body, max_bytes)).encode(),
        capture_output=True,
        check=False,
        timeout=30,
        env=env,
    )
    return shell.split_output(TOKEN, done.stdout, done.returncode)


def run_script(node: Node, sh: str = "sh", user: str | None = None) -> stores.NodeRead:
    output = run_locally(stores.read_script(node), sh, user)
    assert output.complete and output.exit_status == 0
    return stores.parse(node, output)


def lay(root: Path, files: dict[str, bytes], mode: int = 0o644) -> None:
    for rel, data in files.items():
        path = root / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)


def node_at(root: Path, *specs: StoreSpec) -> Node:
    """Node "n" whose stores are laid under `root`."""
    return Node(name="n", host="h", root=str(root), stores=specs)


def pem_leaf(root: Path, cert: bytes, key: bytes) -> Node:
    """A node with one pem store, /c.crt with /k.key (0600), laid under `root`."""
    lay(root, {"/c.crt": cert})
    lay(root, {"/k.key": key}, mode=0o600)
    return Node(
        name="n", host="h", root=str(root), stores=(StoreSpec("pem", "leaf", cert="/c.crt", key="/k.key"),)
    )


def test_pem_leaf_with_matching_key_is_read_through_the_root_prefix(tmp_path: Path, material: Path) -> None:
    lay(tmp_path, {"/etc/tls/server.crt": (material / "leaf.crt").read_bytes()})
    lay(tmp_path, {"/etc/tls/server.key": (material / "leaf.key").read_bytes()}, mode=0o600)
    node = Node(
        name="web1",
        host="h",
        root=str(tmp_path),
        stores=(StoreSpec("pem", "leaf", cert="/etc/tls/server.crt", key="/etc/tls/server.key"),),
    )
    read = run_script(node)
    assert [s.status for s in read.stores] == ["ok"]
    (cert,) = read.certificates
    assert cert.entry == "/etc/tls/server.crt" and cert.store == "/etc/tls/server.crt"
    assert cert.facts.sans == ("web1.example", "10.0.0.1") and cert.facts.key_type == "EC-secp256r1"
    assert cert.key is not None and cert.key.matches is True
    assert cert.key.mode == "0600" and cert.key.path == "/etc/tls/server.key" and cert.key.owner


def test_a_key_that_belongs_to_another_certificate_does_not_match(tmp_path: Path, material: Path) -> None:
    node = pem_leaf(tmp_path, (material / "leaf.crt").read_bytes(), (material / "other.key").read_bytes())
    (cert,) = run_script(node).certificates
    assert cert.key.matches is False and cert.key.error is None


def test_an_encrypted_key_is_reported_not_prompted_for(tmp_path: Path, material: Path) -> None:
    node = pem_leaf(tmp_path, (material / "leaf.crt").read_bytes(), (material / "encrypted.key").read_bytes())
    (cert,) = run_script(node).certificates
    assert cert.key.matches is None and cert.key.error


def test_bundle_with_text_crlf_and_der_dir_are_all_read(tmp_path: Path, material: Path) -> None:
    pem = (material / "leaf.crt").read_bytes()
    bundle = b"# corp bundle\r\n" + pem.replace(b"\n", b"\r\n") + b"subject=whatever\n" + pem
    lay(
        tmp_path,
        {
            "/b.pem": bundle,
            "/d/one.der": (material / "leaf.der").read_bytes(),
            "/d/readme.txt": b"not a certificate\n",
        },
    )
    (tmp_path / "d/link.pem").symlink_to(tmp_path / "d/one.der")
    node = Node(
        name="n",
        host="h",
        root=str(tmp_path),
        stores=(StoreSpec("bundle", "trust", path="/b.pem"), StoreSpec("dir", "trust", path="/d")),
    )
    read = run_script(node)
    entries = [c.entry for c in read.certificates]
    assert entries[:2] == ["/b.pem#1", "/b.pem#2"]
    assert len(entries) == 3, "the symlink to the same file is read once"
    assert read.stores[1].status == "ok" and "skipped" in (read.stores[1].error or "")


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (None, "missing"),
        (b"-----BEGIN CERTIFICATE-----\nnot base64!!\n-----END CERTIFICATE-----\n", "corrupt"),
        (b"hello world\n", "corrupt"),
        (b"", "corrupt"),
    ],
)
def test_missing_or_corrupt_file_is_a_store_error_not_a_crash(
    tmp_path: Path, content: bytes | None, status: str
) -> None:
    if content is not None:
        lay(tmp_path, {"/x.pem": content})
    node = Node(name="n", host="h", root=str(tmp_path), stores=(StoreSpec("bundle", "trust", path="/x.pem"),))
    read = run_script(node)
    assert read.stores[0].status == status and read.stores[0].error.startswith("/x.pem")
    assert read.certificates == ()


def test_a_certificate_or_crl_with_an_impossible_version_is_corrupt_not_a_crash(
    tmp_path: Path, openssl_pki: OpenSSLPki
) -> None:
    """cryptography raises InvalidVersion (no ValueError) here: a hostile node must not crash the read."""
    der = openssl_pki.leaf_rsa.der.read_bytes()
    at = der.index(bytes.fromhex("a003020102"))  # [0] EXPLICIT INTEGER 2: v3
    bad_cert = der[: at + 4] + b"\x05" + der[at + 5 :]
    crl = openssl_pki.crl_der.read_bytes()
    at = crl.index(bytes.fromhex("020101"))  # the TBSCertList's INTEGER 1: v2
    bad_crl = crl[: at + 2] + b"\x07" + crl[at + 3 :]
    lay(tmp_path, {"/bad.der": bad_cert, "/crls/bad.crl": bad_crl})
    specs = (StoreSpec("pem", "leaf", cert="/bad.der"), StoreSpec("dir", "crl", path="/crls"))
    read = run_script(Node(name="n", host="h", root=str(tmp_path), stores=specs))
    assert read.stores[0].status == "corrupt" and "version" in (read.stores[0].error or "")
    assert read.certificates == () and read.crls == ()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to switch user")
def test_unreadable_key_is_recorded_with_its_mode(material: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="sweeper-unreadable-"))  # outside pytest's 0700 tmp tree
    try:
        root.chmod(0o755)
        lay(root, {"/c.crt": (material / "leaf.crt").read_bytes()})
        lay(root, {"/k.key": (material / "leaf.key").read_bytes()}, mode=0o600)
        node = Node(
            name="n",
            host="h",
            root=str(root),
            stores=(StoreSpec("pem", "leaf", cert="/c.crt", key="/k.key"),),
        )
        (cert,) = run_script(node, user="nobody").certificates
    finally:
        shutil.rmtree(root)
    assert cert.key.mode == "0600" and cert.key.owner == "root"
    assert cert.key.matches is None and "not readable" in cert.key.error


@pytest.mark.skipif(not shutil.which("busybox"), reason="busybox not installed (ESXi's shell)")
def test_the_script_runs_under_busybox_sh_as_on_esxi(tmp_path: Path, material: Path) -> None:
    lay(
        tmp_path,
        {
            "/etc/vmware/ssl/rui.crt": (material / "leaf.crt").read_bytes(),
            "/etc/vmware/ssl/castore.pem": (material / "leaf.crt").read_bytes(),
        },
    )
    lay(tmp_path, {"/etc/vmware/ssl/rui.key": (material / "leaf.key").read_bytes()}, mode=0o600)
    from sweeper.platforms.esxi import DEFAULT_STORES as ESXI_STORES

    node = Node(name="esx", host="h", profile="esxi", root=str(tmp_path), stores=ESXI_STORES)
    read = run_script(node, sh="busybox")
    assert [s.status for s in read.stores] == ["ok", "ok"]
    assert read.certificates[0].key.matches is True


SHELLS = [
    "dash",
    pytest.param("busybox", marks=pytest.mark.skipif(not shutil.which("busybox"), reason="no busybox")),
]
ODD_NAMES = {
    "a": "a",
    "backslash-n": "b\\nc",  # dash's echo would print a line break for it
    "backslash-c": "c\\cd",  # ... and stop printing at it
    "carriage-return": "c\rd",
    "line-separator": "e\u2028f",  # str.splitlines splits here
    "file-separator": "g\x1ch",  # ... and here
    "not-utf8": b"i\xff".decode("utf-8", "surrogateescape"),
    "leading-dash": "-j",
    "spaces": " k  l ",
    "glob": "m*[n]?",
}


@pytest.fixture(scope="module")
def distinct_certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """One self-signed certificate per odd name, plus one for a name with a line break (openssl CLI)."""
    d = tmp_path_factory.mktemp("odd")
    certs = {}
    for label in [*ODD_NAMES, "newline"]:
        openssl("req", "-x509", "-newkey", "ed25519", "-nodes", "-keyout", f"{label}.key", "-out",
                f"{label}.crt", "-subj", f"/CN={label}", "-days", "30", cwd=d)  # fmt: skip
        certs[label] = (d / f"{label}.crt").read_bytes()
    return certs


@pytest.mark.parametrize("sh", SHELLS)
def test_odd_file_names_in_a_folder_are_each_read_as_themselves(
    tmp_path: Path, distinct_certs: dict[str, bytes], sh: str
) -> None:
    """Every odd name's certificate is read under its own name; a name with a line break is reported,
    and neither it nor its halves (`a` exists too) are confused with another file."""
    folder = tmp_path / "d"
    folder.mkdir()
    for label, name in ODD_NAMES.items():
        (folder / name.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")).write_bytes(
            distinct_certs[label]
        )
    (folder / "a\nname").write_bytes(distinct_certs["newline"])
    node = Node(name="n", host="h", root=str(tmp_path), stores=(StoreSpec("dir", "trust", path="/d"),))
    read = run_script(node, sh)
    shown = {c.facts.subject: c.entry for c in read.certificates}
    expected = {
        f"CN={label}": "/d/" + name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        for label, name in ODD_NAMES.items()
    }
    assert shown == expected, "each certificate under its own exact name, and nothing else read"
    (store,) = read.stores
    assert store.status == "error" and store.error == "/d/a\nname: a file name with a line break is not read"


@pytest.mark.parametrize("sh", SHELLS)
def test_a_device_behind_a_link_is_reported_never_read(tmp_path: Path, sh: str) -> None:
    """A certificate or key path that leads to /dev/zero (or a FIFO) would never end: it is refused."""
    (tmp_path / "c.crt").symlink_to("/dev/zero")
    (tmp_path / "k.key").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "fifo.pem")
    node = node_at(
        tmp_path,
        StoreSpec("pem", "leaf", cert="/c.crt", key="/k.key"),
        StoreSpec("bundle", "trust", path="/fifo.pem"),
    )
    read = run_script(node, sh)
    assert [(s.status, s.error) for s in read.stores] == [
        (
            "error",
            "/c.crt: is not a regular file (a device, FIFO or socket is never read)"
            " (and 1 more problem(s) in this store)",  # the key, /k.key
        ),
        ("error", "/fifo.pem: is not a regular file (a device, FIFO or socket is never read)"),
    ]
    assert read.certificates == ()


@pytest.mark.parametrize("sh", SHELLS)
def test_files_that_would_pass_the_cap_are_not_read_on_the_node(
    tmp_path: Path, material: Path, sh: str
) -> None:
    """The read script adds up the sizes it stat-ed and reads nothing when they would pass
    the cap: a 1 GiB sparse file costs the node one `stat`, not a gigabyte of shell memory."""
    lay(tmp_path, {"/b.pem": (material / "leaf.crt").read_bytes()})
    node = Node(name="n", host="h", root=str(tmp_path), stores=(StoreSpec("bundle", "trust", path="/b.pem"),))
    os.truncate(tmp_path / "b.pem", 2**30)
    huge = run_locally(stores.read_script(node), sh, max_bytes=64 * 2**20)
    assert huge.complete and [s.args for s in huge.tagged(shell.Tag.TOOBIG)] == [str(2**30)]
    assert huge.of("s0", shell.Tag.FILE)[0].data is None
    os.truncate(tmp_path / "b.pem", 4 * 2**20)
    fits = run_locally(stores.read_script(node), sh, max_bytes=64 * 2**20)
    assert fits.tagged(shell.Tag.TOOBIG) == [] and len(fits.of("s0", shell.Tag.FILE)[0].data) == 4 * 2**20


@pytest.mark.parametrize("sh", SHELLS)
def test_file_bytes_come_back_exactly_as_they_are_on_disk(tmp_path: Path, material: Path, sh: str) -> None:
    """Files travel raw, last before the end marker: NULs, CR LF, bytes that are not UTF-8, a line
    that looks like the end marker, and a last file with no final newline come back byte for byte."""
    files = {
        "/d/a.der": (material / "leaf.der").read_bytes(),
        "/d/b.bin": b"\x00\xff\xfe\r\n" + f"{TOKEN} end\n".encode() + b"\x00",
        "/d/c.txt": b"no final newline",
    }
    lay(tmp_path, files)
    output = run_locally(stores.read_script(node_at(tmp_path, StoreSpec("dir", "trust", path="/d"))), sh)
    read = {s.args.removeprefix(str(tmp_path)): s.data for s in output.of("s0", shell.Tag.FILE)}
    assert output.complete and read == files


def test_a_file_that_changed_between_stat_and_read_is_flagged_not_misread() -> None:
    stat = f"{TOKEN} stat -\n644 root root 10 2049:77:1.5 /a\n"  # 10 bytes when stat-ed, 8 when read
    changed = f"{TOKEN} file s0 /a\n{stat}{TOKEN} blob -\n12345678{TOKEN} end\n"
    output = shell.split_output(TOKEN, changed.encode())
    (section,) = output.of("s0", shell.Tag.FILE)
    assert output.complete and section.data is None
    assert section.problem == "files changed while they were being read"


ENTRY_LIST = (
    "Number of entries in store :\t2\n"
    "Alias :\t__MACHINE_CERT\n"
    "Entry type :\tPrivate Key\n"
    "Certificate :\t-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    "\n"
    "Alias :\tapplmgmt\n"
    "Entry type :\tSecret Key\n"
    "\n"
)


def test_vecs_entry_list_is_parsed_per_entry() -> None:
    entries = parse_entry_list(ENTRY_LIST)
    assert [(e.alias, e.entry_type) for e in entries] == [
        ("__MACHINE_CERT", "Private Key"),
        ("applmgmt", "Secret Key"),
    ]
    assert entries[0].pem.startswith("-----BEGIN CERTIFICATE-----") and entries[1].pem == ""


def test_output_cut_short_is_incomplete_and_its_file_unread() -> None:
    node = Node(name="n", host="h", stores=(StoreSpec("bundle", "trust", path="/x.pem"),))
    output = shell.split_output(TOKEN, f"{TOKEN} file s0 /x.pem\nMIIB".encode())
    assert not output.complete
    read = stores.parse(node, output)
    assert read.stores[0].status == "error" and read.certificates == ()


def test_the_runner_keeps_the_script_exit_status() -> None:
    output = run_locally("echo partial; exit 7")
    assert not output.complete and output.exit_status == 7


def test_every_tag_the_read_prelude_prints_is_one_the_parser_knows() -> None:
    printed = set(re.findall(r'(?:"\$T|sw_mark) (\w+)', stores.script.prelude()))
    assert printed and all(shell.Tag.parse(word) is not None for word in printed)


def test_known_key_files_spare_openssl_and_a_changed_key_is_derived_again(
    tmp_path: Path, material: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "openssl.log"
    real = shutil.which("openssl")
    (bin_dir / "openssl").write_text(f'#!/bin/sh\necho "$1" >> {log}\nexec {real} "$@"\n')
    (bin_dir / "openssl").chmod(0o755)
    lay(tmp_path, {"/c.crt": (material / "leaf.crt").read_bytes()})
    lay(tmp_path, {"/k.key": (material / "leaf.key").read_bytes()}, mode=0o600)
    node = Node(
        name="n",
        host="h",
        root=str(tmp_path),
        stores=(StoreSpec("pem", "leaf", cert="/c.crt", key="/k.key"),),
    )
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    def sweep(known: dict[str, str]) -> stores.NodeRead:
        return stores.parse(node, run_locally(stores.read_script(node, known), env=env), known)

    cold = sweep({})
    assert cold.certificates[0].key.matches is True and len(cold.keys.learned) == 1
    assert log.read_text().split() == ["pkey"]
    warm = sweep(cold.keys.learned)
    assert warm.certificates[0].key.matches is True
    assert log.read_text().split() == ["pkey"], "no openssl for a key file known unchanged"
    lay(tmp_path, {"/k.key": (material / "other.key").read_bytes()}, mode=0o600)
    changed = sweep(cold.keys.learned)
    assert changed.certificates[0].key.matches is False and log.read_text().split() == ["pkey", "pkey"]
    # the same size, the same inode, other bytes: the kernel's change time (which no one can set
    # back) still tells it apart, once a clock tick has passed since the last write
    same_size = tmp_path / "same-size.key"
    openssl(
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        same_size.name,
        cwd=tmp_path,
    )
    original = (material / "leaf.key").read_bytes()
    assert len(same_size.read_bytes()) == len(original)
    lay(tmp_path, {"/k.key": original}, mode=0o600)
    back = sweep(cold.keys.learned)
    inode = (tmp_path / "k.key").stat().st_ino
    time.sleep(0.05)
    (tmp_path / "k.key").write_bytes(same_size.read_bytes())
    assert (tmp_path / "k.key").stat().st_ino == inode
    rewritten = sweep(back.keys.learned | cold.keys.learned)
    assert rewritten.certificates[0].key.matches is False and log.read_text().split().count("pkey") == 4


@pytest.mark.skipif(
    not shutil.which("strace"), reason="needs strace (installed by .ci/install-system-deps.sh)"
)
def test_a_warm_read_costs_the_node_the_same_few_processes_however_many_files(
    tmp_path: Path, material: Path
) -> None:
    """The script on the command line (as a scan sends it), one `stat` (which also tells whether the
    known key changed) and one `cat`: two processes besides the shell for a leaf, a bundle and a
    folder, whether the folder holds two files or twenty."""

    def processes_for(files_in_folder: int) -> int:
        root = tmp_path / f"n{files_in_folder}"
        lay(
            root,
            {"/c.crt": (material / "leaf.crt").read_bytes(), "/b.pem": (material / "leaf.crt").read_bytes()},
        )
        lay(root, {"/k.key": (material / "leaf.key").read_bytes()}, mode=0o600)
        lay(root, {f"/certs/{i}.der": (material / "leaf.der").read_bytes() for i in range(files_in_folder)})
        node = node_at(
            root,
            StoreSpec("pem", "leaf", cert="/c.crt", key="/k.key"),
            StoreSpec("bundle", "trust", path="/b.pem"),
            StoreSpec("dir", "trust", path="/certs"),
        )
        cold = stores.parse(node, run_locally(stores.read_script(node)))
        known = cold.keys.learned
        trace = tmp_path / f"trace{files_in_folder}"
        script = shell.frame(TOKEN, stores.read_script(node, known))
        done = subprocess.run(
            ["strace", "-f", "-qq", "-e", "trace=fork,vfork,clone,clone3", "-o", trace, "sh", "-c", script],
            capture_output=True,
            check=True,
        )
        warm = stores.parse(node, shell.split_output(TOKEN, done.stdout, 0), known)
        assert warm.certificates == cold.certificates and warm.certificates[0].key.matches is True
        return len(re.findall(r"^\d+ +(?:fork|vfork|clone|clone3)\(", trace.read_text(), re.M))

    assert processes_for(2) == processes_for(20) == 2


@pytest.mark.parametrize("sh", SHELLS)
def test_a_clean_read_says_nothing_on_stderr(tmp_path: Path, material: Path, sh: str) -> None:
    """Every line the script runs is meant: a healthy node's read prints no error (an empty line
    taken for a key once made the shell try to open "")."""
    node = pem_leaf(tmp_path, (material / "leaf.crt").read_bytes(), (material / "leaf.key").read_bytes())
    shell_argv = ["busybox", "sh"] if sh == "busybox" else [sh]
    done = subprocess.run(
        [*shell_argv, "-c", shell.frame(TOKEN, stores.read_script(node))], capture_output=True, check=True
    )
    assert done.stderr == b""
    assert stores.parse(node, shell.split_output(TOKEN, done.stdout, 0)).certificates[0].key.matches is True


def test_a_node_keeps_at_most_max_certificates_and_names_the_store_cut_short(
    tmp_path: Path, material: Path
) -> None:
    """One certificate repeated fits 40,000 times in 40 MB (under --max-node-bytes): the node then
    cost half a gigabyte and a 36 MB report. Past the allowance a store is an error saying so."""
    leaf = (material / "leaf.crt").read_bytes()
    lay(tmp_path, {"/c.crt": leaf, "/bundle.pem": leaf * (stores.MAX_CERTIFICATES + 5)})
    node = node_at(
        tmp_path, StoreSpec("pem", "leaf", cert="/c.crt"), StoreSpec("bundle", "trust", path="/bundle.pem")
    )
    read = run_script(node)
    assert len(read.certificates) == stores.MAX_CERTIFICATES
    assert [(s.status, s.error, s.certificates) for s in read.stores] == [
        ("ok", None, 1),
        ("error", f"6 certificate(s) not kept: a node keeps at most {stores.MAX_CERTIFICATES}", 9_999),
    ]
