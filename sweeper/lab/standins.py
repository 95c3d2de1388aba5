"""Install the POSIX sh stand-ins shipped in sweeper/lab/bin into node trees.

They are sh, not Python: a 1,000-node sweep runs them thousands of times and a
Python start costs ~30 ms. Each finds its node root (and the lab) from its own path.
The one exception is `sqlite3`, a Python stand-in for the few calls of the command-line
tool that the lab's psql and vpxd stand-ins make, first on a vCenter's PATH so the lab
needs no sqlite3 package (and behaves the same whether the machine has one or not).
"""

from __future__ import annotations

import sys
from functools import cache
from importlib.resources import files
from pathlib import Path

from sweeper.lab.files import write_file
from sweeper.lab.plan import LAB_BIN, RESTART_STAMP, SERVICES_LOG


@cache
def stand_in(name: str) -> str:
    """The text of a script in sweeper/lab/bin."""
    return files("sweeper.lab").joinpath("bin", name).read_text()


def install_tool(root: Path, path: str, name: str) -> None:
    """Install the stand-in `name` at node path `path` (vecs-cli, dir-cli, service-control, psql),
    with the lab's log and restart-stamp paths filled in where it names them."""
    text = stand_in(name).replace("@LOG@", SERVICES_LOG).replace("@STAMP@", RESTART_STAMP)
    write_file(root / path.lstrip("/"), text, 0o755)


def install_service(root: Path, path: str, name: str, restarts: tuple[str, ...] = ()) -> None:
    """Install a service stand-in at `path` that logs its calls under the node root.

    :param restarts: first arguments that restart the service that serves the node's TLS
        endpoint (`restart` for hostd, `--start` for service-control): only those make
        the endpoint load its certificate again
    """
    text = (
        stand_in("service-stub")
        .replace("@PATH@", path)
        .replace("@NAME@", name)
        .replace("@RESTARTS@", " ".join(restarts))
        .replace("@LOG@", SERVICES_LOG)
        .replace("@STAMP@", RESTART_STAMP)
    )
    write_file(root / path.lstrip("/"), text, 0o755)


def install_sqlite3(root: Path) -> None:
    """The sqlite3 command line the lab's VCDB stand-ins call."""
    text = stand_in("sqlite3").replace("@PYTHON@", sys.executable)
    write_file(root / LAB_BIN.lstrip("/") / "sqlite3", text, 0o755)
