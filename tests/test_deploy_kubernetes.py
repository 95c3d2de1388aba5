"""deploy/kubernetes/: the manifests read by a YAML parser are an Indexed Job of N shards and a merge
Job on one shared volume, run as non-root; their container commands, run here once per index with
JOB_COMPLETION_INDEX set (paths given through the manifests' own variables), sweep the lab into
shard reports whose merge is the one-process sweep."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sweeper.lab import LabHandle, start_lab
from tests.support import run
from tests.support.labs import planted_scan_args

DEPLOY = Path(__file__).parent.parent / "deploy"
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the lab serves POSIX shells")


def manifests() -> list[dict[str, Any]]:
    return [
        document
        for path in sorted((DEPLOY / "kubernetes").glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def job(component: str) -> dict[str, Any]:
    (found,) = [
        m
        for m in manifests()
        if m["kind"] == "Job" and m["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    return found


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    (only,) = manifest["spec"]["template"]["spec"]["containers"]
    return only


def env_of(manifest: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container(manifest)["env"] if "value" in item}


def shards() -> int:
    return int(env_of(job("scan"))["SWEEPER_SHARDS"])


def test_the_scan_is_an_indexed_job_with_one_completion_per_shard() -> None:
    spec = job("scan")["spec"]
    assert spec["completionMode"] == "Indexed"
    assert (
        spec["completions"] == spec["parallelism"] == shards() == int(env_of(job("merge"))["SWEEPER_SHARDS"])
    )
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert "JOB_COMPLETION_INDEX" in " ".join(container(job("scan"))["command"])


def test_inventory_and_keys_come_from_a_secret_known_hosts_from_a_configmap() -> None:
    pod = job("scan")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in container(job("scan"))["volumeMounts"]}
    secret = next(
        name for name, v in volumes.items() if v.get("secret", {}).get("secretName") == "sweeper-inventory"
    )
    assert env_of(job("scan"))["SWEEPER_INVENTORY"].startswith(mounts[secret] + "/")
    assert volumes[secret]["secret"]["defaultMode"] & 0o007 == 0, "keys readable by others"
    assert any(v.get("configMap", {}).get("name") == "sweeper-known-hosts" for v in volumes.values())


def test_both_jobs_share_the_reports_claim() -> None:
    (claim,) = [m for m in manifests() if m["kind"] == "PersistentVolumeClaim"]
    assert "ReadWriteMany" in claim["spec"]["accessModes"]
    for component in ("scan", "merge"):
        volumes = job(component)["spec"]["template"]["spec"]["volumes"]
        reports = [
            v
            for v in volumes
            if v.get("persistentVolumeClaim", {}).get("claimName") == claim["metadata"]["name"]
        ]
        assert len(reports) == 1
        mount = next(m for m in container(job(component))["volumeMounts"] if m["name"] == reports[0]["name"])
        assert env_of(job(component))["SWEEPER_REPORTS"] == mount["mountPath"]


def test_pods_and_image_run_as_the_same_non_root_user() -> None:
    containerfile = (DEPLOY / "Containerfile").read_text()
    users = re.findall(r"^USER\s+(\d+)", containerfile, re.M)
    assert users and int(users[-1]) != 0
    for component in ("scan", "merge"):
        context = job(component)["spec"]["template"]["spec"]["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] == int(users[-1])
        assert container(job(component))["securityContext"]["allowPrivilegeEscalation"] is False


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with start_lab(tmp_path_factory.mktemp("lab"), nodes=12) as handle:
        yield handle


def run_container(manifest: dict[str, Any], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The container's command as the pod would run it, here: the manifest's env, then `env`."""
    spec = container(manifest)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    environment = {**os.environ, **env_of(manifest), "HOME": os.environ["HOME"], "PATH": path, **env}
    return subprocess.run(
        [*spec["command"], *spec.get("args", [])],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_jobs_commands_sweep_the_lab_as_one_process_would(lab: LabHandle, tmp_path: Path) -> None:
    scan_args = planted_scan_args(lab)
    given = {
        "SWEEPER_INVENTORY": str(lab.inventory),
        "SWEEPER_REPORTS": str(tmp_path / "reports"),
        "SWEEPER_JUDGING": " ".join(scan_args),
        **lab.env,
    }
    for index in range(shards()):
        done = run_container(job("scan"), {**given, "JOB_COMPLETION_INDEX": str(index)})
        assert done.returncode == 0, done.stderr
    merged = run_container(job("merge"), given)
    assert merged.returncode == 1, merged.stderr  # the lab's incident: findings at or above high
    one = run.sweeper("scan", lab.inventory, "--out", tmp_path / "one", *scan_args, env=lab.env)
    assert one.returncode == 1, one.stderr

    (together,) = (tmp_path / "reports" / "merged").glob("*.json")
    (alone,) = (tmp_path / "one").glob("*.json")
    together_report, alone_report = json.loads(together.read_text()), json.loads(alone.read_text())
    assert len(together_report["run"]["shards"]) == shards()
    assert [n["name"] for n in together_report["nodes"]] == [n["name"] for n in alone_report["nodes"]]
    assert together_report["findings"] == alone_report["findings"]
    assert (tmp_path / "reports" / "merged" / together.name.replace(".json", ".html")).is_file()
