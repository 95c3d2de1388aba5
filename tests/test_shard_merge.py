"""`scan --shard K/N` and `sweeper merge`: a lab swept as 3 shards and merged is the one-process
sweep (same nodes, findings, order); a key shared across shards is found only by the merge;
shards that are not the parts of one sweep are refused with one line (exit 2)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sweeper.cli.judging import Judging, judging_options
from sweeper.errors import BadInput
from sweeper.lab import LabHandle, start_lab
from sweeper.model import Node
from sweeper.shard import ShardSpec, parse_shard, shard_of
from tests.support import run
from tests.support.labs import planted_scan_args

SHARDS = 3
LINUX_ONLY = pytest.mark.skipif(sys.platform != "linux", reason="the lab serves POSIX shells")


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """A report without what differs between two runs of the same sweep: run ids, times, argv."""
    same = {key: value for key, value in report.items() if key != "run"}
    same["nodes"] = [{k: v for k, v in node.items() if k != "duration"} for node in report["nodes"]]
    return same


def report_in(folder: Path) -> Path:
    (found,) = folder.glob("*.json")
    return found


# --- the slice -------------------------------------------------------------------------------


def fleet(names: list[str]) -> tuple[Node, ...]:
    return tuple(Node(name=name, host="127.0.0.1") for name in names)


@pytest.mark.parametrize(
    ("text", "expected"), [("1/1", ShardSpec(1, 1)), ("3/4", ShardSpec(3, 4)), (" 2 / 2 ", ShardSpec(2, 2))]
)
def test_a_shard_is_k_of_n_counted_from_one(text: str, expected: ShardSpec) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "3", "a/b", "-1/3", "1/3/5", "", "1/100000"])
def test_a_shard_outside_one_to_n_is_bad_input(text: str) -> None:
    with pytest.raises(BadInput):
        parse_shard(text)


def test_shards_cover_every_node_once_whatever_the_inventory_order() -> None:
    names = [f"node-{i:03d}" for i in range(50)] + ["Zed", "alpha", "ä-umlaut"]
    shuffled = random.Random(7).sample(names, len(names))
    taken: list[str] = []
    for index in range(1, 5):
        mine = [n.name for n in shard_of(fleet(names), ShardSpec(index, 4))]
        theirs = [n.name for n in shard_of(fleet(shuffled), ShardSpec(index, 4))]
        assert sorted(mine) == sorted(theirs)
        assert len(mine) in (13, 14)
        taken += mine
    assert sorted(taken) == sorted(names)


def test_the_slice_does_not_depend_on_the_hash_seed() -> None:
    code = (
        "from sweeper.model import Node; from sweeper.shard import ShardSpec, shard_of; "
        "print([n.name for n in shard_of(tuple(Node(name=f'n{i}', host='h') for i in range(40)), "
        "ShardSpec(2, 3))])"
    )
    seen = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(seen) == 1


def test_a_shard_records_its_judging_options_with_absolute_paths(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    given = judging_options(
        crl=[Path("crls")], rule=["key-reuse", "rogue-root"], baseline=Path("before.json"), ocsp=True
    )
    resolved = given.resolved(None)
    recorded = resolved.as_args()
    assert str(tmp_path / "crls") in recorded and str(tmp_path / "before.json") in recorded
    monkeypatch.chdir("/")
    assert Judging.from_args(recorded, "shard.json") == resolved != given
    assert Judging.from_args((), "shard.json") == judging_options()
    with pytest.raises(BadInput):
        Judging.from_args(["--crl"], "shard.json")


def test_a_bad_shard_option_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = run.sweeper("scan", tmp_path / "none.toml", "--shard", "0/3", in_process=True)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--shard" in done.stderr


# --- against the lab ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with start_lab(tmp_path_factory.mktemp("lab"), nodes=12) as handle:
        yield handle


@pytest.fixture(scope="module")
def scan_args(lab: LabHandle) -> list[str]:
    return planted_scan_args(lab)


@pytest.fixture(scope="module")
def swept(lab: LabHandle, scan_args: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder: `one/` the one-process sweep, `shard-K/` each shard's."""
    folder = tmp_path_factory.mktemp("swept")
    one = run.sweeper("scan", lab.inventory, "--out", folder / "one", *scan_args, env=lab.env)
    assert one.returncode == 1, one.stderr
    for index in range(1, SHARDS + 1):
        shard = f"{index}/{SHARDS}"
        done = run.sweeper(
            "scan",
            lab.inventory,
            "--shard",
            shard,
            "--out",
            folder / f"shard-{index}",
            *scan_args,
            env=lab.env,
        )
        assert done.returncode in (0, 1), done.stderr
    return folder


