"""The staged compute path (issue 27): slices of the grid as child processes sharing one accelerator
(``runner.compute_slices``), the ``compute`` stages (``--until``, ``--no-publish``) and grid.json's record of a
staged job (parallel stages listed, not counted; appends under a lock)."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import pytest

from transferlimits import paths
from transferlimits.runner.compute_slices import Slice, child_argv, run_slices, slices_for
from transferlimits.runner.grid import build_grid, parse_only
from transferlimits.runner.invocations import record_grid_wall


def _args(**kw) -> argparse.Namespace:
    base = {"profile": "smoke", "device": "cpu", "set": ["seeds=[0]"], "data": None, "labels": None}
    return argparse.Namespace(**{**base, **kw})


def test_one_pretraining_slice_per_model_and_one_slice_per_pair_keeping_the_seed_filter():
    grid = build_grid("smoke", parse_only("task=classification,task=segmentation"))
    pre, pairs = slices_for(grid, ["0"])
    assert [p.only for p in pre] == [f"model={m}" for m in dict.fromkeys(m for m, _ in grid.pretrain)]
    assert all(p.until == "pretrain" for p in pre) and all(p.until == "pairs" for p in pairs)
    assert sorted(p.name for p in pairs) == sorted(j.name for j in grid.pairs) and len(pairs) == 4
    assert all(p.only.endswith(",seed=0") and p.only.startswith("task=") for p in pairs)


def test_child_command_carries_profile_overrides_device_stage_and_the_time_left():
    argv = child_argv(_args(data="/d"), Slice("classification__profound", "task=classification,model=profound",
                                              "pairs"), 123.4)
    assert argv[:4] == [sys.executable, "-m", "transferlimits", "compute"]
    flags = dict(zip(argv[4::1], argv[5::1]))
    assert flags["--profile"] == "smoke" and flags["--device"] == "cpu" and flags["--until"] == "pairs"
    assert flags["--only"] == "task=classification,model=profound" and flags["--stop-after"] == "123"
    assert "--no-publish" in argv and flags["--set"] == "seeds=[0]" and flags["--data"] == "/d"
    assert "--labels" not in argv
    assert child_argv(_args(), Slice("s", "model=profound", "pretrain"), -5)[argv.index("--stop-after") + 1] == "1"


def _fake(args, piece, left):  # a child that sleeps briefly, prints, and exits with the code in its --only
    code = int(piece.only)
    return [sys.executable, "-c", f"import time; time.sleep(0.3); print('child {piece.name}'); raise SystemExit({code})"]


def test_children_run_at_most_parallel_at_once_log_their_output_and_report_failures(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path))
    said: list[str] = []
    pieces = [Slice(f"s{i}", str(code), "pairs") for i, code in enumerate([0, 3, 0, 0])]
    t = time.time()
    status = run_slices(_args(), pieces, lambda: 1e9, 2, said.append, argv_of=_fake)
    assert status == {"s0": 0, "s1": 3, "s2": 0, "s3": 0}
    assert time.time() - t >= 0.55  # 4 children of 0.3 s, 2 at a time: two rounds at least
    logs = paths.results_dir("smoke") / "logs"
    assert (logs / "compute__s2.log").read_text().strip() == "child s2"
    assert any(line.startswith("slice s1: exit 3") for line in said)
    assert any("s1| child s1" in line for line in said)  # a failed child's last lines are echoed


def test_no_slice_starts_with_too_little_time_left(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path))
    said: list[str] = []
    status = run_slices(_args(), [Slice("late", "0", "pairs")], lambda: 5.0, 4, said.append, argv_of=_fake)
    assert status == {} and said == ["slice late not started: too little time left"]


def test_staged_invocations_are_listed_but_only_the_last_call_counts_its_wall(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path))
    now = time.time()
    record_grid_wall("p", now - 100, 0, None, False, {"counted": False})  # a parallel slice
    path = record_grid_wall("p", now - 30, 0, None, False, {"counted": True})  # the job's last call
    grid = json.loads(path.read_text())
    assert len(grid["invocations"]) == 2 and 29 < grid["wall_s"] < 60


def test_parallel_appends_to_grid_json_lose_no_invocation(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path))  # threads: each append opens its own lock file
    threads = [threading.Thread(target=record_grid_wall, args=("p", time.time(), 0, None, False,
                                                               {"i": i, "counted": False})) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    grid = json.loads((tmp_path / "p" / "grid.json").read_text())
    assert sorted(r["i"] for r in grid["invocations"]) == list(range(8)) and grid["wall_s"] == 0


@pytest.mark.timeout(600)
def test_until_data_stops_after_the_cohort_and_no_publish_writes_no_book_files(tmp_path, monkeypatch):
    from conftest import make_sandbox, sandbox_env
    import subprocess
    root = make_sandbox(tmp_path / "sandbox")
    env = sandbox_env(root)
    tiny = ["--set", "seeds=[0]", "--set", "splits={pretrain: 8, train: 4, val: 2, test: 4}",
            "--set", "grid.shape=[16,32,32]", "--set", "grid.spacing=[3,2,2]", "--set", "slice_size=28",
            "--set", "encoder_sizes.profound=test", "--set", "encoder_sizes.provicnet=test"]
    proc = subprocess.run([sys.executable, "-m", "transferlimits", "compute", "--profile", "smoke", "--device", "cpu",
                           "--until", "data", *tiny], env=env, capture_output=True, text=True, timeout=500)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = root / "results" / "smoke"
    assert (results / "data" / "manifest.json").is_file() and (results / "linear_references.json").is_file()
    assert not (results / "pretrain").exists() and "stage data done" in proc.stderr
    assert not (root / "book" / "generated" / "smoke" / "results").exists()
    grid = json.loads((results / "grid.json").read_text())
    assert grid["invocations"][-1]["counted"] is False and grid["wall_s"] == 0


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_parallel_must_be_a_whole_number_of_processes(value, capsys):
    from transferlimits.runner.cli_compute import add_arguments
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--parallel", value])
    err = capsys.readouterr().err
    assert "--parallel" in err and repr(value) in err
    assert parser.parse_args(["--parallel", "3"]).parallel == 3
