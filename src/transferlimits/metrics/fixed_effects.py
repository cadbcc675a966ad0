"""The fixed-effect correlation, defined once (STUDY §5.2 "Comparability"), and its exact / permutation test.

Definition. The fixed-effect correlation of ``x`` and ``y`` with groups ``g`` (the model across tasks; task ×
model within task) is the **partial correlation given the group dummies**: remove each group's mean from both
sides and correlate the pooled residuals,

    r_FE = Σ (xᵢ − x̄_g(i)) (yᵢ − ȳ_g(i)) / √(Σ (xᵢ − x̄_g(i))² · Σ (yᵢ − ȳ_g(i))²).

Its residual degrees of freedom are ``df = n − G − 1`` (n units, G group means, one slope).

Test. Under H0 (no within-group association) the values of ``x`` are exchangeable among the units of one group,
so p permutes ``x`` **within each group**: two-sided, ``#{|r*| ≥ |r|} / N`` over all ``N = Π n_g!`` within-group
orders when ``N`` ≤ ``exact_limit`` (exact; the observed order is one of them), otherwise ``(1 + #{|r*| ≥ |r|}) /
(1 + P)`` over ``P`` random within-group permutations (Monte Carlo).

Interval. Fisher's z with ``df`` as above: ``atanh(r) ± z₁₋α/₂ / √(df − 1)`` (= ``1 / √(n − G − 2)``, the
standard error of a partial correlation given ``G − 1`` covariates besides the intercept), back-transformed by
tanh. It is analytic: no percentile bootstrap, whose coverage is poor on few units.

Units are what the caller passes: one value per encoder (seeds averaged first), never one per seed.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import stats as sps

__all__ = ["entering_units", "finite_in_groups", "group_codes", "demean_within", "partial_r", "within_permutation_p", "fisher_ci", "fixed_effect_test",
           "EXACT_LIMIT"]

#: Largest number of within-group orders enumerated exactly (beyond it: Monte Carlo permutations).
EXACT_LIMIT = 20000
_NAN = float("nan")


def group_codes(groups) -> tuple[np.ndarray, int]:
    """Integer codes ``[n]`` (0..G−1) of ``groups`` ``[n]`` and the number of groups G."""
    labels, codes = np.unique(np.asarray(groups).ravel(), return_inverse=True)
    return codes.astype(np.intp), int(labels.size)


def demean_within(values, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """``values`` ``[..., n]`` minus the mean of their group (``codes`` ``[n]``) along the last axis."""
    v = np.asarray(values, dtype=np.float64)
    out = np.empty_like(v)
    for g in range(n_groups):
        m = codes == g
        out[..., m] = v[..., m] - v[..., m].mean(-1, keepdims=True)
    return out


def _r_centred(xc: np.ndarray, yc: np.ndarray) -> np.ndarray:
    """Correlation of already centred rows ``[..., n]`` (no further centring), NaN where a side is constant."""
    den = np.sqrt((xc * xc).sum(-1) * (yc * yc).sum(-1))
    scale = 1e-12 * (1.0 + np.abs(xc).max(-1, initial=0.0) * np.abs(yc).max(-1, initial=0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > scale, (xc * yc).sum(-1) / den, np.nan)


def entering_units(x, y, groups) -> np.ndarray:
    """``[n]`` bool: the units that enter a fixed-effect test -- finite (x, y) pairs in groups that keep ≥ 2 of them.

    Raises:
        ValueError: x, y and groups differ in length.
    """
    xa, ya = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    ga = np.asarray(groups).ravel()
    if not xa.shape == ya.shape == ga.shape:
        raise ValueError(f"x, y and groups must have one length, got {xa.size}, {ya.size}, {ga.size}")
    keep = np.isfinite(xa) & np.isfinite(ya)
    labels, counts = np.unique(ga[keep], return_counts=True)
    return keep & np.isin(ga, labels[counts >= 2])


def finite_in_groups(x, y, groups) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The finite (x, y) pairs of groups that keep ≥ 2 of them (:func:`entering_units`): ``(x, y, groups)`` as arrays.

    Raises:
        ValueError: x, y and groups differ in length.
    """
    keep = entering_units(x, y, groups)
    xa, ya = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    return xa[keep], ya[keep], np.asarray(groups).ravel()[keep]


