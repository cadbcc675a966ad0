"""Evaluations of a fine-tuning run: step 0 and >= evals_per_run more, epoch ends kept, the best weights are
the best evaluation's, the fixed validation subset (training.eval_plan, training.finetune_fit; STUDY §5.2)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from transferlimits.config import FinetuneRecipe
from transferlimits.models.registry import build_encoder
from transferlimits.tasks import get_task
from transferlimits.training.engine import evaluate
from transferlimits.training.eval_plan import eval_steps, steps_in_epoch, val_subset
from transferlimits.training.finetune import finetune

from _finetune_data import SLICE, tiny_splits

torch.set_num_threads(1)

# 8 train cases in batches of 2: 4 steps per epoch, 12 in all
RECIPE = FinetuneRecipe(epochs=3, batch_size=2, lr=2e-3, decoder_width=8, evals_per_run=10)


@pytest.mark.parametrize("per_epoch, epochs, n", [(4, 3, 10), (16, 3, 10), (32, 6, 10), (5, 2, 10), (40, 10, 10),
                                                 (3, 2, 10), (7, 3, 1), (1, 1, 10), (10, 1, 3)])
def test_eval_steps_are_spread_and_keep_every_epoch_end(per_epoch, epochs, n):
    total = per_epoch * epochs
    plan = eval_steps(per_epoch, epochs, n)
    assert plan == sorted(set(plan)) and 1 <= plan[0] and plan[-1] == total
    assert {e * per_epoch for e in range(1, epochs + 1)} <= set(plan)
    assert len(plan) >= min(n, total)
    gaps = [b - a for a, b in zip([0] + plan, plan)]
    assert max(gaps) <= math.ceil(total / min(n, total))  # evenly spaced: no gap above total / n (rounded up)
    if n == 1:
        assert plan == [e * per_epoch for e in range(1, epochs + 1)]  # the former loop: epoch ends only
    assert sum(len(steps_in_epoch(plan, e, per_epoch)) for e in range(1, epochs + 1)) == len(plan)


def test_eval_steps_and_subset_reject_bad_arguments():
    for args, name in (((0, 3, 10), "steps_per_epoch"), ((4, 0, 10), "epochs"), ((4, 3, 0), "evals_per_run")):
        with pytest.raises(ValueError, match=name):
            eval_steps(*args)
    with pytest.raises(ValueError, match="size"):
        val_subset(list(range(5)), -1)
    for bad in ({"evals_per_run": 0}, {"eval_subset": -1}):
        with pytest.raises(ValueError, match=f"FinetuneRecipe.{next(iter(bad))}"):
            replace(RECIPE, **bad)


@pytest.mark.parametrize("n, size, want", [(10, 4, [0, 3, 6, 9]), (24, 8, [0, 3, 7, 10, 13, 16, 20, 23]),
                                           (5, 1, [0]), (5, 0, None), (5, 5, None), (5, 9, None)])
def test_val_subset_is_fixed_and_evenly_spaced(n, size, want):
    sub = val_subset(list(range(n)), size)
    assert (None if sub is None else list(sub.indices)) == want


def _run(model: str, task: str = "classification", recipe: FinetuneRecipe = RECIPE, seed: int = 0):
    spec = get_task(task)
    torch.manual_seed(0)
    enc = build_encoder(model, "test", **({"img_size": SLICE} if model == "provicnet" else {}))
    data = tiny_splits(spec.kind, model)
    res = finetune(spec, model, enc, "pretrained", data, recipe, "cpu", progress=False, seed=seed,
                   spacing=(3.0, 3.0, 3.0))
    return spec, data, res


@pytest.mark.parametrize("model, task", [("profound", "classification"), ("provicnet", "super_resolution")])
def test_a_tiny_run_evaluates_at_least_ten_times_and_keeps_the_best_evaluation(model, task):
    spec, data, res = _run(model, task)
    curve = res.curve
    steps = [r["step"] for r in curve]
    assert steps[0] == 0 and curve[0]["epoch"] == 0 and curve[0]["train_loss"] is None and curve[0]["wall_s"] == 0
    assert len(curve) - 1 >= 10 and steps == sorted(set(steps)) and steps[-1] == 12
    assert {4, 8, 12} <= set(steps)  # every epoch end
    assert all(r["epoch"] == pytest.approx(r["step"] / 4) for r in curve)
    assert all(a["wall_s"] <= b["wall_s"] and a["val_s"] <= b["val_s"] for a, b in zip(curve, curve[1:]))
    assert all(0 <= r["val_s"] <= r["wall_s"] for r in curve[1:])
    # the best weights are those of the best evaluation after step 0, wherever it fell
    values = [r["val_metric"] for r in curve[1:]]
    best = max(values) if spec.higher_is_better else min(values)
    at = curve[steps.index(res.best_step)]
    assert res.best_val == best == at["val_metric"] and res.best_epoch == pytest.approx(at["epoch"])
    scores = evaluate(res.model, data["val"], spec, torch.device("cpu"), RECIPE.batch_size, (3.0, 3.0, 3.0),
                      fast=True)[0]
    assert scores[spec.primary_metric] == pytest.approx(best, rel=1e-5, abs=1e-6)
    assert res.train_seconds == curve[-1]["wall_s"]


def test_a_validation_subset_scores_the_intermediate_evaluations_only():
    """With eval_subset=2 of the 4 val cases, every entry has the subset values, only step 0 and the epoch ends
    the full split, and the best weights come from a full-split (epoch-end) evaluation."""
    spec, data, res = _run("profound", recipe=replace(RECIPE, eval_subset=2))
    full = [r for r in res.curve if r["val_metric"] is not None]
    assert [r["step"] for r in full] == [0, 4, 8, 12] and len(res.curve) - 1 >= 10
    assert all(r["val_metric_subset"] is not None and r["val_loss_subset"] is not None for r in res.curve)
    assert all(r["val_loss"] is None for r in res.curve if r["val_metric"] is None)
    assert res.best_step in (4, 8, 12) and res.best_val == max(r["val_metric"] for r in full[1:])
    sub = evaluate(res.model, torch.utils.data.Subset(data["val"], [0, 3]), spec, torch.device("cpu"), 2,
                   (3.0, 3.0, 3.0), fast=True)[0]
    best = next(r for r in res.curve if r["step"] == res.best_step)
    assert sub[spec.primary_metric] == pytest.approx(best["val_metric_subset"], rel=1e-5, abs=1e-6)


def test_one_evaluation_per_run_is_the_former_epoch_loop():
    _, _, res = _run("profound", recipe=replace(RECIPE, evals_per_run=1))
    assert [r["step"] for r in res.curve] == [0, 4, 8, 12] and [r["epoch"] for r in res.curve] == [0, 1, 2, 3]
