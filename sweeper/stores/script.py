"""The one shell script that reads every store of a node, and the parser that splits its output.

All of a node's reads go over one SSH command: the script prints tagged sections
(`<token> <kind> <store-id> <args>`) and the parser hands each store its own sections.
Nothing is written on the node; private keys are reduced to public keys there by openssl.

Node-side work is kept to a few processes whatever the number of files: the checks are
shell builtins, then one `stat` for every file and key, and one `cat | base64` carrying
every file's bytes, which the parser cuts back into files by their sizes.
"""

from __future__ import annotations

import base64
import binascii
import shlex
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

PRELUDE = r"""
T='{token}'
NL='
'
SW_FILES=''
SW_STATS=''
SW_KNOWN=' {known} '
sw_sha() {{ sw_o=$(sha256sum 2>/dev/null || openssl dgst -sha256 -r 2>/dev/null); echo "${{sw_o%% *}}"; }}
sw_pub() {{  # sw_pub SID HASH (key on stdin): openssl only for a key the cache has not seen
  echo "hash $2"
  case $SW_KNOWN in
    *" $2 "*) ;;
    *) openssl pkey -pubout -passin pass: 2>&1 || echo "$T pubkeyfail $1" ;;
  esac
}}
if command -v base64 >/dev/null 2>&1; then sw_b64() {{ base64; }}; else sw_b64() {{ openssl base64; }}; fi
sw_run() {{
  {{ sw_e=$( {{ "$@"; echo "$T rc $?" >&3; }} 2>&1 1>&3 ); }} 3>&1
  if [ -n "$sw_e" ]; then
    while IFS= read -r sw_l; do echo "$T err $sw_l"; done <<SW_ERR
$sw_e
SW_ERR
  fi
}}
sw_file() {{
  if [ -d "$2" ]; then echo "$T isdir $1 $2"; return; fi
  if [ ! -e "$2" ]; then echo "$T missing $1 $2"; return; fi
  if [ ! -r "$2" ]; then echo "$T unreadable $1 $2"; return; fi
  echo "$T file $1 $2"
  SW_FILES="$SW_FILES$2$NL"
  SW_STATS="$SW_STATS$2$NL"
}}
sw_key() {{
  if [ ! -e "$2" ]; then echo "$T keymissing $1 $2"; return; fi
  echo "$T keymeta $1 $2"
  SW_STATS="$SW_STATS$2$NL"
  if [ ! -r "$2" ]; then echo "$T keyunreadable $1 $2"; return; fi
  if command -v openssl >/dev/null 2>&1; then
    echo "$T pubkey $1"
    sw_pub "$1" "$(sw_sha < "$2")" < "$2"
  else
    echo "$T keyfile $1"; sw_b64 < "$2"
  fi
}}
sw_dir() {{
  if [ ! -e "$2" ]; then echo "$T missing $1 $2"; return; fi
  if [ ! -d "$2" ]; then echo "$T notdir $1 $2"; return; fi
  if [ ! -r "$2" ] || [ ! -x "$2" ]; then echo "$T unreadable $1 $2"; return; fi
  echo "$T dir $1 $2"
  for f in "$2"/* "$2"/.[!.]*; do [ -f "$f" ] && sw_file "$1" "$f"; done
}}
sw_vecs() {{
  if [ ! -x "$2" ]; then echo "$T missing $1 $2"; return; fi
  if [ -n "$3" ]; then sw_stores="$3"; else
    echo "$T vecslist $1"
    sw_stores=$(sw_run "$2" store list)
    printf '%s\n' "$sw_stores"
  fi
  while IFS= read -r s; do
    case $s in ''|"$T "*) continue ;; esac
    echo "$T vecsstore $1 $s"
    sw_list=$(sw_run "$2" entry list --store "$s")
    printf '%s\n' "$sw_list"
    sw_alias=''
    while IFS= read -r sw_l; do
      case $sw_l in
        "Alias :	"*) sw_alias=${{sw_l#Alias :	}} ;;
        "Entry type :	Private Key")
          echo "$T vecskey $1 $s	$sw_alias"
          sw_k=$("$2" entry getkey --store "$s" --alias "$sw_alias" 2>/dev/null </dev/null)
          if [ -n "$sw_k" ]; then
            printf '%s\n' "$sw_k" | sw_pub "$1" "$(printf '%s\n' "$sw_k" | sw_sha)"
          fi ;;
      esac
    done <<SW_LIST
$sw_list
SW_LIST
  done <<SW_STORES
$sw_stores
SW_STORES
}}
sw_flush() {{
  [ -n "$SW_STATS" ] || return 0
  sw_ifs=$IFS; IFS=$NL; set -f
  echo "$T stat -"
  stat -L -c '%a %U %G %s %n' -- $SW_STATS 2>/dev/null
  if [ -n "$SW_FILES" ]; then echo "$T blob -"; cat -- $SW_FILES 2>/dev/null | sw_b64; fi
  IFS=$sw_ifs; set +f
}}
"""


