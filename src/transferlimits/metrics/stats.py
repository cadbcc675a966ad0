"""Correlation across (task, model) points with small-n honesty: bootstrap CIs, permutation p-values,
leave-one-out influence.

With the handful of points this study has, a single correlation coefficient says little; :func:`correlate`
returns n, both Pearson r and Spearman ρ, percentile bootstrap intervals (resampling pairs), two-sided
permutation p-values (shuffling y), and the coefficient with each point left out.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from scipy import stats as sps

__all__ = ["correlate", "bootstrap_ci"]


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    return _pearson(sps.rankdata(x), sps.rankdata(y))


def bootstrap_ci(
    values,
    stat: Callable[[np.ndarray], float] = np.mean,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat`` over ``values`` (NaNs dropped).

    Args:
        values: ``[n]`` numbers, or ``[n, k]`` rows resampled together (``stat`` then takes ``[n, k]``).
        stat: statistic of a resample (default ``np.mean``).
        n_boot: resamples (default 2000). seed: RNG seed (default 0). level: in (0, 1) (default 0.95).

    Returns:
        ``(lo, hi)``; ``(nan, nan)`` for fewer than 2 values or if every resample gives NaN.
    """
    if not 0 < level < 1 or n_boot < 1:
        raise ValueError(f"need 0 < level < 1 and n_boot >= 1, got level={level}, n_boot={n_boot}")
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v).any(axis=tuple(range(1, v.ndim)))] if v.ndim > 1 else v[~np.isnan(v)]
    if v.shape[0] < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    reps = np.array([stat(v[rng.integers(0, v.shape[0], v.shape[0])]) for _ in range(n_boot)], dtype=np.float64)
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    lo, hi = np.quantile(reps, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _perm_p(x: np.ndarray, y: np.ndarray, fn, observed: float, n_perm: int, rng) -> float:
    if not np.isfinite(observed):
        return float("nan")
    null = np.array([fn(x, rng.permutation(y)) for _ in range(n_perm)])
    null = np.nan_to_num(null, nan=0.0)
    return float((1 + np.sum(np.abs(null) >= abs(observed) - 1e-12)) / (1 + n_perm))


def correlate(x, y, n_boot: int = 2000, n_perm: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Pearson and Spearman correlation with n, bootstrap CIs, permutation p-values and LOO influence.

    Args:
        x: ``[n]`` values (NaN allowed; pairs with a NaN in x or y are dropped).
        y: ``[n]`` values.
        n_boot: bootstrap resamples of the pairs (default 2000). n_perm: permutations of y (default 2000).
        seed: RNG seed (default 0). level: CI level (default 0.95).

    Returns:
        dict with ``n`` (pairs used), ``pearson_r``, ``pearson_ci`` (lo, hi), ``pearson_p_perm`` (two-sided,
        (1 + #{|r_perm| ≥ |r|}) / (1 + n_perm)), the same three for ``spearman_*``, ``loo`` (list of
        ``(index, r, rho)`` with the point at original ``index`` left out) and ``max_loo_change``
        (largest |Δr| or |Δρ| from leaving one point out). With n < 3 every number is NaN (no error).
    """
    xa = np.asarray(x, dtype=np.float64).ravel()
    ya = np.asarray(y, dtype=np.float64).ravel()
    if xa.shape != ya.shape:
        raise ValueError(f"x and y must have the same length, got {xa.size} and {ya.size}")
    keep = ~(np.isnan(xa) | np.isnan(ya))
    idx = np.flatnonzero(keep)
    xa, ya = xa[keep], ya[keep]
    n = int(xa.size)
    nan, nan2 = float("nan"), (float("nan"), float("nan"))
    out = {"n": n, "pearson_r": nan, "pearson_ci": nan2, "pearson_p_perm": nan, "spearman_rho": nan,
           "spearman_ci": nan2, "spearman_p_perm": nan, "loo": [], "max_loo_change": nan}
    if n < 3:
        return out
    rng = np.random.default_rng(seed)
    pairs = np.stack([xa, ya], axis=1)
    r, rho = _pearson(xa, ya), _spearman(xa, ya)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out.update(
            pearson_r=r,
            spearman_rho=rho,
            pearson_ci=bootstrap_ci(pairs, lambda p: _pearson(p[:, 0], p[:, 1]), n_boot, seed, level),
            spearman_ci=bootstrap_ci(pairs, lambda p: _spearman(p[:, 0], p[:, 1]), n_boot, seed, level),
            pearson_p_perm=_perm_p(xa, ya, _pearson, r, n_perm, rng),
            spearman_p_perm=_perm_p(xa, ya, _spearman, rho, n_perm, rng),
        )
    loo = []
    for j in range(n):
        mask = np.arange(n) != j
        loo.append((int(idx[j]), _pearson(xa[mask], ya[mask]), _spearman(xa[mask], ya[mask])))
    out["loo"] = loo
    changes = [abs(a - r) for _, a, _ in loo] + [abs(b - rho) for _, _, b in loo]
    changes = [c for c in changes if np.isfinite(c)]
    out["max_loo_change"] = float(max(changes)) if changes else nan
    return out
