"""Intensity normalisation shared by the model views and the task kinds' target units: the z-score of a volume
over a mask (:func:`zscore_stats`, :func:`normalise_channel`).

Used by :mod:`transferlimits.data.views` (the inputs of both views) and by the dense-regression kind (a
restoration target in its input's z-score, ``tasks/kinds/dense_regression.py``), so both sides use the same
numbers.
"""

from __future__ import annotations

import numpy as np

__all__ = ["zscore_stats", "normalise_channel"]


def zscore_stats(x: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float] | None:
    """(mean, SD) of ``x`` [D, H, W] over ``mask`` (default: the non-zero voxels); None when empty/constant."""
    x = np.asarray(x, np.float32)
    sel = (x != 0) if mask is None else (np.asarray(mask) > 0)
    if not sel.any():
        return None
    vals = x[sel]
    std = float(vals.std())
    return None if std < 1e-8 else (float(vals.mean()), std)


def normalise_channel(x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """z-score of ``x`` over ``mask`` (default: the non-zero voxels); an empty/constant input gives zeros."""
    x = np.asarray(x, np.float32)
    stats = zscore_stats(x, mask)
    if stats is None:
        return np.zeros_like(x)
    return ((x - stats[0]) / stats[1]).astype(np.float32)