def quote(text: str) -> str:
    return shlex.quote(text)


def build(token: str, calls: list[str], known_keys: Iterable[str] = ()) -> str:
    """The whole script: the helper functions, one call line per store, then the batched reads.

    `known_keys`: hashes of key files whose public key is already known (see keycache).
    """
    known = " ".join(k for k in known_keys if k.isalnum())
    return prelude(token, known) + "\n".join(calls) + '\nsw_flush\necho "$T end"\n'


def prelude(token: str, known: str = "") -> str:
    return PRELUDE.format(token=token, known=known)


@dataclass(frozen=True, slots=True)
class FileMeta:
    mode: str | None
    owner: str | None
    group: str | None
    size: int


@dataclass(slots=True)
class Section:
    """One tagged part of the output: `kind`, the store it belongs to, its header args, body.

    `file` sections get their bytes (`data`) and `file`/`keymeta` sections their `meta` from
    the batched stat and blob at the end of the output.
    """

    kind: str
    store_id: str
    args: str
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    rc: int | None = None
    data: bytes | None = None
    meta: FileMeta | None = None
    problem: str | None = None

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def decode_base64(self) -> bytes:
        return _b64("".join(self.lines))


@dataclass(frozen=True, slots=True)
class Output:
    sections: dict[str, list[Section]]
    complete: bool


def split_output(token: str, text: str) -> Output:
    """Group the script's output into sections per store id; `complete` if it ran to the end."""
    prefix = token + " "
    sections: dict[str, list[Section]] = {}
    ordered: list[Section] = []
    batch: dict[str, Section] = {}
    current: Section | None = None
    complete = False
    for line in text.splitlines():
        if not line.startswith(prefix):
            if current is not None:
                current.lines.append(line)
            continue
        parts = line[len(prefix) :].split(" ", 2)
        kind = parts[0]
        if kind == "end":
            complete = True
        elif kind == "err" and current is not None:
            current.errors.append(line[len(prefix) + 4 :])
        elif kind == "rc" and current is not None and len(parts) > 1:
            current.rc = int(parts[1]) if parts[1].isdigit() else None
        elif kind in ("stat", "blob"):
            current = batch[kind] = Section(kind, "-", "")
        elif len(parts) >= 2:
            current = Section(kind, parts[1], parts[2] if len(parts) > 2 else "")
            sections.setdefault(current.store_id, []).append(current)
            ordered.append(current)
    _attach_batch(ordered, batch)
    return Output(sections, complete)


def _attach_batch(ordered: list[Section], batch: dict[str, Section]) -> None:
    """Give each file its metadata (by path) and its bytes (cut from the blob by size, in order)."""
    metas: dict[str, deque[FileMeta]] = {}
    if "stat" in batch:
        for line in batch["stat"].lines:
            fields = line.split(" ", 4)
            if len(fields) == 5 and fields[3].isdigit():
                mode, owner, group, size, path = fields
                meta = FileMeta(mode.zfill(4), _known(owner), _known(group), int(size))
                metas.setdefault(path, deque()).append(meta)
    files = [s for s in ordered if s.kind == "file"]
    for section in ordered:
        if section.kind in ("file", "keymeta"):
            queue = metas.get(section.args)
            section.meta = queue.popleft() if queue else None
    try:
        blob = _b64("".join(batch["blob"].lines)) if "blob" in batch else b""
    except ValueError as exc:
        blob, problem = b"", str(exc)
    else:
        expected = sum(s.meta.size for s in files if s.meta is not None)
        problem = None if expected == len(blob) else "files changed while they were being read"
    offset = 0
    for section in files:
        if section.meta is None:
            section.problem = "vanished while being read"
        elif problem:
            section.problem = problem
        else:
            section.data = blob[offset : offset + section.meta.size]
            offset += section.meta.size


def _known(value: str) -> str | None:
    return None if value in ("?", "UNKNOWN") else value


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"garbled transfer ({exc})") from None