def shard_reports(swept: Path) -> list[Path]:
    return [report_in(swept / f"shard-{index}") for index in range(1, SHARDS + 1)]


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("keys")
    private, public = folder / "report.pem", folder / "report.pub"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", private], check=True)
    subprocess.run(["openssl", "pkey", "-in", private, "-pubout", "-out", public], check=True)
    return private, public


@pytest.fixture(scope="module")
def merged(swept: Path, signing_key: tuple[Path, Path]) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The shards merged as they were judged (their reports say with which options)."""
    out = swept / "merged"
    done = run.sweeper(
        "merge", *shard_reports(swept), "--out", out, "--format", "all", "--sign", signing_key[0]
    )
    return done, out


@LINUX_ONLY
def test_shards_merged_are_the_one_process_sweep(swept: Path, merged: tuple[Any, Path]) -> None:
    done, out = merged
    assert done.returncode == 1, done.stderr
    one = json.loads(report_in(swept / "one").read_text())
    together = json.loads(report_in(out).read_text())
    assert [n["name"] for n in together["nodes"]] == [n["name"] for n in one["nodes"]]
    assert together["findings"] == one["findings"]
    assert comparable(together) == comparable(one)
    assert "shard" not in together["run"] and "der" not in together["nodes"][0]["certificates"][0]


@LINUX_ONLY
def test_options_given_to_merge_judge_instead_of_the_shards_own(swept: Path, tmp_path: Path) -> None:
    done = run.sweeper(
        "merge", *shard_reports(swept), "--out", tmp_path, "--rule", "key-reuse", "--rule", "weak-key"
    )
    assert done.returncode == 1, done.stderr
    rules = {f["rule"] for f in json.loads(report_in(tmp_path).read_text())["findings"]}
    assert "key-reuse" in rules and not {"rogue-root", "compromised-issuer", "ioc-match"} & rules


@LINUX_ONLY
def test_a_shard_is_never_the_baseline_of_the_next_sweep(lab: LabHandle, swept: Path) -> None:
    done = run.sweeper("scan", lab.inventory, "--out", swept / "shard-1", "--baseline", "last", env=lab.env)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "baseline" in done.stderr


@LINUX_ONLY
def test_each_shard_sweeps_its_slice_and_says_so(lab: LabHandle, swept: Path) -> None:
    names: list[str] = []
    for index, path in enumerate(shard_reports(swept), start=1):
        report = json.loads(path.read_text())
        assert report["run"]["shard"]["index"] == index and report["run"]["shard"]["count"] == SHARDS
        assert "--compromised-ca" in report["run"]["shard"]["judging"]
        names += [n["name"] for n in report["nodes"]]
        assert len(report["nodes"]) == 12 // SHARDS
    assert sorted(names) == sorted(lab.ports)


@LINUX_ONLY
def test_shards_run_side_by_side_keep_every_nodes_key_cache_entries(lab: LabHandle, tmp_path: Path) -> None:
    """Each shard writes back only its own nodes, merged with what the others wrote meanwhile:
    the cache the shards leave is the one a one-process sweep leaves (once, each shard's save
    replaced the file with its own nodes alone, and the next sweep was three-quarters cold)."""

    def cache_after(*sweeps: list[str]) -> dict[str, Any]:
        env = {**lab.env, "XDG_CACHE_HOME": str(tmp_path / f"cache-{len(sweeps)}")}
        started = [
            run.start("scan", lab.inventory, "--out", tmp_path / "out", *extra, env=env) for extra in sweeps
        ]
        for proc in started:
            assert run.finish(proc).returncode in (0, 1)
        return json.loads((Path(env["XDG_CACHE_HOME"]) / "sweeper" / "key-spki.json").read_text())["nodes"]

    one = cache_after([])
    shards = cache_after(*(["--shard", f"{index}/{SHARDS}"] for index in range(1, SHARDS + 1)))
    assert len(one) == len(lab.ports) and shards == one


@LINUX_ONLY
def test_a_key_shared_across_shards_is_found_only_by_the_merge(swept: Path, merged: tuple[Any, Path]) -> None:
    together = json.loads(report_in(merged[1]).read_text())
    reused = {f["node"] for f in together["findings"] if f["rule"] == "key-reuse"}
    assert len(reused) == 2
    homes = {
        n["name"]: index
        for index, path in enumerate(shard_reports(swept), start=1)
        for n in json.loads(path.read_text())["nodes"]
    }
    assert len({homes[node] for node in reused}) == 2, "the lab's reused key should span two shards"
    for path in shard_reports(swept):
        assert not [f for f in json.loads(path.read_text())["findings"] if f["rule"] == "key-reuse"]


@LINUX_ONLY
def test_the_merge_is_rendered_in_every_format_and_signed(
    merged: tuple[Any, Path], signing_key: tuple[Path, Path]
) -> None:
    done, out = merged
    report = report_in(out)
    stem = report.name.removesuffix(".json")
    for suffix in (".html", ".md", ".certificates.csv", ".findings.csv", ".junit.xml", ".sarif", ".json.sig"):
        assert (out / f"{stem}{suffix}").is_file(), suffix
    checked = run.sweeper("verify-report", report, "--pub", signing_key[1], in_process=True)
    assert checked.returncode == 0, checked.stderr
    shards = json.loads(report.read_text())["run"]["shards"]
    assert [s["index"] for s in shards] == [1, 2, 3]


def altered(source: Path, target: Path, change: Any) -> Path:
    document = json.loads(source.read_text())
    change(document)
    target.write_text(json.dumps(document))
    return target


@LINUX_ONLY
@pytest.mark.parametrize(
    ("case", "problem"),
    [
        ("other-inventory", "different inventories"),
        ("same-index", "is also"),
        ("overlap", "shards overlap"),
        ("mixed-counts", "mixed shard counts"),
        ("missing", "missing"),
        ("not-a-shard", "not a shard's report"),
        ("rotation", "not a scan's"),
        ("not-a-report", "not a sweeper.report/1"),
        ("swapped-der", "is not the certificate"),
        ("judged-differently", "judged differently"),
        ("other-input-files", "judged by different files"),
        ("input-changed-since", "changed or went away since they read it"),
    ],
)
def test_shards_that_are_not_one_sweep_are_refused(
    swept: Path, tmp_path: Path, case: str, problem: str
) -> None:
    first, second, third = shard_reports(swept)
    inventory = lambda d: d["run"]["inventory"].update(sha256="0" * 64)  # noqa: E731
    renumber = lambda d: d["run"]["shard"].update(index=3)  # noqa: E731
    recount = lambda d: d["run"]["shard"].update(count=4, index=3)  # noqa: E731
    rotation = lambda d: d["run"].update(kind="rotate")  # noqa: E731
    rejudge = lambda d: d["run"]["shard"].update(judging=["--expiring-days", "5"])  # noqa: E731
    rehash = lambda d: d["run"]["inputs"][0].update(sha256="0" * 64)  # noqa: E731

    def swap(document: dict[str, Any]) -> None:
        certificates = [c for n in document["nodes"] for c in n["certificates"]]
        other = next(c for c in certificates if c["sha256"] != certificates[0]["sha256"])
        certificates[0]["der"] = other["der"]

    given = {
        "other-inventory": [first, second, altered(third, tmp_path / "t1.json", inventory)],
        "same-index": [first, second, third, third],
        "overlap": [first, second, altered(second, tmp_path / "t2.json", renumber)],
        "mixed-counts": [first, second, altered(third, tmp_path / "t3.json", recount)],
        "missing": [first, third],
        "not-a-shard": [first, second, third, report_in(swept / "one")],
        "rotation": [first, second, altered(third, tmp_path / "t4.json", rotation)],
        "not-a-report": [first, second, altered(third, tmp_path / "t5.json", lambda d: d.update(schema="x"))],
        "swapped-der": [first, second, altered(third, tmp_path / "t6.json", swap)],
        "judged-differently": [first, second, altered(third, tmp_path / "t7.json", rejudge)],
        "other-input-files": [first, second, altered(third, tmp_path / "t8.json", rehash)],
        "input-changed-since": [
            altered(s, tmp_path / f"all-{i}.json", rehash) for i, s in enumerate(shard_reports(swept))
        ],
    }[case]
    done = run.sweeper("merge", *given, "--out", tmp_path / "out", in_process=True)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and problem in done.stderr, done.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.json"))


def test_merge_of_nothing_readable_is_one_line(tmp_path: Path) -> None:
    shutil.copyfile(__file__, tmp_path / "x.json")
    done = run.sweeper(
        "merge", tmp_path / "x.json", tmp_path / "absent.json", "--out", tmp_path, in_process=True
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1
