"""Labs in tests: the planted incident's scan options, and a test module's own lab, for the modules
whose tests change it (rotations, rollbacks): the lab for the whole module, and for every test the
lab's secrets and a journal passphrase in the environment, so that each sweeper a test starts
finds them as an operator's shell would hold them.

    lab, lab_secrets = own_lab(nodes=5, passphrase="...")  # module level: pytest finds both
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from sweeper.lab import LabHandle, start_lab
from sweeper.lab.server import LOGIN


def own_lab(nodes: int, passphrase: str) -> tuple[Callable[..., object], Callable[..., object]]:
    """The `lab` (module-scoped) and `lab_secrets` (autouse) fixtures of one test module."""

    @pytest.fixture(scope="module")
    def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
        with start_lab(tmp_path_factory.mktemp("lab"), nodes=nodes) as handle:
            yield handle

    @pytest.fixture(autouse=True)
    def lab_secrets(lab: LabHandle, monkeypatch: pytest.MonkeyPatch) -> None:
        for name, value in {**lab.env, "SWEEPER_JOURNAL_PASSPHRASE": passphrase}.items():
            monkeypatch.setenv(name, value)

    return lab, lab_secrets


def planted_scan_args(lab: LabHandle) -> list[str]:
    """The scan options of the lab's planted incident (CRL, IOCs, compromised CA, expected roots)."""
    return json.loads((lab.dir / "incident" / "manifest.json").read_text())["scan_args"]


def logins(lab: LabHandle, node: str) -> int:
    """How many times `node` was logged in to so far, from its var/log/auth.log as sshd's."""
    log = lab.dir / "nodes" / node / "var" / "log" / "auth.log"
    return log.read_text().count(LOGIN) if log.exists() else 0
