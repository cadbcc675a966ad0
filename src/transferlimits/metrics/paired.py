"""Paired differences of two runs scored on the same test cases, replicated over seeds (clustered data).

Two fine-tunings A and B (e.g. pretrained and scratch) of one seed are scored on the same test cases, so a
case-level difference ``d_sc = A_sc − B_sc`` is paired; the cases of one seed share that seed's runs, so they
are clustered within seed and only the seeds are independent replicates. Two intervals respect both:

* :func:`seed_t_interval` — the headline: each seed's statistic (the mean of its case differences, or any
  per-seed statistic such as an AUROC difference), then a Student-t interval over the S seeds (df = S − 1);
* :func:`cluster_bootstrap` — beside it: a two-stage bootstrap that resamples seeds with replacement and, within
  each drawn seed, its cases with replacement (the same case indices for A and B: the pairing is kept), then
  the percentile interval of the mean over drawn seeds. With few seeds (< :data:`MIN_BOOTSTRAP_UNITS` of
  ``intervals``) it is coarse; it is shown beside the t-interval, never instead of it.

For an AUROC, which is not a mean of case scores, the per-seed statistic is the AUROC difference on the same
cases and its case-level standard error is DeLong's for two correlated AUROCs (:func:`delong_paired`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats as sps

from transferlimits.metrics.intervals import t_interval

__all__ = ["auroc", "delong_paired", "seed_t_interval", "cluster_bootstrap", "mean_difference"]

_NAN = float("nan")


def auroc(labels, scores) -> float:
    """Mann–Whitney AUROC (ties count ½) of ``scores`` [n] for binary ``labels`` [n]; NaN with one class only.

    Raises:
        ValueError: ``labels`` and ``scores`` differ in length.
    """
    y, s = np.asarray(labels, bool).ravel(), np.asarray(scores, np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape} vs {s.shape}")
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return _NAN
    ranks = sps.rankdata(s)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _placements(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components: V10 [n1] per positive, V01 [n0] per negative."""
    pos, neg = s[y], s[~y]
    cmp = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return cmp.mean(1), cmp.mean(0)


def delong_paired(labels, scores_a, scores_b, level: float = 0.95) -> dict[str, float]:
    """DeLong's (1988) test of two correlated AUROCs on the same cases: AUROC(A) − AUROC(B).

    Args:
        labels: binary truth [n]. scores_a, scores_b: the two runs' scores of the same n cases.
        level: confidence level of the normal interval (default 0.95).

    Returns:
        ``{"auroc_a", "auroc_b", "diff", "se", "ci_low", "ci_high", "p"}`` (two-sided normal p); NaN entries when
        a class is missing or fewer than two cases of a class exist (the variance is then undefined).

    Raises:
        ValueError: the three arrays differ in length; ``level`` not in (0, 1).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    y = np.asarray(labels, bool).ravel()
    a, b = (np.asarray(v, np.float64).ravel() for v in (scores_a, scores_b))
    if not (y.shape == a.shape == b.shape):
        raise ValueError(f"labels, scores_a and scores_b differ in length: {y.shape}, {a.shape}, {b.shape}")
    n1, n0 = int(y.sum()), int((~y).sum())
    out = {"auroc_a": auroc(y, a), "auroc_b": auroc(y, b)}
    out["diff"] = out["auroc_a"] - out["auroc_b"]
    if n1 < 2 or n0 < 2:
        return {**out, "se": _NAN, "ci_low": _NAN, "ci_high": _NAN, "p": _NAN}
    v10a, v01a = _placements(y, a)
    v10b, v01b = _placements(y, b)
    s10 = np.cov(np.stack([v10a, v10b]))  # [2, 2] over positives
    s01 = np.cov(np.stack([v01a, v01b]))  # [2, 2] over negatives
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / n1 + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n0
    se = math.sqrt(max(float(var), 0.0))
    z = sps.norm.ppf(0.5 + level / 2)
    p = float(2 * sps.norm.sf(abs(out["diff"]) / se)) if se > 0 else (1.0 if out["diff"] == 0 else 0.0)
    return {**out, "se": se, "ci_low": out["diff"] - z * se, "ci_high": out["diff"] + z * se, "p": p}


def seed_t_interval(per_seed: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """Mean of the per-seed statistics with its Student-t interval over seeds (df = S − 1).

    Args:
        per_seed: one statistic per seed [S] (non-finite entries are dropped). level: confidence level.

    Returns:
        ``{"n_seeds", "mean", "sd", "ci_low", "ci_high"}``; the interval is NaN with fewer than two seeds.

    Raises:
        ValueError: ``level`` not in (0, 1).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    v = np.asarray([x for x in per_seed if x is not None and math.isfinite(float(x))], np.float64)
    n = int(v.size)
    low, high = t_interval(v, level)
    return {"n_seeds": n, "mean": float(v.mean()) if n else _NAN, "sd": float(v.std(ddof=1)) if n > 1 else _NAN,
            "ci_low": low, "ci_high": high}


def mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean of the case-level differences a − b (the per-seed statistic of a mean-type metric)."""
    return float(np.mean(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def cluster_bootstrap(clusters: Sequence[tuple[np.ndarray, ...]], statistic: Callable[..., float],
                      n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Two-stage (seed, then case) percentile bootstrap of the mean over seeds of a paired per-seed statistic.

    Args:
        clusters: one tuple of case-aligned arrays per seed, each of length n_s (e.g. ``(a, b)`` or
            ``(labels, a, b)``); a draw takes the same case indices from every array of the tuple (pairing kept).
        statistic: ``statistic(*arrays) -> float`` of one seed's (resampled) arrays, e.g. :func:`mean_difference`.
        n_boot: bootstrap draws (≥ 100). level: confidence level. seed: the generator's seed.

    Returns:
        ``{"n_seeds", "estimate", "ci_low", "ci_high", "n_boot"}``; ``estimate`` is the mean of the per-seed
        statistics on the data; draws whose statistic is undefined (e.g. one class only) are dropped and
        ``n_boot`` counts the kept ones.

    Raises:
        ValueError: no cluster, ``n_boot`` < 100, ``level`` not in (0, 1), or arrays of unequal length in a cluster.
    """
    if not clusters:
        raise ValueError("clusters: at least one seed is needed")
    if n_boot < 100:
        raise ValueError(f"n_boot must be >= 100, got {n_boot}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    arrays = [tuple(np.asarray(x) for x in c) for c in clusters]
    for i, c in enumerate(arrays):
        if len({len(x) for x in c}) != 1:
            raise ValueError(f"clusters[{i}]: arrays of unequal length {[len(x) for x in c]}")
    rng = np.random.default_rng(seed)
    estimate = float(np.nanmean([statistic(*c) for c in arrays]))
    s = len(arrays)
    draws = []
    for _ in range(n_boot):
        picked = rng.integers(0, s, size=s)
        vals = []
        for k in picked:
            c = arrays[k]
            idx = rng.integers(0, len(c[0]), size=len(c[0]))
            vals.append(statistic(*(x[idx] for x in c)))
        if all(math.isfinite(v) for v in vals):
            draws.append(float(np.mean(vals)))
    if not draws:
        return {"n_seeds": s, "estimate": estimate, "ci_low": _NAN, "ci_high": _NAN, "n_boot": 0}
    lo, hi = np.percentile(draws, [50 * (1 - level), 50 * (1 + level)])
    return {"n_seeds": s, "estimate": estimate, "ci_low": float(lo), "ci_high": float(hi), "n_boot": len(draws)}
