"""Hashed known_hosts names resolved once for the fleet (sweeper/ssh/hashed_hosts.py): every node is
matched to exactly the keys asyncssh would match in the hashed file, in any line order, markers
and all; lines no node can match are dropped only where no node is looked up by an unknown name."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import random
import subprocess
from dataclasses import replace
from pathlib import Path

import asyncssh
import pytest

from sweeper.errors import BadInput
from sweeper.model import Node
from sweeper.ssh.credentials import Credentials, known_hosts_text, parse_known_hosts
from sweeper.ssh.hashed_hosts import lookup_names, resolve


def hashed(name: str) -> str:
    """`name` as OpenSSH hashes it (`ssh-keygen -H`): |1|salt|HMAC-SHA1(salt, name)."""
    salt = os.urandom(20)
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def read_known_hosts(path: str, nodes: list[Node]) -> asyncssh.SSHKnownHosts:
    """The file as a sweep of `nodes` gives it to asyncssh."""
    text = known_hosts_text(path, False, nodes)
    assert text is not None
    return parse_known_hosts(path, text)


def public_key() -> str:
    return asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()


def matches(known: asyncssh.SSHKnownHosts, node: Node) -> tuple[set[bytes], ...]:
    """What asyncssh trusts and refuses for `node`, comparable across two loads."""
    found = known.match(node.host, node.host, node.port)
    return tuple({key.public_data for key in keys} for keys in found[:3])


def fleet(count: int) -> list[Node]:
    return [Node(name=f"n{k}", host="127.0.0.1", port=20000 + k) for k in range(count)]


def test_a_hashed_file_resolves_to_what_asyncssh_matches_in_it_for_every_node(tmp_path: Path) -> None:
    nodes = fleet(30)
    lines = []
    for node in nodes:
        lines += [f"{hashed(f'[127.0.0.1]:{node.port}')} {public_key()}" for _ in range(2)]  # two key types
    lines += [f"@revoked {hashed('[127.0.0.1]:20003')} {public_key()}"]
    lines += [f"@cert-authority {hashed('[127.0.0.1]:20004')} {public_key()}"]
    lines += [f"{hashed('127.0.0.1')} {public_key()}"]  # the bare address: found when a port has none
    lines += [f"{hashed('[192.0.2.50]:22')} {public_key()}", f"{hashed('elsewhere.example')} {public_key()}"]
    random.Random(7).shuffle(lines)
    path = tmp_path / "known_hosts"
    path.write_text("\n".join(lines) + "\n")
    before = asyncssh.read_known_hosts(str(path))
    after = read_known_hosts(str(path), [*nodes, Node(name="portless", host="127.0.0.1")])
    for node in [*nodes, Node(name="portless", host="127.0.0.1"), Node(name="new", host="127.0.0.1", port=9)]:
        assert matches(after, node) == matches(before, node), node.name
    assert matches(after, nodes[3])[2] and matches(after, nodes[4])[1], "the markers stay"


def test_lines_that_no_node_can_match_are_dropped_unless_a_node_goes_by_an_unknown_name() -> None:
    text = f"{hashed('[127.0.0.1]:2201')} {public_key()}\n{hashed('192.0.2.9')} {public_key()}\n"
    names, unknown = lookup_names([Node(name="a", host="127.0.0.1", port=2201)])
    assert not unknown
    resolved = resolve(text, names, unknown).split("\n")
    assert resolved[0].startswith("[127.0.0.1]:2201 ssh-ed25519 ") and resolved[1] == ""
    for node in (
        Node(name="b", host="db.example"),  # looked up by its address too, known only at connect
        Node(name="c", host="127.0.0.1", ssh_config="~/.ssh/config"),
        Node(name="d", host="127.0.0.1", jump="bastion"),
    ):
        names, unknown = lookup_names([node])
        assert unknown, node.name
        assert resolve(text, names, unknown).split("\n")[1] == text.split("\n")[1]


def test_ssh_keygen_hashed_lines_are_read_and_a_broken_hash_is_still_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    key = public_key()
    path.write_text(f"[127.0.0.1]:2202 {key}\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(path)], check=True, capture_output=True)
    assert path.read_text().startswith("|1|")
    known = read_known_hosts(str(path), [Node(name="a", host="127.0.0.1", port=2202)])
    assert matches(known, Node(name="a", host="127.0.0.1", port=2202))[0]
    path.write_text(f"|1|not-base64!|x {key}\n")
    with pytest.raises(BadInput, match="cannot read known_hosts"):
        read_known_hosts(str(path), [Node(name="a", host="127.0.0.1", port=2202)])


def test_a_worker_takes_known_hosts_as_its_parent_resolved_it_for_the_whole_fleet(tmp_path: Path) -> None:
    """A worker's share of the fleet is not hashed again (each would try every other worker's lines
    against all its names), nor re-read: the fleet is checked against the one file its parent read."""
    key = tmp_path / "client_key"
    key.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    path = tmp_path / "known_hosts"
    nodes = [replace(n, known_hosts=str(path), client_keys=(str(key),)) for n in fleet(4)]
    path.write_text("".join(f"{hashed(f'[127.0.0.1]:{n.port}')} {public_key()}\n" for n in nodes))
    seed = Credentials(tuple(nodes), None).seed()
    assert "|1|" not in (seed.known_hosts[str(path)] or "")
    path.write_text("")  # changed once the parent has read it
    worker = Credentials(tuple(nodes[2:]), None, seed=seed)
    known = worker.known_hosts(nodes[3])
    assert known is not None and matches(known, nodes[3])[0]
