"""A simulated fleet on this machine: built node trees served over real SSH, with a planted incident.

with start_lab(Path("/tmp/lab"), nodes=20) as lab:
    ...  # lab.inventory, lab.known_hosts, lab.env, lab.tls_ports; incident under /tmp/lab/incident
"""

from sweeper.lab.build import LabBuild, build_lab
from sweeper.lab.control import LabHandle, start_lab, stop_lab
from sweeper.lab.paths import LabError, LabPaths
from sweeper.lab.server import serve_lab

__all__ = [
    "LabBuild",
    "LabError",
    "LabHandle",
    "LabPaths",
    "build_lab",
    "serve_lab",
    "start_lab",
    "stop_lab",
]
