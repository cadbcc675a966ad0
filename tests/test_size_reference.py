"""Sizing the reference grid from measured throughput (``benchmarks/size_reference.py``, issue 27): its step and
point counts, its projection, and the choice of the largest level that fits (stand-in calibrations)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from _scripts import ROOT, load_script
from transferlimits.config import get_profile
from transferlimits.runner.overrides import parse_overrides


@pytest.fixture(scope="module")
def sr():
    import sys
    sys.path.insert(0, str(ROOT / "benchmarks"))  # it imports calibrate_gpu, which imports its siblings
    try:
        yield load_script("benchmarks/size_reference.py", "bench_size_reference")
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def _level(sr, name):
    sets = dict(sr.LADDERS["reference"])[name]
    return get_profile("reference", **parse_overrides(sets, "reference"))


def test_pair_work_counts_every_run_of_the_design(sr):
    prof = get_profile("cpu")  # 3 seeds, controls random + positive, the 2x2 on every task
    w = sr.pair_work(prof, "classification")
    r = prof.finetune_for("classification")
    steps = math.ceil(64 / r.batch_size) * r.epochs * r.batch_size / 2  # scaled to the calibrated batch of 2
    evals = (sr.EVALUATIONS_PER_RUN * r.eval_subset + 24 + 100) / 6
    runs = 3 * (4 + 2 + 1 + 1)  # native: 4 runs; swapped: 2 (with its linear probe); random, positive: 1 each
    positive = math.ceil(256 / r.batch_size) * r.epochs * 3 * r.batch_size / 2
    assert w["points"] == 3 * 4 and w["steps"] == pytest.approx(runs * (steps + evals) + positive)
    assert sr.pair_work(prof, "segmentation")["steps"] > w["steps"]  # more steps at batch 2


def test_a_label_budget_steps_over_its_cases_and_leaves_the_positive_control_as_it_was(sr):
    prof = get_profile("cpu")
    seg = prof.finetune_for("segmentation")
    budget = prof.with_task_finetune("segmentation", train_cases=seg.train_cases or 16, epochs=seg.epochs)
    full = prof.with_task_finetune("segmentation", train_cases=0, epochs=seg.epochs)
    r = budget.finetune_for("segmentation")
    per_run = lambda p: sr.pair_work(p, "segmentation")["steps"]  # noqa: E731
    assert per_run(budget) < per_run(full)  # fewer cases, the same epochs: fewer steps
    # the positive control trains as many epochs over its pool as the unbudgeted recipe would give it: 24 epochs
    # over 16 of 64 cases count as 6 epochs of the split, x 3
    assert sr.positive_epochs(dataclasses.replace(r, epochs=24, train_cases=16), 64) == 18
    assert sr.positive_epochs(dataclasses.replace(r, epochs=6, train_cases=0), 64) == 18


def test_projection_is_cohort_plus_longest_pretraining_plus_longest_pair(sr):
    prof = _level(sr, "cpu-grid")
    rows = [{"loop": f"{k} {m}", "s_per_step": 0.01} for k in ("pretrain", "finetune") for m in prof.models]
    p = sr.project(prof, rows, contention=2.0, point_overhead=10.0, workers=4)
    assert p["pretrain_s"] == pytest.approx(2 * prof.pretrain.steps * 0.01 * 2.0)
    assert p["longest_pair"].startswith("segmentation__")
    seg = sr.pair_work(prof, "segmentation")
    assert p["pairs_s"][p["longest_pair"]] == pytest.approx(seg["steps"] * 0.01 * 2.0 + seg["points"] * 10.0)
    assert p["projected_s"] == pytest.approx(p["cohort_s"] + p["pretrain_s"] + p["pairs_s"][p["longest_pair"]])


def test_ladder_shrinks_inputs_then_cases_and_never_seeds_tasks_or_design(sr):
    levels = [_level(sr, name) for name, _ in sr.LADDERS["reference"]]
    voxels = [math.prod(p.grid.shape) for p in levels]
    cases = [p.splits.pretrain + p.splits.train for p in levels]
    assert voxels == sorted(voxels, reverse=True) and cases == sorted(cases, reverse=True)
    assert levels[0] == get_profile("reference")  # the first level is the profile as published
    for p in levels:
        assert p.seeds == (0, 1, 2) and p.tasks == levels[0].tasks and p.encoder_sizes == levels[0].encoder_sizes
        assert p.control_inits == ("random", "positive") and p.finetune == levels[0].finetune


def _calibrate_stub(seconds_per_step, fail=()):
    def calibrate(prof, device, share, peak_tflops, peak=None):
        if prof.grid.shape in fail:
            raise torch.OutOfMemoryError("CUDA out of memory (stand-in)")
        s = seconds_per_step[prof.grid.shape]
        return {"loops": [{"loop": f"{k} {m}", "s_per_step": s} for k in ("pretrain", "finetune")
                          for m in prof.models]}
    return calibrate


def _size(sr, stub, budget):
    return sr.size("reference", [], "reference", torch.device("cpu"), 10.0, budget, 1.0, 0.0, 16, None,
                   calibrate_level=stub, peak_of=lambda device, seconds: 1.0)


def test_the_largest_level_that_fits_is_chosen_and_smaller_ones_are_not_calibrated(sr):
    stub = _calibrate_stub({(64, 224, 224): 1.0, (32, 112, 112): 1e-4, (16, 64, 64): 1e-5})
    out = _size(sr, stub, budget=300.0)
    assert out["chosen"] == "half" and out["sets"] == dict(sr.LADDERS["reference"])["half"]
    assert [lv["level"] for lv in out["levels"]] == ["published", "half"]
    assert not out["levels"][0]["fits"] and out["levels"][1]["fits"]


def test_a_level_that_fails_is_skipped_and_without_a_fit_the_smallest_runs(sr):
    stub = _calibrate_stub({(32, 112, 112): 1.0, (16, 64, 64): 1.0}, fail=((64, 224, 224),))
    out = _size(sr, stub, budget=1.0)
    assert out["levels"][0]["error"].startswith("OutOfMemoryError")
    assert out["chosen"] == sr.LADDERS["reference"][-1][0] and not any(lv.get("fits") for lv in out["levels"])
