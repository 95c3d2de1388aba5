"""Shell scripts for the changes a rotation makes on a node, and the parsing of what they print.

Every script is POSIX sh (ESXi's busybox included), goes in on stdin (so no secret or
certificate ever sits on a command line), and is idempotent: run twice, it ends in the
same state. Files are replaced atomically: a temp file in the same folder, fsync, rename,
with the owner, group and mode the old file had.
"""

from __future__ import annotations

import base64
import textwrap
from dataclasses import dataclass

from sweeper.model import Node
from sweeper.platforms.vcsa import DIR_CLI, VECS_CLI
from sweeper.shell import Output, RunTime, Section, Tag, mark
from sweeper.shell import quote as q
from sweeper.stores.script import prelude

PENDING_DIR = "/var/lib/sweeper/pending"
CHANGE_LABEL = "sweeper-change-"
"""What the shell of every rotation script carries on the node (its argument, in its command line),
followed by its run's id and its node's (`node.label_of`)."""

HELPERS = r"""
set -u
if command -v base64 >/dev/null 2>&1; then sw_unb64() { base64 -d; }; else sw_unb64() { openssl base64 -d; }; fi
sw_fsync() { sync "$1" 2>/dev/null || sync; }
sw_clear() {  # sw_clear GLOB: remove what a script killed mid-write left; no process when nothing is
  for sw_o in "$@"; do if [ -e "$sw_o" ]; then rm -f "$@"; fi; break; done
}
sw_put() {  # sw_put PATH OWNER GROUP MODE < base64 ; atomic replace (PATH absolute)
  d=${1%/*}; d=${d:-/}  # parameter expansions, tests and globs: no process unless there is work
  [ -d "$d" ] || mkdir -p "$d"
  sw_clear "$d"/.sweeper.??????
  tmp=$(mktemp "$d/.sweeper.XXXXXX") || return 1
  if ! sw_unb64 > "$tmp"; then rm -f "$tmp"; return 1; fi
  if [ "$2" != "-" ]; then chown "$2:$3" "$tmp" || { rm -f "$tmp"; return 1; }; fi
  chmod "$4" "$tmp" && sw_fsync "$tmp" && mv -f "$tmp" "$1" || { rm -f "$tmp"; return 1; }
}
"""


def b64(data: bytes | RunTime) -> str:
    """Base64 in 64-column lines: both coreutils and `openssl base64 -d` read that."""
    if isinstance(data, RunTime):
        return f"<base64 of {data}>"
    return "\n".join(textwrap.wrap(base64.b64encode(data).decode(), 64))


def script(body: str) -> str:
    """A rotation script: the scan's reading helpers, the writing helpers, the body, the batched reads."""
    return prelude() + HELPERS + body + "\nsw_flush\n"


def read_files(paths: list[str]) -> str:
    """Sections `file`/`missing` per path, for backups and read-backs (uses the scan's sw_file)."""
    return "\n".join(f"sw_file f{i} {q(p)}" for i, p in enumerate(paths))


@dataclass(frozen=True, slots=True)
class FileState:
    """A file as the node holds it: what a backup keeps and an atomic rewrite preserves."""

    content: bytes
    owner: str
    group: str
    mode: str


def files_from(output: Output, paths: list[str]) -> dict[str, FileState | None]:
    """path -> its state, or None when the file does not exist."""
    return {path: _file_section(output.of(f"f{index}"), path) for index, path in enumerate(paths)}


def _file_section(sections: list[Section], path: str) -> FileState | None:
    for section in sections:
        if section.tag is Tag.MISSING:
            return None
        if section.tag is Tag.FILE and section.data is not None and section.meta is not None:
            meta = section.meta
            return FileState(section.data, meta.owner or "-", meta.group or "-", meta.mode or "0644")
    raise ValueError(f"{path}: the node could not read it")


def put_file(path: str, data: bytes | RunTime, owner: str | None, group: str | None, mode: str) -> str:
    """Replace `path` atomically with `data`; the script stops here if that fails."""
    args = f"{q(path)} {q(owner or '-')} {q(group or '-')} {q(mode)}"
    return f"sw_put {args} <<'SWEEPER_B64' || exit 1\n{b64(data)}\nSWEEPER_B64\n"


