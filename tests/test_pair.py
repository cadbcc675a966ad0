"""One (task, model) pair: its plan of points, run_pair's resume point by point, the pair index, the summary.

The points run for real (``study.run_point``) on the tiny stand-in data of ``test_study`` (its ``load_data``
collaborator), so resuming is checked on the files a point writes, not on a mock of them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import functools
import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from transferlimits import paths, study
from transferlimits.config import get_profile
from transferlimits.resolved import load_resolved, write_resolved
from transferlimits.runtime import atomic_save_torch
from transferlimits.study import pair_summary
from transferlimits.study import runs as study_runs
from transferlimits.study.pair import PairRequest, PointKey, pair_points, parse_objectives, parse_seeds, run_pair
from transferlimits.study.pair_index import index_problem, load_indexed_points, read_index
from transferlimits.study.point import pair_collaborators
from transferlimits.tasks import get_task

import toy_model  # noqa: F401  (registers the one-objective model "toy")
from _finetune_data import tiny_splits

torch.set_num_threads(1)
GRID, SLICE = (16, 16, 16), 14


# ---------------------------------------------------------------- the plan of a pair
@pytest.mark.parametrize("value, expected", [
    ("", (0, 1, 2)), (None, (0, 1, 2)), ([], (0, 1, 2)), (1, (1,)), ("1", (1,)), ("0,2", (0, 2)), ("[1, 2]", (1, 2)),
    ([2, 0, 2], (2, 0)),
])
def test_parse_seeds(value, expected):
    assert parse_seeds(value, (0, 1, 2)) == expected


@pytest.mark.parametrize("value", [-1, "a", "1,-2", True, 1.5, {"a": 1}])
def test_parse_seeds_refuses_bad_values(value):
    with pytest.raises(ValueError, match="seeds"):
        parse_seeds(value, (0,))


def test_parse_objectives():
    assert parse_objectives("") is None and parse_objectives("native") == ("native",)
    assert parse_objectives("native,swapped") == ("native", "swapped")
    with pytest.raises(ValueError, match=r"valid: \['native', 'swapped', 'native_short', 'random', 'transfusion', 'positive'\]"):
        parse_objectives("native,mae")


def test_pair_points_follow_the_profile_and_the_adapter():
    cpu = get_profile("cpu")
    pts = pair_points("segmentation", "provicnet", cpu)
    kinds = ("native", "swapped", "random", "positive")  # + the cpu profile's two encoder controls
    assert [(p.seed, p.objective) for p in pts] == [(s, o) for s in (0, 1, 2) for o in kinds]
    assert pts[1].name == "segmentation__provicnet__seed0__swapped" == paths.point_name("segmentation", "provicnet", 0,
                                                                                        "swapped")
    smoke = get_profile("smoke")  # the smoke control runs on classification and super-resolution only
    assert [p.objective for p in pair_points("segmentation", "profound", smoke)] == ["native"]
    assert [p.objective for p in pair_points("segmentation", "profound", cpu, released=True)] == ["native"] * 3
    toy = get_profile("cpu", models=("profound", "provicnet", "toy"))  # one objective: no control runs
    assert [p.objective for p in pair_points("segmentation", "toy", toy)] == ["native", *cpu.control_inits] * 3
    with pytest.raises(ValueError, match="has no swapped-objective control"):
        pair_points("segmentation", "toy", toy, objectives=("native", "swapped"))


def test_point_name_is_the_one_name():
    assert paths.point_name("a", "m", 3) == "a__m__seed3" and paths.run_dir("p", "a", "m", 3).name == "a__m__seed3"
    assert paths.run_dir("p", "a", "m", 3, "swapped").name == "a__m__seed3__swapped"
    assert study.point_dir("p", "a", "m", 3, "swapped") == PointKey("a", "m", 3, "swapped").folder("p")
    with pytest.raises(ValueError, match="unknown objective kind"):
        paths.point_name("a", "m", 0, "other")


# ---------------------------------------------------------------- run_pair on real (tiny) points
def _tiny_profile():
    return get_profile(
        "smoke", grid={"shape": GRID, "spacing": (3.0, 6.0, 6.0)}, slice_size=SLICE,
        encoder_sizes={"profound": "test", "provicnet": "test"}, seeds=(0, 1),
        control_tasks=("classification",), splits={"pretrain": 4, "train": 8, "val": 4, "test": 6},
        finetune={"epochs": 1, "batch_size": 4}, measure={"n_permutations": 9, "n_bootstrap": 3, "token_samples": 16})


def _load_data(profile, task, model, seed):
    spec = get_task(task)
    return spec, tiny_splits(spec.kind, model, real=not spec.uses_labels, grid=GRID, slice_size=SLICE)


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path / "results"))
    prof = _tiny_profile()
    enc = study_runs.scratch_encoder(prof, "profound", seed=123)
    path = tmp_path / "encoder.pt"
    atomic_save_torch(path, {"state_dict": enc.state_dict(), "model": "profound", "size": "test", "objective": "test",
                             "img_size": None})
    return prof, {"native": path, "swapped": path}


class Counting:
    """``finetune_all`` that counts its calls and can stop the job (KeyboardInterrupt) before call ``stop_at``."""

    def __init__(self, stop_at: int | None = None):
        self.calls, self.stop_at = 0, stop_at

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.stop_at is not None and self.calls >= self.stop_at:
            raise KeyboardInterrupt("killed")
        return study_runs.finetune_all(*args, **kwargs)


def _runner(counter):
    return functools.partial(study.run_point, collaborators=study.Collaborators(_load_data, counter))


def test_a_killed_pair_loses_only_the_unfinished_point_and_resumes(tiny):
    prof, encoders = tiny
    index = paths.pair_index(prof.name, "classification", "profound")
    first = Counting(stop_at=3)  # the job is killed while computing its third point
    with pytest.raises(KeyboardInterrupt):
        run_pair("classification", "profound", prof, PairRequest(encoders=encoders, index=index), progress=False,
                 point_runner=_runner(first))
    done = sorted(p.name for p in paths.results_dir(prof.name).glob("runs/*") if (p / "metrics.json").exists())
    assert done == ["classification__profound__seed0", "classification__profound__seed0__swapped"]
    assert not index.exists()  # the index is the job's output: written only when every point is finished
    again = Counting()
    points = run_pair("classification", "profound", prof, PairRequest(encoders=encoders, index=index),
                      progress=False, point_runner=_runner(again))
    assert again.calls == 2, "the re-run re-computed finished points"
    assert [(m["seed"], m["objective"]) for m in points] == [(0, "native"), (0, "swapped"), (1, "native"),
                                                            (1, "swapped")]
    swapped = points[1]
    assert swapped["runs"]["scratch"]["reused_from"].endswith("classification__profound__seed0/metrics.json")
    assert not Path(swapped["runs"]["scratch"]["reused_from"]).is_absolute(), "a machine path in a committed file"
    assert index_problem(index, [paths.point_name("classification", "profound", s, o)
                                 for s in (0, 1) for o in ("native", "swapped")]) is None
    assert [m["seed"] for m in load_indexed_points([index])] == [0, 0, 1, 1]
    doc = read_index(index)  # each point's features.npz declared; the floor of a seed is the other seed's
    assert all(e["features"] == f"runs/{e['point']}/features.npz" for e in doc["points"])
    for name, rec in doc["calibration"]["points"].items():
        assert rec["floor_seeds"] == [1 - rec["seed"]] and np.isfinite(rec["floor"]) and np.isfinite(rec["ceiling"])
        assert (rec["calibrated"] is None) == (rec["ceiling"] - rec["floor"] <= rec["floor"]), name
    third = Counting()
    run_pair("classification", "profound", prof, PairRequest(encoders=encoders), progress=False,
             point_runner=_runner(third))
    assert third.calls == 0  # everything resumed

    def no_compute(*args, **kwargs):
        raise AssertionError("render-only must not compute")

    shown = run_pair("classification", "profound", get_profile("smoke", seeds=(0, 1), control_tasks=("classification",)),
                     PairRequest(render_only=True), point_runner=no_compute)  # another profile object: no settings check
    assert [m["runs"] for m in shown] == [m["runs"] for m in points]
    with pytest.raises(FileNotFoundError, match="render-only: point classification__profound__seed2"):
        run_pair("classification", "profound", prof, PairRequest(seeds=(2,), render_only=True), point_runner=no_compute)


def test_encoder_controls_are_made_once_and_reuse_the_native_scratch_and_ablated_runs(tiny):
    prof, encoders = tiny
    prof = replace(prof, seeds=(0,), control_inits=("random", "transfusion"))
    native = paths.pretrain_dir(prof.name, "profound", "fcmae") / "encoder.pt"
    native.parent.mkdir(parents=True)
    shutil.copy(encoders["native"], native)
    points = run_pair("classification", "profound", prof, PairRequest(objectives=("native", "random", "transfusion")),
                      progress=False, point_runner=_runner(Counting()))
    assert [m["objective"] for m in points] == ["native", "random", "transfusion"]
    assert [m["objective_name"] for m in points] == ["fcmae", "random", "transfusion"]
    for m in points[1:]:
        for init in ("scratch", "ablated"):
            assert m["runs"][init]["reused_from"].endswith("classification__profound__seed0/metrics.json")
            assert m["runs"][init]["test"] == points[0]["runs"][init]["test"]
        # an encoder control fine-tunes only: no linear probe, and the point says why
        assert set(m["encoder_share"]) == set(m["runs"]) - {"ablated"} == {"pretrained", "scratch"}
        assert m["rpg"]["vs_linear_probe"] == {} and m["normalised_gain"]["vs_linear_probe"] is None
        assert "fine-tunes its encoder only" in m["undefined"]["normalised_gain.vs_linear_probe"]
    assert "linear_probe" in points[0]["runs"] and points[0]["rpg"]["vs_linear_probe"]
    files = {k: paths.results_dir(prof.name) / "pretrain" / f"profound__{k}" / "encoder.pt" for k in ("random", "transfusion")}
    assert all(f.is_file() for f in files.values())
    stamp = {k: f.stat().st_mtime_ns for k, f in files.items()}
    run_pair("classification", "profound", prof, PairRequest(objectives=("native", "random")), progress=False,
             point_runner=_runner(Counting()))
    assert {k: f.stat().st_mtime_ns for k, f in files.items()} == stamp  # made once


def test_index_notices_a_changed_or_missing_point(tiny):
    prof, encoders = tiny
    index = paths.pair_index(prof.name, "classification", "profound")
    run_pair("classification", "profound", prof, PairRequest((0,), ("native",), encoders, index=index),
             progress=False, point_runner=_runner(Counting()))
    assert read_index(index)["points"][0]["point"] == "classification__profound__seed0"
    assert index_problem(index, ["classification__profound__seed1"]).startswith("lists points")
    metrics = paths.run_dir(prof.name, "classification", "profound", 0) / "metrics.json"
    metrics.write_text(json.dumps(json.loads(metrics.read_text()), indent=1))  # same values, other bytes
    assert "changed since the pair was indexed" in index_problem(index)
    with pytest.raises(ValueError, match="changed since the pair was indexed.*re-run"):
        load_indexed_points([index])
    metrics.unlink()
    assert "metrics.json is missing" in index_problem(index)
    index.write_text("{")
    assert "unreadable" in index_problem(index)


# ---------------------------------------------------------------- the resolved profile
def test_resolved_profile_round_trips_and_is_rewritten_only_on_change(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path))
    assert load_resolved("smoke") == get_profile("smoke")  # no file: the defaults
    path = write_resolved("cpu", {"seeds": [0], "task_finetune": {"segmentation": {"epochs": 2}}})
    prof = load_resolved("cpu")
    assert prof.seeds == (0,) and prof.finetune_for("segmentation").epochs == 2
    doc = json.loads(path.read_text())
    assert doc["profile"]["seeds"] == [0] and doc["name"] == "cpu"
    mtime = path.stat().st_mtime_ns
    write_resolved("cpu", {"seeds": [0], "task_finetune": {"segmentation": {"epochs": 2}}})
    assert path.stat().st_mtime_ns == mtime, "an unchanged profile must not touch profile.json"
    with pytest.raises(ValueError, match="holds profile 'cpu', not 'smoke'"):
        load_resolved("smoke", path)
    with pytest.raises(ValueError, match="finetune"):
        write_resolved("cpu", {"finetune": {"epochs": -1}})


def test_set_changes_one_field_of_one_task_recipe():
    from transferlimits.runner.overrides import parse_overrides

    over = parse_overrides(["task_finetune.segmentation.epochs=2"], "cpu")
    cpu = get_profile("cpu")
    prof = get_profile("cpu", **over)
    assert prof.finetune_for("segmentation").epochs == 2
    assert prof.finetune_for("segmentation").batch_size == cpu.finetune_for("segmentation").batch_size


# ---------------------------------------------------------------- the pair page's numbers
def _point(seed, objective, pre, scr, probe, base, higher=True, rpg=None):
    return {"task": "t", "model": "m", "seed": seed, "objective": objective, "objective_name": objective[:3],
            "task_spec": {"primary_metric": "auc", "higher_is_better": higher},
            "runs": {"pretrained": {"test": {"auc": pre}}, "scratch": {"test": {"auc": scr}},
                     "linear_probe": {"test": {"auc": probe}}},
            "baseline_primary": {"value": base}, "rpg_primary": rpg}


def test_seed_scores_and_paired_gain_against_a_hand_computation():
    pts = [_point(0, "native", 0.7, 0.6, 0.5, 0.5, rpg=10.0), _point(1, "native", 0.8, 0.6, 0.5, 0.5, rpg=20.0),
           _point(2, "native", 0.6, 0.6, None, 0.5), _point(0, "swapped", 0.9, 0.6, 0.5, 0.5, rpg=50.0)]
    table = pair_summary.seed_scores(pts)
    assert list(table["objective"]) == ["native"] * 3 + ["swapped"]
    assert np.allclose(table["diff"], [0.1, 0.2, 0.0, 0.3]) and math.isnan(table.loc[2, "linear_probe"])
    gain = pair_summary.paired_gain(table).set_index("objective")
    d = np.array([0.1, 0.2, 0.0])
    half = 4.302652729911275 * d.std(ddof=1) / math.sqrt(3)  # t_{0.975, 2}
    assert gain.loc["native", "n"] == 3 and math.isclose(gain.loc["native", "mean"], d.mean())
    assert math.isclose(gain.loc["native", "ci_high"] - gain.loc["native", "mean"], half, rel_tol=1e-9)
    assert gain.loc["native", "rpg_mean"] == 15.0 and gain.loc["native", "rpg_n"] == 2
    assert gain.loc["swapped", "n"] == 1 and math.isnan(gain.loc["swapped", "ci_low"])
    lower = pair_summary.seed_scores([_point(0, "native", 1.0, 2.0, 3.0, 4.0, higher=False)])
    assert lower.loc[0, "diff"] == 1.0  # lower is better: pretrained 1.0 vs scratch 2.0 is a gain of +1
    with pytest.raises(ValueError, match="one \\(task, model\\) pair"):
        pair_summary.seed_scores(pts + [dict(_point(0, "native", 1, 1, 1, 1), task="other")])
    with pytest.raises(ValueError, match="no points"):
        pair_summary.seed_scores([])
    assert isinstance(table, pd.DataFrame)
    text = pair_summary.findings_text(table, pair_summary.paired_gain(table), "ProFound", "auc")
    assert text.startswith("ProFound, auc over 3 seed(s): pretrained 0.700, scratch 0.600")
    assert "beaten by pretrained in 3 and by scratch in 3 of 3 seeds" in text
    assert "[95 % CI -0.1484, 0.3484]; the interval includes 0" in text and "swapped objective (swa)" in text
    one = pair_summary.seed_scores([_point(0, "native", 1.0, 2.0, 3.0, 4.0, higher=False)])
    assert "(one seed: no interval)" in pair_summary.findings_text(one, pair_summary.paired_gain(one), "M", "mae")


def test_the_points_of_a_job_load_each_seeds_data_once():
    calls = []

    def load(profile, task, model, seed):
        calls.append((task, model, seed))
        return object(), {"test": [seed]}

    load_once = pair_collaborators(load).load_data
    first = load_once(None, "t", "m", 1)
    assert load_once(None, "t", "m", 1) is first and load_once(None, "t", "m", 2) is not first
    assert calls == [("t", "m", 1), ("t", "m", 2)]


def test_the_points_of_a_job_score_each_test_splits_baselines_once():
    calls = []

    def baselines(spec, data, spacing=None):
        calls.append((spec.name, spacing))
        return {"identity": {"psnr": 30.0}}

    class Spec:
        def __init__(self, name):
            self.name = name

    got = pair_collaborators(baselines_of=baselines).baselines_of
    seed1, seed2 = {"test": ["a"]}, {"test": ["a"]}  # equal, but another split object
    first = got(Spec("t"), seed1, (3.0, 1.5, 1.5))
    first["identity"]["psnr"] = -1.0  # a caller's edit does not reach the memo
    assert got(Spec("t"), seed1, (3.0, 1.5, 1.5)) == {"identity": {"psnr": 30.0}}
    got(Spec("t"), seed2, (3.0, 1.5, 1.5))
    got(Spec("u"), seed1, (3.0, 1.5, 1.5))
    got(Spec("t"), seed1, (1.0, 1.0, 1.0))
    assert len(calls) == 4
