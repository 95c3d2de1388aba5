"""The shell functions that read every store of a node in one script, and the script's assembly.

All of a node's reads go over one SSH command: the script prints tagged sections
(`shell.Tag`) and the parser hands each store its own sections. Nothing is written on the
node; private keys are reduced to public keys there by openssl.

Node-side work is kept to a few processes whatever the number of files: the checks are
shell builtins, then one `stat` for every file and key, and one `cat` printing every file's
bytes as they are, last before the end marker, which `shell.split_output` cuts back into files
by their sizes. When the sizes alone would pass the answer's cap (`SW_MAX`, set by
`shell.frame`), the files are not read at all: a huge file costs the node one `stat`, not its
memory.
"""

from __future__ import annotations

from collections.abc import Iterable

from sweeper.shell import Tag

PRELUDE = r"""
NL='
'
SW_FILES=''
SW_STATS=''
SW_KEYS=''
SW_KNOWN=' {known} '
sw_mark() {{  # a tag line "$T <tag> <args>", by printf: dash's echo would expand backslashes in names
  sw_m=$T; for sw_a in "$@"; do sw_m="$sw_m $sw_a"; done; printf '%s\n' "$sw_m"
}}
# the tools are chosen once and run as plain words: a command substitution or a pipeline of one
# simple command costs one process, a function or an `a || b` list one more each time
if command -v sha256sum >/dev/null 2>&1; then SW_SHA=sha256sum; else SW_SHA='openssl dgst -sha256 -r'; fi
if command -v base64 >/dev/null 2>&1; then SW_B64=base64; else SW_B64='openssl base64'; fi
sw_pub() {{  # sw_pub SID ID (key on stdin): openssl only for a key the cache has not seen
  echo "hash ${{2%% *}}"
  case $SW_KNOWN in
    *" ${{2%% *}} "*) [ -n "${{2%% *}}" ] && return ;;
  esac
  openssl pkey -pubout -passin pass: 2>&1 || sw_mark {t.PUBKEYFAIL} "$1"
}}
sw_run() {{  # the command's stdout as is, its status, then its stderr as marked lines; an assignment's
  # status is its command substitution's, so the command is that substitution's only process
  {{ sw_e=$("$@" 2>&1 1>&3); sw_rc=$?; }} 3>&1
  echo "$T {t.RC} $sw_rc"
  if [ -n "$sw_e" ]; then
    while IFS= read -r sw_l; do sw_mark {t.ERR} "$sw_l"; done <<SW_ERR
$sw_e
SW_ERR
  fi
}}
sw_file() {{  # only regular files: a FIFO or a device (/dev/zero behind a link) would never end
  if [ -d "$2" ]; then sw_mark {t.ISDIR} "$1" "$2"; return; fi
  if [ ! -e "$2" ]; then sw_mark {t.MISSING} "$1" "$2"; return; fi
  if [ ! -f "$2" ]; then sw_mark {t.NOTFILE} "$1" "$2"; return; fi
  if [ ! -r "$2" ]; then sw_mark {t.UNREADABLE} "$1" "$2"; return; fi
  sw_mark {t.FILE} "$1" "$2"
  SW_FILES="$SW_FILES$2$NL"
  SW_STATS="$SW_STATS$2$NL"
}}
sw_key() {{
  if [ ! -e "$2" ]; then sw_mark {t.KEYMISSING} "$1" "$2"; return; fi
  if [ ! -f "$2" ]; then sw_mark {t.NOTFILE} "$1" "$2"; return; fi
  sw_mark {t.KEYMETA} "$1" "$2"
  SW_STATS="$SW_STATS$2$NL"
  if [ ! -r "$2" ]; then sw_mark {t.KEYUNREADABLE} "$1" "$2"; return; fi
  if command -v openssl >/dev/null 2>&1; then
    SW_KEYS="$SW_KEYS$1 $2$NL"  # its public half once `stat` has told the file's identity (sw_flush)
  else
    sw_mark {t.KEYFILE} "$1"; $SW_B64 < "$2"
  fi
}}
sw_keys() {{  # sw_keys STAT-OUTPUT (IFS a line break, globbing off): each key's identity (size,
  # device, inode, change time in ns) from its stat line, which every change of the file's bytes
  # renews; openssl only for one the cache lacks
  for sw_k in $SW_KEYS; do
    sw_sid=${{sw_k%% *}}; sw_path=${{sw_k#* }}; sw_id=''
    for sw_l in $1; do
      case $sw_l in  # "mode owner group size identity path"
        *" $sw_path") sw_r=${{sw_l#* * * }}; sw_id=${{sw_r%% *}}; sw_r=${{sw_r#* }}
          sw_id="$sw_id:${{sw_r%% *}}" ;;
      esac
    done
    sw_mark {t.PUBKEY} "$sw_sid"
    sw_pub "$sw_sid" "$sw_id" < "$sw_path"
  done
}}
sw_dir() {{  # a name with a line break cannot go in the batched newline-separated reads: its exact
  # name is printed as the body of an `oddname` section instead (a body keeps line breaks)
  if [ ! -e "$2" ]; then sw_mark {t.MISSING} "$1" "$2"; return; fi
  if [ ! -d "$2" ]; then sw_mark {t.NOTDIR} "$1" "$2"; return; fi
  if [ ! -r "$2" ] || [ ! -x "$2" ]; then sw_mark {t.UNREADABLE} "$1" "$2"; return; fi
  sw_mark {t.DIR} "$1" "$2"
  for f in "$2"/* "$2"/.[!.]*; do
    [ -f "$f" ] || continue
    case $f in
      *"$NL"*) sw_mark {t.ODDNAME} "$1"; printf '%s\n' "$f" ;;
      *) sw_file "$1" "$f" ;;
    esac
  done
}}
sw_vecs() {{
  if [ ! -x "$2" ]; then sw_mark {t.MISSING} "$1" "$2"; return; fi
  if [ -n "$3" ]; then sw_stores="$3"; else
    sw_mark {t.VECSLIST} "$1"
    sw_stores=$(sw_run "$2" store list)
    printf '%s\n' "$sw_stores"
  fi
  while IFS= read -r s; do
    case $s in ''|"$T "*) continue ;; esac
    sw_mark {t.VECSSTORE} "$1" "$s"
    sw_list=$(sw_run "$2" entry list --store "$s")
    printf '%s\n' "$sw_list"
    sw_alias=''
    while IFS= read -r sw_l; do
      case $sw_l in
        "Alias :	"*) sw_alias=${{sw_l#Alias :	}} ;;
        "Entry type :	Private Key")
          sw_mark {t.VECSKEY} "$1" "$s	$sw_alias"
          sw_k=$("$2" entry getkey --store "$s" --alias "$sw_alias" 2>/dev/null </dev/null)
          if [ -n "$sw_k" ]; then  # here-documents, not `printf | ...`: no process to feed them
            sw_h=$($SW_SHA 2>/dev/null <<SW_KEY
$sw_k
SW_KEY
)
            sw_pub "$1" "$sw_h" <<SW_KEY
$sw_k
SW_KEY
          fi ;;
      esac
    done <<SW_LIST
$sw_list
SW_LIST
  done <<SW_STORES
$sw_stores
SW_STORES
}}
sw_flush() {{  # one stat, then one cat for every file (raw, last), unless their sizes would pass SW_MAX
  [ -n "$SW_STATS" ] || return 0
  sw_ifs=$IFS; IFS=$NL; set -f
  set -- $SW_STATS
  sw_st=$(stat -L -c '%a %U %G %s %d:%i:%.9Z %n' -- "$@" 2>/dev/null)
  sw_mark {t.STAT} -
  printf '%s\n' "$sw_st"
  sw_total=0
  for sw_l in $sw_st; do  # one line each: split by the shell, not read(2) a byte at a time
    sw_r=${{sw_l#* * * }}; sw_s=${{sw_r%% *}}
    case $sw_s in ''|*[!0-9]*) ;; *) sw_total=$((sw_total + sw_s)) ;; esac
  done
  [ -z "$SW_KEYS" ] || sw_keys "$sw_st"
  set -- $SW_FILES
  IFS=$sw_ifs
  if [ "${{SW_MAX:-0}}" -gt 0 ] && [ "$sw_total" -gt "$SW_MAX" ]; then
    sw_mark {t.TOOBIG} - "$sw_total"
  elif [ -n "$SW_FILES" ]; then
    sw_mark {t.BLOB} -; cat -- "$@" 2>/dev/null
  fi
  set +f
}}
"""


def build(calls: list[str], known_keys: Iterable[str] = ()) -> str:
    """The script body: the helper functions, one call line per store, then the batched reads.

    `known_keys`: identities of key files whose public key is already known (see keycache).
    """
    known = " ".join(k for k in known_keys if k and all(c.isalnum() or c in ":." for c in k))
    return prelude(known) + "\n".join(calls) + "\nsw_flush\n"


def prelude(known: str = "") -> str:
    """The reading helpers (`sw_file`, `sw_key`, `sw_dir`, `sw_vecs`, `sw_run`, `sw_flush`)."""
    return _PRELUDE_HEAD + known + _PRELUDE_TAIL


# formatted once: every node's script differs only in its known key identities
_PRELUDE_HEAD, _PRELUDE_TAIL = PRELUDE.format(t=Tag, known="\0").split("\0")