def remove_file(path: str) -> str:
    return f"rm -f {q(path)}\n"


def pending_key_path(key_path: str) -> str:
    directory, _, name = key_path.rpartition("/")
    return f"{directory}/.sweeper-pending-{name}"


KEY_ALGORITHMS = {
    "rsa2048": "-algorithm RSA -pkeyopt rsa_keygen_bits:2048",
    "ec-p256": "-algorithm EC -pkeyopt ec_paramgen_curve:P-256",
}


def ensure_pending_key(pending: str, key_kind: str, nonce: str) -> str:
    """Where the node has openssl (said by a `tool` section): make the new private key on the node
    (kept across a crash) and print a request signed with it, for `CN=<nonce>`: the proof that the
    node holds the key whose public half we are to sign. Without openssl it prints nothing.

    The first key put in place stays: each maker writes a temp file of its own and links it to
    `pending`, which fails once a key is there. A killed sweeper's script goes on running on the
    node (sshd does not end a command whose client went away), so a resume may make the same key
    at the same time; whichever key lands first is the one both prove and the one installed.
    Where the file system has no hard links, the temp file is renamed instead (last one wins)."""
    return (
        "if command -v openssl >/dev/null 2>&1; then\n"
        + mark(Tag.TOOL, "openssl")
        + textwrap.dedent(f"""\
        umask 077
        k={q(pending)}
        if [ ! -s "$k" ]; then
          [ -d "${{k%/*}}" ] || mkdir -p "${{k%/*}}"
          sw_clear "$k".*.tmp
          sw_t="$k.$$.tmp"
          if openssl genpkey {KEY_ALGORITHMS[key_kind]} -out "$sw_t" 2>/dev/null && sw_fsync "$sw_t"; then
            ln "$sw_t" "$k" 2>/dev/null || [ -s "$k" ] || mv -f "$sw_t" "$k"
          fi
          rm -f "$sw_t"
        fi
        """)
        + mark(Tag.CSR, "p0")
        + f'openssl req -new -key "$k" -subj {q("/CN=" + nonce)} 2>&1\n'
        + "fi\n"
    )


def wait_for_earlier_scripts(this_run: str, this_node: str, seconds: int) -> str:
    """Wait, up to `seconds`, while a rotation script is still running on the node that is
    another run's or was this node's in this run (`this_node`, the label of its scripts), then
    print those processes' ids in a `busy` section. They are found by their label in the command
    lines under /proc (one `grep` over them all: Linux, Photon, busybox and minimal images without
    procps alike), or by `pgrep -af` where there is no /proc. The pattern does not match itself,
    so waits on nodes that share a host do not see each other; a script of this run for another
    node sharing the host is not waited for. Where neither can list command lines, nothing is
    waited for."""
    pattern = q(CHANGE_LABEL + "[0-9a-f]")
    return textwrap.dedent(f"""\
        sw_i=0
        while :; do
          if [ -r /proc/self/cmdline ]; then  # "pid command line" of each, as pgrep -af prints them
            sw_p=''
            for sw_f in $(grep -l {pattern} /proc/[0-9]*/cmdline 2>/dev/null); do
              sw_c=$(tr '\\000\\n' '  ' < "$sw_f" 2>/dev/null) || continue  # it ended meanwhile
              sw_f=${{sw_f#/proc/}}; sw_p="$sw_p${{sw_f%/cmdline}} $sw_c$NL"
            done
          else
            sw_p=$(pgrep -af {pattern} 2>/dev/null) || break
          fi
          sw_b=''
          while IFS= read -r sw_l; do
            case $sw_l in
              '') ;;
              *{q(this_node)}*) sw_b="$sw_b ${{sw_l%% *}}" ;;
              *{q(this_run)}*) ;;
              *) sw_b="$sw_b ${{sw_l%% *}}" ;;
            esac
          done <<SW_P
        $sw_p
        SW_P
          [ -n "$sw_b" ] || break
          if [ "$sw_i" -ge {seconds} ]; then sw_mark {Tag.BUSY} w0 $sw_b; break; fi
          sleep 1; sw_i=$((sw_i + 1))
        done
        """)


