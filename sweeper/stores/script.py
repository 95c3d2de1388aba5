"""The one shell script that reads every store of a node, and the parser that splits its output.

All of a node's reads go over one SSH command: the script prints tagged sections
(`<token> <kind> <store-id> <args>`) and the parser hands each store its own sections.
Nothing is written on the node; private keys are reduced to public keys there by openssl.
"""

from __future__ import annotations

import base64
import binascii
import shlex
from dataclasses import dataclass, field

PRELUDE = r"""
T='{token}'
if command -v base64 >/dev/null 2>&1; then sw_b64() {{ base64; }}; else sw_b64() {{ openssl base64; }}; fi
sw_stat() {{ stat -c '%a %U %G' "$1" 2>/dev/null || echo '? ? ?'; }}
sw_run() {{ {{ {{ "$@"; echo "$T rc $?"; }} 2>&1 1>&3 3>&- | sed "s/^/$T err /"; }} 3>&1; }}
sw_file() {{
  if [ -d "$2" ]; then echo "$T isdir $1 $2"; return; fi
  if [ ! -e "$2" ]; then echo "$T missing $1 $2"; return; fi
  if [ ! -r "$2" ]; then echo "$T unreadable $1 $2"; return; fi
  echo "$T file $1 $(sw_stat "$2") $2"
  sw_b64 < "$2" || echo "$T unreadable $1 $2"
}}
sw_key() {{
  if [ ! -e "$2" ]; then echo "$T keymissing $1 $2"; return; fi
  echo "$T keymeta $1 $(sw_stat "$2") $2"
  if [ ! -r "$2" ]; then echo "$T keyunreadable $1 $2"; return; fi
  if command -v openssl >/dev/null 2>&1; then
    echo "$T pubkey $1"
    openssl pkey -in "$2" -pubout -passin pass: 2>&1 || echo "$T pubkeyfail $1"
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
  if [ -n "$3" ]; then stores="$3"; else
    echo "$T vecslist $1"
    out=$(sw_run "$2" store list); printf '%s\n' "$out"
    stores=$(printf '%s\n' "$out" | grep -v "^$T ")
  fi
  printf '%s\n' "$stores" | while IFS= read -r s; do
    [ -n "$s" ] || continue
    echo "$T vecsstore $1 $s"
    e=$(sw_run "$2" entry list --store "$s"); printf '%s\n' "$e"
    printf '%s\n' "$e" | awk -F'\t' -v t="$T" 'index($0, t) == 1 {{ next }}
      /^Alias :/ {{ a = $2 }} /^Entry type :/ {{ if ($2 == "Private Key") print a }}' |
    while IFS= read -r a; do
      echo "$T vecskey $1 $s	$a"
      "$2" entry getkey --store "$s" --alias "$a" 2>/dev/null |
        openssl pkey -pubout -passin pass: 2>/dev/null || echo "$T pubkeyfail $1"
    done
  done
}}
"""


def quote(text: str) -> str:
    return shlex.quote(text)


def build(token: str, calls: list[str]) -> str:
    """The whole script: the helper functions, then one call line per store."""
    return PRELUDE.format(token=token) + "\n".join(calls) + '\necho "$T end"\n'


@dataclass(slots=True)
class Section:
    """One tagged part of the output: `kind`, the store it belongs to, its header args, body."""

    kind: str
    store_id: str
    args: str
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    rc: int | None = None

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def decode_base64(self) -> bytes:
        try:
            return base64.b64decode("".join(self.lines), validate=True)
        except binascii.Error as exc:
            raise ValueError(f"garbled transfer ({exc})") from None


@dataclass(frozen=True, slots=True)
class Output:
    sections: dict[str, list[Section]]
    complete: bool


def split_output(token: str, text: str) -> Output:
    """Group the script's output into sections per store id; `complete` if it ran to the end."""
    prefix = token + " "
    sections: dict[str, list[Section]] = {}
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
        elif len(parts) >= 2:
            current = Section(kind, parts[1], parts[2] if len(parts) > 2 else "")
            sections.setdefault(current.store_id, []).append(current)
    return Output(sections, complete)
