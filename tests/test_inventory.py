"""Inventory loading: the contract's shape, defaults layering, and one-line errors naming file, node, key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweeper.errors import InventoryError
from sweeper.inventory import load_inventory
from sweeper.platforms import esxi, vcsa

CONTRACT_EXAMPLE = """
[defaults]
user = "root"
port = 22
known_hosts = "~/.ssh/known_hosts"
client_keys = ["~/.ssh/id_ed25519"]
connect_timeout = 10
become = "sudo"
become_password_env = "SWEEPER_BECOME_PASSWORD"
jump = "ops@bastion.corp.example:22"
sso_user = "administrator@vsphere.local"
sso_password_env = "SWEEPER_SSO_PASSWORD"

[[nodes]]
name = "vc01"
host = "vc01.corp.example"
profile = "vcsa"
tags = ["site-a", "prod"]

[[nodes]]
name = "web1"
host = "10.1.2.3"
profile = "linux"
root = "/"
restart = "systemctl reload nginx"
  [[nodes.stores]]
  kind = "pem"
  role = "leaf"
  cert = "/etc/nginx/tls/server.crt"
  key = "/etc/nginx/tls/server.key"
  [[nodes.stores]]
  kind = "bundle"
  role = "trust"
  path = "/usr/local/share/ca-certificates/corp-root.crt"

[[nodes]]
host = "esx01.corp.example"
profile = "esxi"
port = 2222
"""


def write(tmp_path: Path, text: str, name: str = "inventory.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_design_example_loads_with_defaults_and_profiles(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, CONTRACT_EXAMPLE))
    vc01, web1, esx = inv.nodes
    assert vc01.stores == vcsa.DEFAULT_STORES and vc01.user == "root" and vc01.become == "sudo"
    assert vc01.tags == ("site-a", "prod")
    assert web1.stores[0].cert == "/etc/nginx/tls/server.crt" and web1.restart.startswith("systemctl")
    assert esx.name == "esx01.corp.example" and esx.port == 2222 and esx.stores == esxi.DEFAULT_STORES
    assert vc01.known_hosts == str(Path.home() / ".ssh/known_hosts")
    assert len(inv.sha256) == 64


def test_yaml_with_the_same_shape_is_accepted(tmp_path: Path) -> None:
    text = """
defaults: {user: ops}
nodes:
  - {name: a, host: 10.0.0.1, profile: esxi}
  - name: b
    host: 10.0.0.2
    stores: [{kind: dir, path: /etc/ssl/certs}]
"""
    inv = load_inventory(write(tmp_path, text, "fleet.yaml"))
    assert [n.name for n in inv.nodes] == ["a", "b"]
    assert inv.nodes[1].stores[0].role == "trust"


def test_environment_variables_and_tilde_are_expanded_in_local_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYDIR", "/srv/keys")
    inv = load_inventory(
        write(
            tmp_path,
            """
[defaults]
client_keys = ["$KEYDIR/id_ed25519"]
known_hosts = "~/kh"
[[nodes]]
host = "h"
profile = "esxi"
""",
        )
    )
    assert inv.nodes[0].client_keys == ("/srv/keys/id_ed25519",)
    assert inv.nodes[0].known_hosts == str(Path.home() / "kh")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[[nodes]]\nname = "web1"\nhost = "h"\nprofile = "esxi"\ncolour = "red"\n',
            "node 'web1': key 'colour': unknown key",
        ),
        (
            '[defaults]\nprot = 22\n[[nodes]]\nhost = "h"\nprofile = "esxi"\n',
            "[defaults]: key 'prot': unknown key",
        ),
        (
            '[[nodes]]\nname = "web1"\nhost = "h"\n[[nodes.stores]]\nkind = "pem"\ncerrt = "/x"\n',
            "node 'web1': store #1: key 'cerrt': unknown key",
        ),
        (
            '[[nodes]]\nname = "web1"\nhost = "h"\n[[nodes.stores]]\nkind = "pem"\n',
            "node 'web1': store #1: a 'pem' store needs 'cert'",
        ),
        ('[[nodes]]\nname = "web1"\nhost = "h"\nport = 70000\nprofile = "esxi"\n', "node 'web1': key 'port'"),
        ('[[nodes]]\nname = "x"\nprofile = "esxi"\n', "node 'x': key 'host': required key is missing"),
        ('[[nodes]]\nname = "w"\nhost = "h"\n', "node 'w': a linux node needs at least one"),
        (
            '[[nodes]]\nhost = "h"\nprofile = "esxi"\n[[nodes]]\nhost = "h"\nprofile = "esxi"\n',
            "node 'h': duplicate node name",
        ),
        ('[[nodes]]\nhost = "h"\nprofile = "esxi"\nroot = "relative"\n', "'root' must be an absolute path"),
        ("nodes = [\n", "not valid TOML"),
    ],
)
def test_bad_inventory_is_one_line_naming_file_node_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


def test_missing_inventory_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="cannot read inventory"):
        load_inventory(tmp_path / "nope.toml")


def test_limit_selects_by_name_or_tag(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, CONTRACT_EXAMPLE))
    assert [n.name for n in inv.limited(["prod"])] == ["vc01"]
    assert [n.name for n in inv.limited(["web1,esx01.corp.example"])] == ["web1", "esx01.corp.example"]
    assert len(inv.limited([])) == 3
    with pytest.raises(InventoryError, match="matches no node"):
        inv.limited(["nothing"])


@pytest.mark.parametrize("example", sorted(Path(__file__).parent.parent.glob("inventories/*.toml")))
def test_shipped_example_inventories_load(example: Path) -> None:
    assert load_inventory(example).nodes
