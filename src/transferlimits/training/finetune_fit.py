"""The loop of one fine-tuning run: optimiser steps, the evaluations of :mod:`.eval_plan`, the best weights.

:func:`fit` validates before any update (step 0) and after each step of
:func:`~transferlimits.training.eval_plan.eval_steps`. With ``eval_subset`` > 0 (and smaller than the
validation split) the intermediate evaluations score only a fixed subset of the validation split
(:func:`~transferlimits.training.eval_plan.val_subset`; their ``val_metric``/``val_loss`` are None), while step 0
and every epoch end score the full split *and* the subset: every entry then has ``val_metric_subset`` /
``val_loss_subset``, one comparable series over the whole run. The best weights are those of the best
full-split evaluation after step 0: every evaluation after step 0 without a subset, the epoch ends with one.

Each curve entry: ``epoch`` (fractional: step / steps per epoch; 0 at step 0), ``step`` (optimiser steps so
far), ``train_loss`` (mean over the steps since the previous evaluation; None at step 0), ``val_loss``,
``val_metric``, ``lr`` (at the last step; 0 at step 0), ``wall_s`` / ``device_s`` (cumulative seconds of
training, validation included; 0 at step 0), ``val_s`` (the validation wall seconds inside ``wall_s``) and, with
a subset, ``val_metric_subset`` / ``val_loss_subset``.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from torch.utils.data import Dataset

from transferlimits.training.engine import EpochSetup, evaluate, train_epoch
from transferlimits.training.eval_plan import eval_steps, steps_in_epoch, val_subset
from transferlimits.training.loop import Timer

__all__ = ["RunParts", "Fit", "fit"]


@dataclass
class RunParts:
    """One fine-tuning run's fixed parts: epoch setup, batch size, spacing, frozen encoder, a name for errors."""

    setup: EpochSetup
    batch_size: int
    spacing: Sequence[float] | None
    frozen: bool
    where: str

    def validate(self, ds: Dataset) -> tuple[float, float]:
        """(primary metric, mean loss) of the current weights on ``ds`` (fast metrics only)."""
        scores, _, _, loss = evaluate(self.setup.model, ds, self.setup.spec, self.setup.device, self.batch_size,
                                      self.spacing, n_examples=0, fast=True)
        return _primary(scores, self.setup.spec), loss


@dataclass
class Fit:
    """What :func:`fit` returns: the curve and the best full-split evaluation after step 0 (weights on the CPU)."""

    curve: list[dict[str, Any]]
    best_state: dict | None = None
    best_val: float | None = None
    best_epoch: float = 0.0
    best_step: int = 0


def _primary(scores: dict[str, float], spec: Any) -> float:
    if spec.primary_metric not in scores:
        raise ValueError(f"primary metric {spec.primary_metric!r} of task {spec.name!r} not in scores {sorted(scores)}")
    return float(scores[spec.primary_metric])


def _better(value: float, best: float | None, higher: bool) -> bool:
    if best is None:
        return True
    if not np.isfinite(best):  # nothing finite yet: the later evaluation (trained longer) replaces it
        return True
    if not np.isfinite(value):
        return False
    return value >= best if higher else value <= best  # ties: the later evaluation (trained longer)


def _validate(run: RunParts, val_ds: Dataset, subset: Dataset | None, full: bool) -> dict[str, Any]:
    """The validation fields of one entry: the full split where ``full``, the subset wherever there is one."""
    out: dict[str, Any] = {"val_loss": None, "val_metric": None}
    if full:
        out["val_metric"], out["val_loss"] = run.validate(val_ds)
    if subset is not None:
        out["val_metric_subset"], out["val_loss_subset"] = run.validate(subset)
    return out


def fit(run: RunParts, loader: Any, val_ds: Dataset, epochs: Any, evals_per_run: int, eval_subset: int = 0) -> Fit:
    """Train over ``epochs`` (an iterable over 1..E with ``len``, e.g. a tqdm), validating at step 0 and after the
    steps of :func:`~transferlimits.training.eval_plan.eval_steps` (module docstring).

    Args:
        run: the run's parts. loader: the training loader (``len`` = optimiser steps per epoch).
        val_ds: the validation split. epochs: 1..E (a tqdm gets a postfix per epoch).
        evals_per_run: evenly spaced evaluations after step 0 (>= 1). eval_subset: cases of the fixed validation
            subset of the intermediate evaluations (0 = the full split everywhere).
    """
    model, timer = run.setup.model, Timer(run.setup.device)
    per_epoch = max(1, len(loader))
    plan = eval_steps(per_epoch, len(epochs), evals_per_run)
    subset = val_subset(val_ds, eval_subset)
    # step 0: the common starting point, before any update (recorded; not a candidate for the best weights, nor is
    # an evaluation after steps that all ran at lr 0)
    result = Fit([{"epoch": 0, "step": 0, "train_loss": None, **_validate(run, val_ds, subset, True), "lr": 0.0,
                   "wall_s": 0.0, "device_s": 0.0, "val_s": 0.0}])
    step, val_s, updated = 0, 0.0, False
    for epoch in epochs:
        batches = iter(loader)
        first = step
        for stop in steps_in_epoch(plan, epoch, per_epoch):
            full = subset is None or stop == per_epoch
            with timer.section():
                model.train()
                if run.frozen:
                    model.encoder.eval()
                ran = train_epoch(run.setup, itertools.islice(batches, first + stop - step), step,
                                  f"{run.where}, epoch {epoch})")
                step = ran.step
                updated = updated or ran.lr > 0  # a warm-up's first step runs at lr 0: weights still the start's
                t_val = time.perf_counter()
                val = _validate(run, val_ds, subset, full)
                val_s += time.perf_counter() - t_val
            result.curve.append({"epoch": step / per_epoch, "step": step,
                                 "train_loss": float(np.mean(ran.losses)) if ran.losses else None, **val,
                                 "lr": ran.lr, "wall_s": timer.wall, "device_s": timer.device_seconds,
                                 "val_s": val_s})
            if full and updated and _better(val["val_metric"], result.best_val, bool(run.setup.spec.higher_is_better)):
                result.best_val, result.best_epoch, result.best_step = val["val_metric"], step / per_epoch, step
                result.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        if hasattr(epochs, "set_postfix"):
            last = result.curve[-1]
            epochs.set_postfix(loss=f"{_nan_if_none(last['train_loss']):.4f}",
                               val=f"{_nan_if_none(last['val_metric']):.4f}")
    if result.best_state is None:  # no candidate (every step at lr 0, or no full evaluation): the last weights
        last = result.curve[-1]
        result.best_val, result.best_epoch, result.best_step = last["val_metric"], last["epoch"], last["step"]
        result.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return result


def _nan_if_none(x: float | None) -> float:
    return float("nan") if x is None else float(x)
