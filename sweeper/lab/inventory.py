"""Render the served lab as DESIGN's inventory (TOML) and an OpenSSH known_hosts file."""

from __future__ import annotations

import getpass
import json

from sweeper.lab.paths import DNS_SUFFIX, LAB_HOST, SSO_PASSWORD_ENV, SSO_USER, LabPaths
from sweeper.lab.plan import NodeSpec

CONNECT_TIMEOUT = 10


def render_inventory(
    paths: LabPaths, plan: tuple[NodeSpec, ...], ports: dict[str, int], tls_ports: dict[str, int]
) -> str:
    """The inventory for this run of the lab (ports change on every start).

    vcsa nodes and all but the first esxi node get no `restart`: rotation's profile defaults run
    their stand-ins. The first esxi node restarts only hostd, its own way: its `persist`
    (/bin/auto-backup.sh) must still run before that.
    """
    lines = [
        f"# sweeper lab: {len(plan)} nodes served on {LAB_HOST}; written at start, ports change.",
        "[defaults]",
        f"user = {_s(getpass.getuser())}",
        f"known_hosts = {_s(str(paths.known_hosts))}",
        f"client_keys = [{_s(str(paths.client_key))}]",
        f"connect_timeout = {CONNECT_TIMEOUT}",
    ]
    for node in plan:
        root = paths.node_root(node.name)
        lines += [
            "",
            "[[nodes]]",
            f"name = {_s(node.name)}",
            f"host = {_s(LAB_HOST)}",
            f"port = {ports[node.name]}",
            f"tls_port = {tls_ports[node.name]}",
            f"profile = {_s(node.profile)}",
            f"tags = [{_s(node.profile)}, {_s('lab')}, {_s(node.site)}]",
            f"root = {_s(str(root))}",
            f"names = [{_s(f'{node.name}.{DNS_SUFFIX}')}, {_s(node.name)}]",
        ]
        if node.profile == "vcsa":
            lines += [f"sso_user = {_s(SSO_USER)}", f"sso_password_env = {_s(SSO_PASSWORD_ENV)}"]
        if node.profile == "esxi" and node is next(n for n in plan if n.profile == "esxi"):
            lines.append(f"restart = {_s(f'{root}/etc/init.d/hostd restart')}")
        if node.profile == "linux":
            services = " ".join(leaf.service for leaf in node.leaves)
            lines.append(f"restart = {_s(f'{root}/usr/bin/systemctl reload {services}')}")
        for store in node.stores:
            lines += ["  [[nodes.stores]]", f"  kind = {_s(store.kind)}", f"  role = {_s(store.role)}"]
            for key in ("cert", "key", "path"):
                value = getattr(store, key)
                if value is not None:
                    lines.append(f"  {key} = {_s(value)}")
    return "\n".join(lines) + "\n"


def render_known_hosts(ports: dict[str, int], host_keys: dict[str, bytes]) -> str:
    """`[127.0.0.1]:PORT ssh-ed25519 AAAA...` for every node (public keys in OpenSSH form)."""
    return "".join(f"[{LAB_HOST}]:{ports[name]} {host_keys[name].decode().strip()}\n" for name in ports)


def _s(value: str) -> str:
    """A TOML basic string (JSON's escapes are a subset TOML accepts)."""
    return json.dumps(value, ensure_ascii=False)
