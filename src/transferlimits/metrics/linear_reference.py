"""Closed-form linear references of dense tasks (STUDY §5.1: "networks above the linear reference").

What a linear model fitted in closed form on the same training cases achieves, beside the trivial baselines: a
network that does not beat it lacked optimisation steps or capacity, and its task is re-set rather than reported
as transfer.

* restoration (input and target in the same units): the least-squares 3x3x3 linear filter of the degraded input
  plus a constant, ridge 1e-3 (:func:`fit_filter`, :func:`apply_filter`);
* segmentation: a logistic regression of the lesion label on the three input channels at the voxel and their
  3x3x3 means, on every lesion voxel and ``n_background`` background voxels of the training cases weighted back
  to the true prior (:func:`fit_voxel_logistic`).

The task kinds call these (``TaskKind.linear_reference``); :mod:`transferlimits.study.linear_reference` writes a
cohort's ``linear_references.json``.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
from scipy.ndimage import uniform_filter
from sklearn.linear_model import LogisticRegression

__all__ = ["RIDGE", "neighbourhood_columns", "fit_filter", "apply_filter", "voxel_features", "fit_voxel_logistic"]

#: ridge of the least-squares filter (on the normal equations)
RIDGE = 1e-3


def neighbourhood_columns(x: np.ndarray) -> np.ndarray:
    """``[D*H*W, 28]``: the 27 voxels of each 3x3x3 neighbourhood of ``x`` [D, H, W] (edge-padded) and a constant.

    Raises:
        ValueError: ``x`` is not 3-D.
    """
    x = np.asarray(x, np.float32)
    if x.ndim != 3:
        raise ValueError(f"neighbourhood_columns needs a [D, H, W] volume, got shape {x.shape}")
    p = np.pad(x, 1, mode="edge")
    d, h, w = x.shape
    cols = [p[a:a + d, b:b + h, c:c + w].ravel() for a in range(3) for b in range(3) for c in range(3)]
    return np.stack(cols + [np.ones(x.size, np.float32)], 1)


def fit_filter(pairs: Iterable[tuple[np.ndarray, np.ndarray]], ridge: float = RIDGE) -> np.ndarray:
    """The 28 weights minimising Σ ‖filter(x) − y‖² + ridge ‖w‖² over ``(x, y)`` volume pairs [D, H, W].

    Raises:
        ValueError: no pairs, or an ``x`` and ``y`` of different shapes (named by position).
    """
    a = b = None
    for i, (x, y) in enumerate(pairs):
        if np.shape(x) != np.shape(y):
            raise ValueError(f"pair {i}: input {np.shape(x)} and target {np.shape(y)} differ in shape")
        f = neighbourhood_columns(x)
        a = f.T @ f if a is None else a + f.T @ f
        b = f.T @ np.asarray(y).ravel() if b is None else b + f.T @ np.asarray(y).ravel()
    if a is None:
        raise ValueError("fit_filter needs at least one (input, target) pair")
    return np.linalg.solve(a + ridge * np.eye(len(a)), b)


def apply_filter(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The filtered volume (same shape as ``x``)."""
    return (neighbourhood_columns(x) @ np.asarray(w)).reshape(np.shape(x))


def voxel_features(x: np.ndarray) -> np.ndarray:
    """``[D*H*W, 6]``: the three channels of ``x`` [3, D, H, W] at each voxel and their 3x3x3 means."""
    x = np.asarray(x, np.float32)
    if x.ndim != 4 or x.shape[0] != 3:
        raise ValueError(f"voxel_features needs a [3, D, H, W] volume, got shape {x.shape}")
    means = np.stack([uniform_filter(c, 3, mode="nearest").ravel() for c in x], 1)
    return np.concatenate([x.reshape(3, -1).T, means], 1)


def fit_voxel_logistic(pairs: Iterable[tuple[np.ndarray, np.ndarray]], n_background: int = 200_000,
                       seed: int = 0) -> tuple[LogisticRegression, float]:
    """A logistic regression of ``y > 0`` on :func:`voxel_features`, background subsampled and re-weighted.

    Args:
        pairs: ``(x [3, D, H, W], y [D, H, W])`` training cases.
        n_background: background voxels kept (at random, ``seed``); their weight restores the true prior.

    Returns:
        ``(classifier, lesion voxel share of the training cases)``.

    Raises:
        ValueError: no pairs, or no lesion voxel or no background voxel in them.
    """
    feats, labels = [], []
    for x, y in pairs:
        feats.append(voxel_features(x))
        labels.append(np.asarray(y).ravel() > 0)
    if not feats:
        raise ValueError("fit_voxel_logistic needs at least one (input, target) pair")
    f, y = np.concatenate(feats), np.concatenate(labels)
    bg = np.flatnonzero(~y)
    if not y.any() or bg.size == 0:
        raise ValueError(f"fit_voxel_logistic needs lesion and background voxels, got {int(y.sum())} lesion of "
                         f"{y.size}")
    rng = np.random.default_rng(seed)
    keep = np.concatenate([np.flatnonzero(y), rng.choice(bg, min(n_background, bg.size), replace=False)])
    weight = np.where(y[keep], 1.0, bg.size / min(n_background, bg.size))
    clf = LogisticRegression(max_iter=2000).fit(f[keep], y[keep], sample_weight=weight)
    return clf, float(y.mean())
