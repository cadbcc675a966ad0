"""Small-sample intervals and tests of the verdicts that need no percentile bootstrap (STUDY §5.2 "Statistics").

* :func:`holm` — Holm's step-down adjustment of a family of p-values (H1–H6).
* :func:`signflip_exact` — exact sign-flip test of a mean over units (every one of the 2ᵀ sign patterns).
* :func:`t_interval` — Student-t interval of a mean over units (df = T − 1).
* :func:`contrast_interval` — t interval of a linear contrast of cell means with the pooled within-cell variance
  (one-way ANOVA, df = n − cells).
* :func:`dependent_r_difference` — r₁ − r₂ of two correlations that share one variable: Zou's (2007) interval
  from the two Fisher-z intervals and Williams' t test (df = N − 3).

The percentile bootstrap is kept only for ≥ :data:`MIN_BOOTSTRAP_UNITS` independent units.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

__all__ = ["MIN_BOOTSTRAP_UNITS", "holm", "signflip_exact", "t_interval", "contrast_interval",
           "dependent_r_difference"]

#: Fewest independent units on which a percentile bootstrap interval is used at all.
MIN_BOOTSTRAP_UNITS = 10
_NAN = float("nan")


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order.

    ``p̃_(j) = max_{i ≤ j} min(1, (m − i + 1) p_(i))`` over the ascending order; an undefined (NaN) p counts in
    the family as p = 1 (conservative) and its adjusted value stays NaN.

    Raises:
        ValueError: a finite p outside [0, 1].
    """
    p = np.asarray(pvalues, dtype=np.float64)
    finite = np.isfinite(p)
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise ValueError(f"pvalues must lie in [0, 1], got {p.tolist()}")
    m = p.size
    filled = np.where(finite, p, 1.0)
    order = np.argsort(filled, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * filled[order]))
    out = np.empty(m)
    out[order] = adjusted
    return [float(v) if f else _NAN for v, f in zip(out, finite)]


def signflip_exact(values, max_units: int = 16, n_perm: int = 20000, seed: int = 0) -> tuple[float, str]:
    """Two-sided sign-flip p of the mean of ``values`` ``[T]``: exact over all 2ᵀ patterns when T ≤ ``max_units``.

    Returns:
        ``(p, method)``; p = #{|mean(s·v)| ≥ |mean(v)|} / 2ᵀ (smallest attainable 2 / 2ᵀ); NaN for T = 0. Above
        ``max_units`` a Monte Carlo p ``(1 + #) / (1 + n_perm)``.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return _NAN, "undefined"
    obs, tol = abs(v.mean()), 1e-12 * (1 + np.abs(v).max())
    if v.size <= max_units:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=v.size)))
        return float(np.mean(np.abs(signs @ v / v.size) >= obs - tol)), f"exact ({2 ** v.size} sign patterns)"
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], (n_perm, v.size))
    return float((1 + np.sum(np.abs(signs @ v / v.size) >= obs - tol)) / (1 + n_perm)), f"Monte Carlo ({n_perm})"


def t_interval(values, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of ``values`` ``[T]`` (df = T − 1); NaN with fewer than 2 finite values."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size < 2:
        return _NAN, _NAN
    half = float(sps.t.ppf((1 + level) / 2, v.size - 1)) * v.std(ddof=1) / math.sqrt(v.size)
    return float(v.mean() - half), float(v.mean() + half)


def contrast_interval(y, cells, weights: dict, level: float = 0.95) -> tuple[float, tuple[float, float], int]:
    """Linear contrast Σ w_c ȳ_c of cell means with a t interval from the pooled within-cell variance.

    Args:
        y: ``[n]`` values. cells: ``[n]`` cell label of each value. weights: ``{cell: w}``; every weighted cell
            must hold ≥ 1 value. level: CI level.

    Returns:
        ``(estimate, (lo, hi), df)`` with SE² = MSE · Σ w_c² / n_c, MSE pooled over all cells, df = n − cells;
        the interval is NaN when df < 1.

    Raises:
        ValueError: a weighted cell has no value (named).
    """
    ya, ca = np.asarray(y, dtype=np.float64).ravel(), np.asarray(cells).ravel()
    labels = list(dict.fromkeys(ca.tolist()))
    empty = [c for c in weights if c not in labels]
    if empty:
        raise ValueError(f"weights name cells without values: {empty}")
    means = {c: float(ya[ca == c].mean()) for c in labels}
    est = float(sum(w * means[c] for c, w in weights.items()))
    dof = ya.size - len(labels)
    if dof < 1:
        return est, (_NAN, _NAN), dof
    mse = sum(float(((ya[ca == c] - means[c]) ** 2).sum()) for c in labels) / dof
    se = math.sqrt(mse * sum(w * w / int((ca == c).sum()) for c, w in weights.items()))
    half = float(sps.t.ppf((1 + level) / 2, dof)) * se
    return est, (est - half, est + half), dof


def _fisher(r: float, n_eff: float, zq: float) -> tuple[float, float]:
    z, half = math.atanh(r), zq / math.sqrt(n_eff - 3)
    return math.tanh(z - half), math.tanh(z + half)


def dependent_r_difference(r1: float, r2: float, r12: float, n_eff: float,
                           level: float = 0.95) -> tuple[float, tuple[float, float], float]:
    """r₁ − r₂ for r₁ = r(a, y), r₂ = r(b, y), r₁₂ = r(a, b) on the same units: Zou's CI and Williams' p.

    Args:
        r1, r2, r12: the three correlations (|r| < 1). n_eff: effective sample size (``n − G + 1`` for
            fixed-effect correlations with G groups, so that n_eff − 3 = n − G − 2). level: CI level.

    Returns:
        ``(difference, (lo, hi), p)``; NaN entries when n_eff ≤ 4 or a correlation is not finite / ±1.
    """
    vals = (r1, r2, r12)
    if n_eff <= 4 or not all(math.isfinite(v) and abs(v) < 1 for v in vals):
        return r1 - r2 if all(math.isfinite(v) for v in (r1, r2)) else _NAN, (_NAN, _NAN), _NAN
    zq = float(sps.norm.ppf((1 + level) / 2))
    (l1, u1), (l2, u2) = _fisher(r1, n_eff, zq), _fisher(r2, n_eff, zq)
    c = (((r12 - r1 * r2 / 2) * (1 - r1 * r1 - r2 * r2 - r12 * r12) + r12 ** 3)
         / ((1 - r1 * r1) * (1 - r2 * r2)))
    d = r1 - r2
    lo = d - math.sqrt(max((r1 - l1) ** 2 + (u2 - r2) ** 2 - 2 * c * (r1 - l1) * (u2 - r2), 0.0))
    hi = d + math.sqrt(max((u1 - r1) ** 2 + (r2 - l2) ** 2 - 2 * c * (u1 - r1) * (r2 - l2), 0.0))
    det = 1 - r1 * r1 - r2 * r2 - r12 * r12 + 2 * r1 * r2 * r12
    rbar = (r1 + r2) / 2
    den = 2 * (n_eff - 1) / (n_eff - 3) * det + rbar * rbar * (1 - r12) ** 3
    t = d * math.sqrt((n_eff - 1) * (1 + r12) / den) if den > 0 else _NAN
    p = float(2 * sps.t.sf(abs(t), n_eff - 3)) if math.isfinite(t) else _NAN
    return d, (lo, hi), p
