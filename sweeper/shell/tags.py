"""Section tags of the node-script protocol: one enum, written into the shell text and parsed back.

A node script prints `<token> <tag> <section id> <args>` lines; what follows a tag line up to
the next one is that section's body. The same `Tag` member is formatted into the shell text
(`shell.mark()`, the read prelude) and compared against when the output is split, so a tag
cannot be spelt two ways.
"""

from __future__ import annotations

import enum


class Tag(enum.StrEnum):
    # framing: the end marker, a command's stderr lines and its exit status (see `sw_run`)
    END = "end"
    ERR = "err"
    RC = "rc"
    # the batched reads at the end of a script: one `stat` and one `cat | base64` for every file
    STAT = "stat"
    BLOB = "blob"
    TOOBIG = "toobig"
    """Instead of the blob: the files' total size, which would pass the answer's cap (`SW_MAX`)."""
    # files and folders
    FILE = "file"
    DIR = "dir"
    MISSING = "missing"
    UNREADABLE = "unreadable"
    ISDIR = "isdir"
    NOTDIR = "notdir"
    NOTFILE = "notfile"
    """A path that is neither a regular file nor missing: a FIFO or a device would never end."""
    ODDNAME = "oddname"
    """A file in a folder whose name holds a line break; the body is its exact name. Not read."""
    # a leaf's private key: its metadata, its public half (openssl on the node), or its bytes
    KEYMETA = "keymeta"
    KEYMISSING = "keymissing"
    KEYUNREADABLE = "keyunreadable"
    PUBKEY = "pubkey"
    PUBKEYFAIL = "pubkeyfail"
    KEYFILE = "keyfile"
    # VECS through vecs-cli
    VECSLIST = "vecslist"
    VECSSTORE = "vecsstore"
    VECSKEY = "vecskey"
    VECSCERT = "vecscert"
    # rotation: tools found, a command's exit status, dir-cli and force-refresh outcomes
    TOOL = "tool"
    CSR = "csr"
    STATUS = "status"
    DIRCLI = "dircli"
    REFRESH = "refresh"
    VCDB = "vcdb"
    """psql's answer from a vCenter's database (VCDB)."""
    BUSY = "busy"
    """Rotation scripts that did a step before (another run's, or this node's in this run) still
    running on the node: the ids of their processes."""

    @classmethod
    def parse(cls, text: str) -> Tag | None:
        """The tag named `text`, or None for a word that is not one of ours."""
        try:
            return cls(text)
        except ValueError:
            return None
