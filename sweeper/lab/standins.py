"""Install the POSIX sh stand-ins shipped in sweeper/lab/bin into node trees.

They are sh, not Python: a 1,000-node sweep runs them thousands of times and a
Python start costs ~30 ms. Each finds its node root (and the lab) from its own path.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

from sweeper.lab.files import write_file
from sweeper.lab.plan import RESTART_STAMP, SERVICES_LOG


@cache
def stand_in(name: str) -> str:
    """The text of a script in sweeper/lab/bin."""
    return files("sweeper.lab").joinpath("bin", name).read_text()


def install_tool(root: Path, path: str, name: str) -> None:
    """Install the stand-in `name` as-is at node path `path` (vecs-cli, dir-cli)."""
    write_file(root / path.lstrip("/"), stand_in(name), 0o755)


def install_service(
    root: Path, path: str, name: str, restarts: tuple[str, ...] = (), precheck: str = ""
) -> None:
    """Install a service stand-in at `path` that logs its calls under the node root.

    :param restarts: first arguments that restart the service that serves the node's TLS
        endpoint (`restart` for hostd, `--start` for service-control): only those make
        the endpoint load its certificate again
    :param precheck: node path of a program that must succeed before a restart (else it fails)
    """
    text = (
        stand_in("service-stub")
        .replace("@PATH@", path)
        .replace("@NAME@", name)
        .replace("@RESTARTS@", " ".join(restarts))
        .replace("@LOG@", SERVICES_LOG)
        .replace("@STAMP@", RESTART_STAMP)
        .replace("@PRECHECK@", precheck)
    )
    write_file(root / path.lstrip("/"), text, 0o755)