def _clean(x, y, groups) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Finite pairs in groups with ≥ 2 of them: ``(x, y, codes, G)``."""
    xa, ya, ga = finite_in_groups(x, y, groups)
    codes, n_groups = group_codes(ga) if ga.size else (np.zeros(0, np.intp), 0)
    return xa, ya, codes, n_groups


def partial_r(x, y, groups) -> float:
    """The fixed-effect correlation r_FE (module docstring) of ``x`` and ``y`` ``[n]`` given ``groups`` ``[n]``.

    Non-finite pairs and groups with fewer than 2 finite pairs are dropped; NaN when nothing varies within groups.
    """
    xa, ya, codes, n_groups = _clean(x, y, groups)
    if xa.size - n_groups < 2:
        return _NAN
    return float(_r_centred(demean_within(xa, codes, n_groups), demean_within(ya, codes, n_groups)))


def _n_orders(codes: np.ndarray, n_groups: int) -> int:
    return math.prod(math.factorial(int((codes == g).sum())) for g in range(n_groups))


def within_permutation_p(x, y, groups, n_perm: int = 2000, seed: int = 0,
                         exact_limit: int = EXACT_LIMIT) -> tuple[float, str]:
    """Two-sided p of r_FE, permuting ``x`` within each group: exact enumeration or Monte Carlo.

    Args:
        x, y, groups: ``[n]`` (cleaned as in :func:`partial_r`). n_perm: random permutations when not exact (≥ 1).
        seed: RNG seed. exact_limit: enumerate every within-group order when there are at most this many.

    Returns:
        ``(p, method)``: method ``"exact (N orders)"`` or ``"Monte Carlo (P permutations)"``; p NaN when r_FE is
        undefined.

    Raises:
        ValueError: ``n_perm`` < 1 or ``exact_limit`` < 1.
    """
    if n_perm < 1 or exact_limit < 1:
        raise ValueError(f"n_perm and exact_limit must be >= 1, got {n_perm}, {exact_limit}")
    xa, ya, codes, n_groups = _clean(x, y, groups)
    if xa.size - n_groups < 2:
        return _NAN, "undefined"
    xc, yc = demean_within(xa, codes, n_groups), demean_within(ya, codes, n_groups)
    observed = abs(float(_r_centred(xc, yc)))
    if not math.isfinite(observed):
        return _NAN, "undefined"
    members = [np.flatnonzero(codes == g) for g in range(n_groups)]
    total = _n_orders(codes, n_groups)
    tol = 1e-12
    if total <= exact_limit:
        orders = [list(itertools.permutations(m)) for m in members]
        idx = np.empty((total, xa.size), np.intp)
        for row, combo in enumerate(itertools.product(*orders)):
            for m, order in zip(members, combo):
                idx[row, m] = order
        null = np.abs(_r_centred(xc[idx], np.broadcast_to(yc, idx.shape)))
        return float(np.mean(null >= observed - tol)), f"exact ({total} orders)"
    rng = np.random.default_rng(seed)
    idx = np.tile(np.arange(xa.size), (n_perm, 1))
    for m in members:
        idx[:, m] = rng.permuted(np.tile(m, (n_perm, 1)), axis=1)
    null = np.abs(np.nan_to_num(_r_centred(xc[idx], np.broadcast_to(yc, idx.shape))))
    return float((1 + np.sum(null >= observed - tol)) / (1 + n_perm)), f"Monte Carlo ({n_perm} permutations)"


def fisher_ci(r: float, n: int, n_groups: int, level: float = 0.95) -> tuple[float, float]:
    """Fisher-z interval of a fixed-effect r on ``n`` units in ``n_groups`` groups: SE = 1 / √(n − G − 2).

    Returns ``(NaN, NaN)`` when r is not finite or ``n − G − 2 < 1``.

    Raises:
        ValueError: ``level`` not in (0, 1).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    dof = n - max(n_groups, 1) - 2
    if dof < 1 or not math.isfinite(r):
        return _NAN, _NAN
    z, half = math.atanh(min(max(r, -0.999999999), 0.999999999)), float(sps.norm.ppf((1 + level) / 2)) / math.sqrt(dof)
    return math.tanh(z - half), math.tanh(z + half)


def fixed_effect_test(x, y, groups, n_perm: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """r_FE with its Fisher-z interval and within-group permutation p (module docstring).

    Args:
        x, y: ``[n]`` one value per unit (seed-averaged). groups: ``[n]`` fixed-effect group of each unit.
        n_perm: Monte Carlo permutations when exact enumeration is too large. seed: RNG seed. level: CI level.

    Returns:
        ``{"r", "ci", "p", "n", "n_groups", "df", "p_method", "ci_method"}``; ``n`` and ``n_groups`` count the
        units and groups that enter (finite pairs in groups with ≥ 2 of them); ``df = n − G − 1``.
    """
    xa, ya, codes, n_groups = _clean(x, y, groups)
    n = int(xa.size)
    r = partial_r(xa, ya, codes)
    p, method = within_permutation_p(xa, ya, codes, n_perm, seed)
    return {"r": r, "ci": fisher_ci(r, n, n_groups, level), "p": p, "n": n, "n_groups": n_groups,
            "df": n - n_groups - 1, "p_method": f"permutation within groups, {method}",
            "ci_method": f"Fisher z, df = n − G − 1 = {n - n_groups - 1}, SE = 1/√(df − 1)"}