def install_leaf(
    cert_path: str,
    cert_pem: bytes,
    cert_meta: tuple[str | None, str | None, str],
    key_path: str,
    pending: str,
    key_meta: tuple[str | None, str | None, str],
) -> str:
    """Put the new key (already on the node) and certificate in place, key first."""
    key_owner, key_group, key_mode = key_meta
    owner_change = f'chown {q(key_owner)}:{q(key_group)} "$k" && ' if key_owner and key_group else ""
    return textwrap.dedent(f"""\
        k={q(pending)}
        if [ -s "$k" ]; then {owner_change}chmod {q(key_mode)} "$k" && sw_fsync "$k" && mv -f "$k" {q(key_path)} || exit 1; fi
        """) + put_file(cert_path, cert_pem, *cert_meta)


def run_command(command: str) -> str:
    """The node's restart command, in its own shell; its status is printed for the journal."""
    return f"sh -c {q(command)}\n" + mark(Tag.STATUS, "$?")


def vecs_cli(node: Node) -> str:
    return q(node.path(VECS_CLI))


def dir_cli(node: Node) -> str:
    return q(node.path(DIR_CLI))


def vecs_entry_list(node: Node, store: str, sid: str) -> str:
    return mark(Tag.VECSSTORE, sid) + f"sw_run {vecs_cli(node)} entry list --store {q(store)}\n"


def vecs_backup_entry(node: Node, store: str, alias: str) -> str:
    cli = vecs_cli(node)
    which = f"--store {q(store)} --alias {q(alias)}"
    return (
        mark(Tag.VECSCERT, "c0")
        + f"sw_run {cli} entry getcert {which}\n"
        + mark(Tag.VECSKEY, "k0")
        + f"sw_run {cli} entry getkey {which}\n"
    )


def vecs_replace_entry(node: Node, store: str, alias: str, pending_dir: str, cert_pem: bytes) -> str:
    """Swap a VECS entry for the new certificate and the key generated in `pending_dir`."""
    return (
        put_file(f"{pending_dir}/cert.pem", cert_pem, None, None, "0600")
        + vecs_delete_entry(node, store, alias, quiet=True)
        + vecs_create_entry(node, store, alias, f"{pending_dir}/cert.pem", f"{pending_dir}/key.pem")
    )


def vecs_create_entry(node: Node, store: str, alias: str, cert_file: str, key_file: str | None) -> str:
    key = f" --key {q(key_file)}" if key_file else ""
    return f"sw_run {vecs_cli(node)} entry create --store {q(store)} --alias {q(alias)} --cert {q(cert_file)}{key}\n"


def vecs_key_public(node: Node, store: str, alias: str) -> str:
    """The public half of a VECS entry's key, derived on the node: the key itself stays there."""
    getkey = f"{vecs_cli(node)} entry getkey --store {q(store)} --alias {q(alias)}"
    return mark(Tag.VECSKEY, "k0") + f"{getkey} 2>/dev/null | openssl pkey -pubout 2>&1\n"


def vecs_delete_entry(node: Node, store: str, alias: str, quiet: bool = False) -> str:
    """Delete an entry; `quiet` for 'make sure it is gone' (a missing entry is no error then)."""
    command = f"{vecs_cli(node)} entry delete --store {q(store)} --alias {q(alias)} -y"
    return f"{command} >/dev/null 2>&1 || true\n" if quiet else f"sw_run {command}\n"


def vmdir(node: Node, verb: str, pem_file: str, login: str, password: str) -> str:
    """dir-cli trustedcert publish|unpublish|publish-crl; the SSO password reaches it on stdin, never argv."""
    what = "--crl" if verb == "publish-crl" else "--cert"
    return textwrap.dedent(f"""\
        printf '%s\\n' {q(password)} | sw_run {dir_cli(node)} trustedcert {verb} {what} {q(pem_file)} --login {q(login)}
        """)


def force_refresh(node: Node) -> str:
    return f"sw_run {vecs_cli(node)} force-refresh\n"


def remove_tree(path: str) -> str:
    return f"rm -rf {q(path)}\n"
