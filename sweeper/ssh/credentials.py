"""Client keys, known_hosts and secrets, loaded once for the whole fleet and shared by every node."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from sweeper.errors import BadInput, os_reason
from sweeper.model import Node
from sweeper.ssh.hashed_hosts import HASHED, lookup_names, resolve

AskSecret = Callable[[str], str]
"""Prompts the operator for a secret (never echoed); None when there is no terminal."""

DEFAULT_KEYS = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")


@dataclass(frozen=True, slots=True)
class CredentialSeed:
    """What another process needs to log in as this one does, without asking, decrypting or hashing
    again: the secrets as resolved (variables or prompt answers), the client keys already unlocked,
    and each known_hosts file as read, its hashed names resolved for the whole fleet (None: no file
    yet, for accept-new). It travels in memory (a pipe to a worker process), never through argv or
    an environment."""

    secrets: dict[str, str] = field(repr=False)
    keys: dict[tuple[str, ...], list[bytes]] = field(repr=False)
    known_hosts: dict[str, str | None] = field(default_factory=dict)


class Credentials:
    """Everything needed to log in, loaded up front so that a bad key or a missing variable
    is bad input before any connection, and so that no connection pays for loading again
    (a passphrase costs ~150 ms of bcrypt, a big known_hosts ~270 ms, per load)."""

    def __init__(
        self,
        nodes: tuple[Node, ...],
        ask: AskSecret | None,
        env: Mapping[str, str] | None = None,
        seed: CredentialSeed | None = None,
    ) -> None:
        """`seed`: secrets, unlocked keys and known_hosts from another process's `seed()`."""
        self._ask = ask
        self._env = os.environ if env is None else env
        self._known_hosts: dict[str, asyncssh.SSHKnownHosts | None] = {}
        self._known_hosts_text: dict[str, str | None] = dict(seed.known_hosts) if seed else {}
        self._keys: dict[tuple[str, ...], list[asyncssh.SSHKey]] = {}
        self._secrets: dict[str, str] = {}
        if seed is not None:
            self._secrets = dict(seed.secrets)
            self._keys = {
                paths: list(map(asyncssh.import_private_key, keys)) for paths, keys in seed.keys.items()
            }
        self._tofu_lock = asyncio.Lock()
        self._nodes = nodes
        for node in nodes:
            path = node.known_hosts
            if path and path not in self._known_hosts:
                self._known_hosts[path] = self._read_known_hosts(path, node.accept_new)
            if node.client_keys not in self._keys:
                self._keys[node.client_keys] = self._load_keys(node.client_keys, node.passphrase_env)
            if node.password_env:
                self.secret(node.password_env, "password")
            if node.become_password_env:
                if node.become != "sudo":
                    raise BadInput(f"node '{node.name}': become_password_env needs become = \"sudo\"")
                self.secret(node.become_password_env, "become password")

    def seed(self) -> CredentialSeed:
        return CredentialSeed(
            secrets=dict(self._secrets),
            keys={
                paths: [key.export_private_key("openssh") for key in keys]
                for paths, keys in self._keys.items()
            },
            known_hosts=dict(self._known_hosts_text),
        )

    def known_hosts(self, node: Node) -> asyncssh.SSHKnownHosts | None:
        return self._known_hosts.get(node.known_hosts or "")

    def keys(self, node: Node) -> list[asyncssh.SSHKey]:
        return self._keys[node.client_keys]

    def password(self, node: Node) -> str | None:
        return self._secrets.get(node.password_env) if node.password_env else None

    def become_password(self, node: Node) -> str | None:
        return self._secrets.get(node.become_password_env) if node.become_password_env else None

    def identity(self, node: Node, user: str) -> str:
        """Which identity logs in, for the report: names and fingerprints, never a secret."""
        ways = [
            f"key {k.get_comment() or ''} {k.get_fingerprint()}".replace("  ", " ") for k in self.keys(node)
        ]
        if node.agent:
            ways.append("ssh-agent")
        if node.password_env:
            ways.append(f"password from ${node.password_env}")
        become = f", become {node.become}" if node.become else ""
        return f"{user} ({'; '.join(ways) or 'default keys'}){become}"

    def has_host(self, node: Node, host: str, port: int) -> bool:
        known = self.known_hosts(node)
        if known is None:
            return False
        host_keys, ca_keys, *_ = known.match(host, "", port)
        return bool(host_keys or ca_keys)

    def revoked_host_keys(self, node: Node, host: str, port: int) -> list[asyncssh.SSHKey]:
        """The keys known_hosts marks `@revoked` for `host` (bare, or as `[host]:port`, or by pattern).

        Looked up name by name: asyncssh's own lookup drops a `[host]:port` revocation when no key
        is trusted at that port (it retries without the port and keeps only that answer), which
        is exactly the case of a host about to be trusted on first use."""
        known = self.known_hosts(node)
        if known is None:
            return []
        names = [host] if port == 22 else [host, f"[{host}]:{port}"]
        return [key for name in names for key in known.match(name, "", None)[2]]

    async def remember_host_key(self, node: Node, host: str, port: int, key: asyncssh.SSHKey | None) -> None:
        """accept-new: append the key of a host we had never seen, as OpenSSH does."""
        if key is None or not node.known_hosts:
            return
        name = host if port == 22 else f"[{host}]:{port}"
        line = f"{name} {key.export_public_key('openssh').decode().strip()}\n"
        async with self._tofu_lock:
            path = Path(node.known_hosts)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as handle:
                handle.write(line)
            self._known_hosts_text.pop(node.known_hosts, None)  # read again, with the new line
            self._known_hosts[node.known_hosts] = self._read_known_hosts(node.known_hosts, True)

    def _read_known_hosts(self, path: str, accept_new: bool) -> asyncssh.SSHKnownHosts | None:
        """The file as asyncssh reads it, its hashed names resolved for the nodes that use it (or as
        the seed's process resolved it for the whole fleet)."""
        if path not in self._known_hosts_text:
            users = [n for n in self._nodes if n.known_hosts == path]
            self._known_hosts_text[path] = known_hosts_text(path, accept_new, users)
        text = self._known_hosts_text[path]
        return None if text is None else parse_known_hosts(path, text)

    def secret(self, variable: str, what: str) -> str:
        """A secret from the variable the inventory names, or the operator's answer at a prompt."""
        if variable not in self._secrets:
            value = self._env.get(variable)
            if value is None and self._ask is not None:
                value = self._ask(f"{what} ({variable} is not set): ")
            if value is None:
                raise BadInput(f"the {what} variable {variable} named in the inventory is not set")
            self._secrets[variable] = value
        return self._secrets[variable]

    def _load_keys(self, paths: tuple[str, ...], passphrase_env: str | None) -> list[asyncssh.SSHKey]:
        explicit = bool(paths)
        candidates = paths or tuple(os.path.expanduser(p) for p in DEFAULT_KEYS)
        passphrase = self.secret(passphrase_env, "key passphrase") if passphrase_env else None
        keys = []
        for path in candidates:
            if not os.path.exists(path):
                if explicit:
                    raise BadInput(f"{path}: client key not found")
                continue
            keys.append(self._read_key(path, passphrase))
        return keys

    def _read_key(self, path: str, passphrase: str | None) -> asyncssh.SSHKey:
        try:
            key = asyncssh.read_private_key(path, passphrase)
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
            if passphrase is None and self._ask is not None and "assphrase" in str(exc):
                return self._read_key(path, self._ask(f"passphrase for {path}: "))
            raise BadInput(f"{path}: cannot load client key: {exc}") from None
        except OSError as exc:
            raise BadInput(f"{path}: cannot read client key: {os_reason(exc)}") from None
        if not key.get_comment():
            key.set_comment(os.path.basename(path))
        return key


def known_hosts_text(path: str, accept_new: bool, nodes: list[Node]) -> str | None:
    """The file's lines with the hashed names of `nodes` resolved; None if there is no file yet
    and `accept_new` (nothing is trusted, nothing refused)."""
    if not os.path.exists(path):
        if accept_new:
            return None
        raise BadInput(
            f"{path}: known_hosts file not found; host keys are checked strictly "
            '(set host_key_checking = "accept-new" to trust nodes on first connection)'
        )
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: cannot read known_hosts: {exc}") from None
    return resolve(text, *lookup_names(nodes)) if HASHED in text else text


def parse_known_hosts(path: str, text: str) -> asyncssh.SSHKnownHosts:
    try:
        return asyncssh.import_known_hosts(text)
    except ValueError as exc:
        raise BadInput(f"{path}: cannot read known_hosts: {exc}") from None
