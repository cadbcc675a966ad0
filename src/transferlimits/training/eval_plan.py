"""When a fine-tuning run validates (STUDY §5.2 "Convergence": before any update and >= 10 times per run).

The run validates once at step 0 (before any update) and then after the optimiser steps of
:func:`eval_steps`: ``evals_per_run`` steps spaced evenly over the run (``ceil(k · total / n)``, k = 1..n) joined
with the last step of every epoch (the epoch-end evaluations of the former loop stay, so a run validates at
least ``evals_per_run`` times after step 0, more when an epoch end falls between two evenly spaced steps). A run
with fewer optimiser steps than ``evals_per_run`` validates after every step.

Validation cost (``benchmarks/bench_validation_share.py``, cpu profile, scratch runs, 24 validation cases, on 2
cores loaded by other work, so +-5 points): epoch ends only 6-12 % of a run's wall time; ``evals_per_run=10`` on
the full split 16-34 % (12-14 evaluations); with ``eval_subset=8`` 13-24 %. Above 15 %, so the cpu profile sets
``FinetuneRecipe.eval_subset`` (:func:`val_subset`): the intermediate evaluations score a fixed, deterministic
subset of the validation split (evenly spaced cases); step 0 and the epoch ends score the full split (model
selection, as before) and the subset too, so that the subset series is complete and comparable over the whole
run (the convergence curve uses it).
"""

from __future__ import annotations

import math

import numpy as np
from torch.utils.data import Dataset, Subset

__all__ = ["eval_steps", "steps_in_epoch", "val_subset"]


def eval_steps(steps_per_epoch: int, epochs: int, evals_per_run: int) -> list[int]:
    """The optimiser-step counts after which the run validates (step 0 not included).

    Args:
        steps_per_epoch: optimiser steps per epoch (>= 1).
        epochs: epochs of the run (>= 1).
        evals_per_run: evenly spaced evaluations wanted after step 0 (>= 1; 1 = epoch ends only).

    Returns:
        Sorted distinct step counts in 1..steps_per_epoch·epochs; every epoch's last step is among them.

    Raises:
        ValueError: an argument below 1 (named).
    """
    for name, value in (("steps_per_epoch", steps_per_epoch), ("epochs", epochs), ("evals_per_run", evals_per_run)):
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    total = int(steps_per_epoch) * int(epochs)
    n = min(int(evals_per_run), total)
    spaced = {math.ceil(k * total / n) for k in range(1, n + 1)}
    ends = {e * int(steps_per_epoch) for e in range(1, int(epochs) + 1)}
    return sorted(spaced | ends)


def steps_in_epoch(plan: list[int], epoch: int, steps_per_epoch: int) -> list[int]:
    """The evaluations of ``plan`` that fall in 1-based ``epoch``, as step counts within it (1..steps_per_epoch).

    Args:
        plan: :func:`eval_steps`. epoch: 1-based epoch. steps_per_epoch: optimiser steps per epoch (>= 1).
    """
    first = (int(epoch) - 1) * int(steps_per_epoch)
    return [s - first for s in plan if first < s <= first + int(steps_per_epoch)]


def val_subset(ds: Dataset, size: int) -> Dataset | None:
    """A fixed, deterministic subset of ``size`` evenly spaced cases of ``ds`` (None: score the full split).

    Args:
        ds: the validation split. size: cases in the subset (>= 0; 0, or >= ``len(ds)``: None).

    Raises:
        ValueError: a negative ``size``.
    """
    if int(size) < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    n = len(ds)
    if int(size) == 0 or int(size) >= n:
        return None
    return Subset(ds, [int(i) for i in np.unique(np.linspace(0, n - 1, int(size)).round().astype(int))])
