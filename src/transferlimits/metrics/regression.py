"""Scores of scalar-regression tasks (one float per case): MAE, RMSE and Pearson r.

Used by :mod:`transferlimits.tasks.kinds.scalar_regression`; the directions complement
:data:`transferlimits.metrics.tasks.METRIC_DIRECTION` for RPG.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SCALAR_DIRECTION", "scalar_scores"]

#: metric -> higher is better, for the scalar-regression metrics.
SCALAR_DIRECTION: dict[str, bool] = {"mae": False, "rmse": False, "pearson_r": True}


def scalar_scores(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and Pearson r of per-case predictions.

    Args:
        pred: predictions [n]. target: true values [n].

    Returns:
        ``{"mae", "rmse", "pearson_r"}``; ``pearson_r`` is NaN for fewer than 2 cases or a constant side.

    Raises:
        ValueError: ``pred`` and ``target`` differ in shape.
    """
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred {pred.shape} and target {target.shape} must have the same shape")
    err = pred - target
    ok = len(pred) > 1 and pred.std() > 0 and target.std() > 0
    r = float(np.corrcoef(pred, target)[0, 1]) if ok else float("nan")
    return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean())), "pearson_r": r}
