"""The rotation's shell helpers, run by a real /bin/sh on real files (no node, no SSH)."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from sweeper.rotate import remote
from sweeper.shell.text import on_stdin

ENV = {"PATH": "/usr/bin:/bin", "T": "sweeper-test-token"}


def run_sh(body: str, sh: str = "sh", path: str = ENV["PATH"]) -> subprocess.CompletedProcess[bytes]:
    """A rotation script run as a node runs it: on stdin (as `on_stdin` sends it) to `sh -s`."""
    return subprocess.run(
        [sh, "-s"],
        input=on_stdin(remote.script(body)).encode(),
        capture_output=True,
        env={**ENV, "PATH": path},
        check=False,
    )


@pytest.mark.parametrize("sh", ["sh", "busybox sh"])
def test_a_script_cut_short_on_its_way_to_the_node_runs_not_at_all(tmp_path: Path, sh: str) -> None:
    """A connection lost while a script is sent ends its stdin early. Nothing of it runs then: not
    the first file's replacement, nor a second one's with part of its bytes. A command in it that
    reads stdin gets nothing, not the rest of the script."""
    if sh.startswith("busybox") and not shutil.which("busybox"):
        pytest.skip("busybox not installed")
    first, second = tmp_path / "first.crt", tmp_path / "second.crt"
    body = (
        remote.put_file(str(first), b"first\n", None, None, "0644")
        + 'read sw_line || sw_line=nothing; echo "stdin: $sw_line"\n'
        + remote.put_file(str(second), b"A" * 4000, None, None, "0644")
    )
    sent = on_stdin(remote.script(body)).encode()
    whole = subprocess.run([*sh.split(), "-s"], input=sent, capture_output=True, env=ENV, check=False)
    assert whole.returncode == 0 and b"stdin: nothing" in whole.stdout, whole.stderr
    assert first.read_bytes() == b"first\n" and second.read_bytes() == b"A" * 4000
    first.unlink()
    second.unlink()

    cut = sent[: sent.index(b"SWEEPER_B64", sent.index(b"stdin:")) + 200]  # inside the second file
    half = subprocess.run([*sh.split(), "-s"], input=cut, capture_output=True, env=ENV, check=False)
    assert half.returncode != 0 and half.stdout == b""
    assert not first.exists() and not second.exists() and os.listdir(tmp_path) == []


def test_put_makes_the_folder_replaces_atomically_and_clears_a_killed_runs_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "new" / "folder" / "server.crt"
    assert run_sh(remote.put_file(str(target), b"first\n", None, None, "0640")).returncode == 0
    stale = target.parent / ".sweeper.AbC123"  # what a run killed between mktemp and mv leaves
    stale.write_bytes(b"half")
    done = run_sh(remote.put_file(str(target), b"second\n", None, None, "0600"))
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == b"second\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["server.crt"]


def test_a_put_that_cannot_write_stops_the_script_and_leaves_the_file(tmp_path: Path) -> None:
    target = tmp_path / "server.crt"
    target.write_bytes(b"old\n")
    body = (
        remote.put_file(str(target), b"new\n", "no-such-user-here", "no-such-group", "0644") + "echo after\n"
    )
    done = run_sh(body)
    assert done.returncode != 0 and b"after" not in done.stdout
    assert target.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["server.crt"]


def test_a_killed_runs_key_maker_still_running_on_the_node_cannot_swap_the_key_a_resume_proved(
    tmp_path: Path,
) -> None:
    """A killed sweeper's scripts run on after it (sshd does not end a command whose client went
    away): a resume making the same pending key meanwhile must end with the key it proved."""
    pending = tmp_path / "pending" / "key.pem"
    started, go = tmp_path / "started", tmp_path / "go"
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "openssl").write_text(  # the killed run's openssl genpkey, held until the resume is done
        "#!/bin/sh\n"
        f'if [ "$1" = genpkey ]; then : > {started}; while [ ! -e {go} ]; do sleep 0.05; done; fi\n'
        'exec /usr/bin/openssl "$@"\n'
    )
    (tools / "openssl").chmod(0o755)
    pending.parent.mkdir()
    (pending.parent / "key.pem.999.tmp").write_text("what a maker killed before its link left")
    script = on_stdin(remote.script(remote.ensure_pending_key(str(pending), "ec-p256", "orphan"))).encode()
    orphan = subprocess.Popen(
        ["sh", "-s"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**ENV, "PATH": f"{tools}:{ENV['PATH']}"},
    )
    assert orphan.stdin is not None
    orphan.stdin.write(script)
    orphan.stdin.close()
    deadline = time.monotonic() + 30
    while not started.exists():
        assert time.monotonic() < deadline and orphan.poll() is None
        time.sleep(0.02)

    resumed = run_sh(remote.ensure_pending_key(str(pending), "ec-p256", "resumed"))
    go.touch()
    assert orphan.stdout is not None
    orphaned = orphan.stdout.read()
    orphan.wait(timeout=30)

    assert resumed.returncode == 0 and orphan.returncode == 0, resumed.stderr
    held = serialization.load_pem_private_key(pending.read_bytes(), None).public_key()
    assert _request_key(resumed.stdout) == _request_key(orphaned) == _spki(held)
    assert os.listdir(pending.parent) == ["key.pem"]


def _request_key(stdout: bytes) -> bytes:
    (pem,) = re.findall(
        rb"-----BEGIN CERTIFICATE REQUEST-----.+?-----END CERTIFICATE REQUEST-----", stdout, re.S
    )
    return _spki(x509.load_pem_x509_csr(pem).public_key())


def _spki(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _busybox_node(tmp_path: Path) -> Callable[[str], subprocess.CompletedProcess[bytes]]:
    """Runs a rotation script as a busybox node would: busybox's sh, grep, tr and sleep, no procps."""
    applets = tmp_path / "busybox-bin"
    applets.mkdir()
    for applet in ("sh", "grep", "tr", "sleep", "cat", "rm"):
        (applets / applet).symlink_to(shutil.which("busybox") or "busybox")
    return functools.partial(run_sh, sh=str(applets / "sh"), path=str(applets))


