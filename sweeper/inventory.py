"""Load and validate inventories (TOML or YAML) into Node values, with errors that name file, node and key."""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sweeper import platforms
from sweeper.errors import InventoryError, os_reason
from sweeper.model import Node, Profile, Role, StoreKind, StoreSpec

DEFAULT_ROLES = {
    StoreKind.PEM: Role.LEAF,
    StoreKind.BUNDLE: Role.TRUST,
    StoreKind.DIR: Role.TRUST,
    StoreKind.VECS: Role.LEAF,
}


Text = Annotated[str, Field(min_length=1)]
"""A path, command, name or variable: an empty string is an error (never "off")."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreModel(_Strict):
    kind: StoreKind
    role: Role | None = None
    cert: Text | None = None
    key: Text | None = None
    path: Text | None = None
    store: Text | None = None

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> StoreModel:
        if self.kind is StoreKind.PEM and not self.cert:
            raise ValueError("a 'pem' store needs 'cert'")
        if self.kind in (StoreKind.BUNDLE, StoreKind.DIR) and not self.path:
            raise ValueError(f"a '{self.kind}' store needs 'path'")
        if self.kind is not StoreKind.PEM and (self.cert or self.key):
            raise ValueError(f"'cert' and 'key' belong to 'pem' stores, not '{self.kind}'")
        if self.kind is not StoreKind.VECS and self.store:
            raise ValueError("'store' belongs to 'vecs' stores")
        return self

    def to_spec(self) -> StoreSpec:
        return StoreSpec(
            kind=self.kind,
            role=self.role or DEFAULT_ROLES[self.kind],
            cert=self.cert,
            key=self.key,
            path=self.path,
            store=self.store,
        )


class NodeSettings(_Strict):
    """Every key a node may set; `[defaults]` accepts the same keys."""

    user: Text | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    profile: Profile | None = None
    tags: list[Text] | None = None
    root: Text | None = None
    known_hosts: Text | None = None
    host_key_checking: Literal["strict", "accept-new"] | None = None
    client_keys: list[Text] | None = None
    passphrase_env: Text | None = None
    password_env: Text | None = None
    agent: bool | None = None
    ssh_config: Text | None = None
    connect_timeout: float | None = Field(default=None, gt=0)
    deadline: float | None = Field(default=None, gt=0)
    become: Literal["sudo", "doas"] | None = None
    become_password_env: Text | None = None
    jump: Text | None = None
    sso_user: Text | None = None
    sso_password_env: Text | None = None
    restart: Text | None = None
    persist: Text | None = None
    tls_port: int | None = Field(default=None, ge=1, le=65535)
    stores: list[StoreModel] | None = None
    names: list[Text] | None = None
    allow_names: list[Text] | None = None

    @field_validator("root")
    @classmethod
    def _root_is_absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("'root' must be an absolute path on the node")
        return value


class NodeModel(NodeSettings):
    name: str | None = None
    host: str = Field(min_length=1)


class InventoryModel(_Strict):
    defaults: NodeSettings = NodeSettings()
    nodes: list[NodeModel] = Field(min_length=1)

    @field_validator("defaults")
    @classmethod
    def _names_are_per_node(cls, value: NodeSettings) -> NodeSettings:
        if value.names is not None:
            raise ValueError("'names' belongs to one node; 'allow_names' holds patterns for every node")
        return value


@dataclass(frozen=True, slots=True)
class Inventory:
    """A validated inventory: its nodes, and where it came from (for the report)."""

    path: Path
    sha256: str
    nodes: tuple[Node, ...]

    def limited(self, selectors: list[str]) -> tuple[Node, ...]:
        """The nodes whose name or one of whose tags is among `selectors` (all if none given)."""
        wanted = {s.strip() for item in selectors for s in item.split(",") if s.strip()}
        if not wanted:
            return self.nodes
        chosen = tuple(n for n in self.nodes if n.name in wanted or wanted.intersection(n.tags))
        if not chosen:
            raise InventoryError(f"{self.path}: --limit {','.join(sorted(wanted))} matches no node")
        return chosen


def load_inventory(path: str | Path) -> Inventory:
    """Read, validate and resolve an inventory; raises InventoryError with a one-line message."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read inventory: {os_reason(exc)}") from None
    data = _parse(path, raw)
    try:
        model = InventoryModel.model_validate(data)
    except ValidationError as exc:
        raise InventoryError(_describe(path, data, exc)) from None
    nodes = tuple(_resolve(path, model.defaults, n) for n in model.nodes)
    seen: set[str] = set()
    for node in nodes:
        if node.name in seen:
            raise InventoryError(f"{path}: node '{node.name}': duplicate node name")
        seen.add(node.name)
    return Inventory(path=path, sha256=hashlib.sha256(raw).hexdigest(), nodes=nodes)


