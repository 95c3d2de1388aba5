"""The README's first promise: `sweeper demo` tells the whole story on a lab fleet and ends green."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.run import sweeper


def test_the_demo_sweeps_the_incident_rotates_everything_and_sweeps_clean(tmp_path: Path) -> None:
    done = sweeper("demo", "--nodes", "5", "--dir", str(tmp_path / "lab"), "--out", str(tmp_path / "reports"))
    assert done.returncode == 0, done.stderr
    listed = {
        line.split(":", 1)[0].strip(): Path(line.split(":", 1)[1].split()[0])
        for line in done.stderr.splitlines()
        if line.strip().startswith(("before:", "rotation:", "after:"))
    }
    assert set(listed) == {"before", "rotation", "after"}, done.stderr
    reports = {name: json.loads(path.read_text()) for name, path in listed.items()}
    assert reports["rotation"]["run"]["kind"] == "rotate" and reports["rotation"]["rotation"]["complete"]
    assert reports["before"]["summary"]["findings"]["critical"] > 0, "the planted incident is found"
    after = reports["after"]["summary"]["findings"]
    assert after["critical"] == after["high"] == after["medium"] == 0, "and gone after the rotation"
    for path in listed.values():
        assert path.with_suffix(".html").is_file() and path.with_suffix(".sarif").is_file()