def _without_proc(body: str) -> subprocess.CompletedProcess[bytes]:
    """Runs a rotation script as on a node without /proc, where procps' pgrep lists the scripts."""
    return run_sh(body.replace("[ -r /proc/self/cmdline ]", "false"))


@pytest.mark.parametrize("kind", ["linux", "busybox, no procps", "no /proc, pgrep"])
def test_a_step_is_done_again_only_once_the_scripts_that_did_it_before_have_ended(
    tmp_path: Path, kind: str
) -> None:
    """Before a node's step is done again, the run waits while a killed run's script (found by the
    label its shell carries) or its own earlier one for that node still runs, not for its own on
    another node of the host, nor for another node's wait (the pattern on its command line); past
    its time it names the processes it waited for. On Linux and busybox alike (their command lines
    under /proc, a line break in one read as a blank), and by pgrep where there is no /proc."""
    if kind.startswith("busybox") and not shutil.which("busybox"):
        pytest.skip("busybox not installed")
    run = {"linux": run_sh, "no /proc, pgrep": _without_proc}.get(kind) or _busybox_node(tmp_path)
    this_run = f"{remote.CHANGE_LABEL}0123456789abcdef-"
    node = f"{this_run}11111111"
    killed_run, earlier_attempt, other_node, other_wait = (
        subprocess.Popen(["sh", "-c", f"sleep {seconds}\n:", label], start_new_session=True)
        for seconds, label in (
            (2, f"{remote.CHANGE_LABEL}fedcba9876543210-11111111"),
            (1, node),
            (30, f"{this_run}22222222"),
            (30, f"{remote.CHANGE_LABEL}[0-9a-f]"),
        )
    )
    try:
        gave_up = run(remote.wait_for_earlier_scripts(this_run, node, 0))
        started = time.monotonic()
        waited = run(remote.wait_for_earlier_scripts(this_run, node, 20))
        took = time.monotonic() - started
        assert killed_run.poll() is not None and earlier_attempt.poll() is not None
        assert other_node.poll() is None and other_wait.poll() is None
    finally:
        for shell in (killed_run, earlier_attempt, other_node, other_wait):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(shell.pid, signal.SIGKILL)
            shell.wait()
    busy = re.search(rb"busy w0 ([0-9 ]+)", gave_up.stdout)
    assert gave_up.returncode == 0 and busy is not None
    assert sorted(map(int, busy.group(1).split())) == sorted([killed_run.pid, earlier_attempt.pid])
    assert waited.returncode == 0 and b"busy" not in waited.stdout and 0.5 < took < 10
    alone = run(remote.wait_for_earlier_scripts(this_run, node, 0))
    assert alone.returncode == 0 and b"busy" not in alone.stdout