def _parse(path: Path, raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InventoryError(f"{path}: inventory is not UTF-8 text") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark else ""
            raise InventoryError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InventoryError(f"{path}: not valid TOML: {exc}") from None
    if not isinstance(data, dict):
        raise InventoryError(f"{path}: an inventory is a table with [defaults] and [[nodes]]")
    return data


def _describe(path: Path, data: dict[str, Any], exc: ValidationError) -> str:
    """Turn pydantic's first error into 'file: node 'x': key 'y': problem'."""
    err = exc.errors()[0]
    loc = list(err["loc"])
    where: list[str] = []
    if loc[:1] == ["nodes"] and len(loc) > 1 and isinstance(loc[1], int):
        index = loc[1]
        node = (data.get("nodes") or [None] * (index + 1))[index]
        label = None
        if isinstance(node, dict):
            label = node.get("name") or node.get("host")
        where.append(f"node '{label}'" if label else f"node #{index + 1}")
        loc = loc[2:]
    elif loc[:1] == ["defaults"]:
        where.append("[defaults]")
        loc = loc[1:]
    if loc[:1] == ["stores"] and len(loc) > 1:
        where.append(f"store #{int(loc[1]) + 1}")
        loc = loc[2:]
    if loc:
        where.append("key '" + ".".join(str(p) for p in loc) + "'")
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    elif err["type"] == "missing":
        message = "required key is missing"
    elif err["type"] == "string_too_short":
        message = "must not be empty (an empty value never means 'off')"
    message = message.removeprefix("Value error, ")
    return f"{path}: {': '.join(where + [message])}"


def _expand(local_path: str) -> str:
    return os.path.expandvars(os.path.expanduser(local_path))


def _resolve(path: Path, defaults: NodeSettings, node: NodeModel) -> Node:
    """Layer node over defaults over built-in defaults, and apply the profile's stores."""
    merged = {k: v for k, v in defaults.model_dump().items() if v is not None}
    merged.update({k: v for k, v in node.model_dump().items() if v is not None})
    name = node.name or node.host
    profile = Profile(merged.get("profile", Profile.LINUX))
    root = merged.get("root", "/")
    stores = tuple(StoreModel.model_validate(s).to_spec() for s in merged.pop("stores", []) or [])
    if not stores:
        stores = platforms.default_stores(profile)
    if profile is Profile.LINUX and not stores:
        raise InventoryError(f"{path}: node '{name}': a linux node needs at least one [[nodes.stores]]")
    known_hosts = merged.get("known_hosts", "~/.ssh/known_hosts")
    jump = merged.get("jump")
    return Node(
        name=name,
        host=node.host,
        profile=profile,
        port=merged.get("port"),
        user=merged.get("user"),
        tags=tuple(merged.get("tags", ())),
        root=root,
        known_hosts=_expand(known_hosts),
        accept_new=merged.get("host_key_checking") == "accept-new",
        client_keys=tuple(_expand(k) for k in merged.get("client_keys", ())),
        passphrase_env=merged.get("passphrase_env"),
        password_env=merged.get("password_env"),
        agent=merged.get("agent", False),
        ssh_config=_expand(merged["ssh_config"]) if merged.get("ssh_config") else None,
        connect_timeout=merged.get("connect_timeout", 10.0),
        deadline=merged.get("deadline", 300.0),
        become=merged.get("become"),
        become_password_env=merged.get("become_password_env"),
        jump=jump,
        sso_user=merged.get("sso_user"),
        sso_password_env=merged.get("sso_password_env"),
        restart=merged.get("restart") or platforms.default_restart(profile, root),
        persist=merged.get("persist") or platforms.default_persist(profile, root),
        tls_port=merged.get("tls_port"),
        stores=stores,
        names=tuple(merged.get("names", ())),
        allow_names=tuple(merged.get("allow_names", ())),
    )
