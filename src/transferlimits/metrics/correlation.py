"""Correlations across (task, model) points that are comparable across encoders (STUDY §5).

Three rules, each a function here:

1. Features of encoders of different width and scale are put on one scale before MMD²:
   :func:`standardise_by` z-scores every feature by the *pretrained* features' mean and SD (the fine-tuned
   features of the same encoder get the same affine map, so their shift stays visible).
2. Seeds are not independent points: :func:`average_seeds` gives one point per (task, model), with the seed
   spread (SD, count) for error bars; :func:`correlate_points` then resamples and permutes *points*.
3. Models differ in level: :func:`within_group_correlation` reports per-model correlations and a pooled one
   with the model as a fixed effect (values z-scored within each model before pooling; the partial
   correlation given model dummies = correlation of within-model centred values is returned as a check).

Permutation p-values are two-sided, (1 + #{|r*| ≥ |r|}) / (1 + P); bootstrap intervals are percentile
intervals over resampled points (replicates with a constant side are dropped).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from transferlimits.metrics.fixed_effects import finite_in_groups

__all__ = ["average_seeds", "correlate_points", "standardise_by", "within_group_correlation"]


def standardise_by(reference, *arrays, eps: float = 1e-12) -> tuple[np.ndarray, ...]:
    """Z-score ``reference`` and every array by the per-feature mean and SD of ``reference``.

    Args:
        reference: pretrained features ``[n, d]`` (defines the scale). arrays: more ``[m, d]`` arrays (e.g. the
            fine-tuned features of the same images). eps: features with SD ≤ eps are only centred.

    Returns:
        ``(reference_std, *arrays_std)`` as float64 arrays of the input shapes.
    """
    ref = np.asarray(reference, dtype=np.float64)
    if ref.ndim != 2 or ref.shape[0] < 2:
        raise ValueError(f"reference must be [n, d] with n >= 2, got shape {ref.shape}")
    mean, sd = ref.mean(0), ref.std(0, ddof=1)
    sd = np.where(sd > eps, sd, 1.0)
    out = [(ref - mean) / sd]
    for k, a in enumerate(arrays):
        arr = np.asarray(a, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != ref.shape[1]:
            raise ValueError(f"array {k} must be [m, {ref.shape[1]}] like reference, got shape {arr.shape}")
        out.append((arr - mean) / sd)
    return tuple(out)


def average_seeds(rows, keys: Sequence[str] = ("task", "model"), value_cols: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per point (``keys``): mean over seeds, seed SD and count per value column.

    Args:
        rows: a DataFrame or a sequence of mappings, one per (task, model, seed) run.
        keys: columns that identify a point (default task, model).
        value_cols: numeric columns to average (default: every numeric column except the keys and "seed").

    Returns:
        DataFrame sorted by ``keys`` with the keys, ``n_seeds`` (rows per point) and for each column ``c``:
        ``c`` (NaN-ignoring mean), ``c_sd`` (SD with ddof 1; NaN with < 2 finite values) and ``c_n``
        (finite values).
    """
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise ValueError(f"keys {missing} are not columns of rows (columns: {list(df.columns)})")
    if value_cols is None:
        value_cols = [c for c in df.select_dtypes("number").columns if c not in keys and c != "seed"]
    absent = [c for c in value_cols if c not in df.columns]
    if absent:
        raise ValueError(f"value_cols {absent} are not columns of rows")
    grouped = df.groupby(list(keys), sort=True, dropna=False)
    stats = grouped[list(value_cols)].agg(["mean", "std", "count"])  # std: ddof 1, NaN-ignoring
    out = grouped.size().rename("n_seeds").to_frame()
    for c in value_cols:
        out[c], out[f"{c}_sd"], out[f"{c}_n"] = stats[(c, "mean")], stats[(c, "std")], stats[(c, "count")]
    return out.reset_index()


def _standardise_rows(a: np.ndarray) -> np.ndarray:
    """Rows of ``a`` ``[B, n]`` centred and scaled to unit norm (NaN rows where a row is constant)."""
    c = a - a.mean(-1, keepdims=True)
    norm = np.sqrt((c * c).sum(-1, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 1e-12 * (1 + np.abs(a).max(-1, keepdims=True)), c / norm, np.nan)


def _r(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of matching rows of ``x`` and ``y`` ``[..., n]`` (NaN for a constant row)."""
    return (_standardise_rows(x) * _standardise_rows(y)).sum(-1)


def _rank(a: np.ndarray) -> np.ndarray:
    return sps.rankdata(a, axis=-1)


def _perm_p(observed: float, null: np.ndarray) -> float:
    if not np.isfinite(observed):
        return float("nan")
    return float((1 + np.sum(np.abs(np.nan_to_num(null)) >= abs(observed) - 1e-12)) / (1 + null.size))


def _ci(reps: np.ndarray, level: float) -> tuple[float, float]:
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def correlate_points(x, y, labels: Sequence[Hashable] | None = None, n_boot: int = 2000, n_perm: int = 2000,
                     seed: int = 0, level: float = 0.95) -> dict:
    """Pearson and Spearman across points with bootstrap CIs over points, permutation p and LOO influence.

    Args:
        x: ``[n]`` one value per point (seed-averaged, see :func:`average_seeds`); NaN pairs are dropped.
        y: ``[n]``. labels: optional ``[n]`` point names (default: original indices).
        n_boot: bootstrap replicates of the points (0 = no CI). n_perm: permutations of y (0 = no p).
        seed: RNG seed. level: CI level in (0, 1).

    Returns:
        ``{"n", "pearson_r", "pearson_ci", "pearson_p_perm", "spearman_rho", "spearman_ci", "spearman_p_perm",
        "loo": [(label, r, rho)], "max_loo_change", "max_loo_point"}``; NaN entries for n < 3.
    """
    if not 0 < level < 1 or n_boot < 0 or n_perm < 0:
        raise ValueError(f"need 0 < level < 1, n_boot >= 0, n_perm >= 0; got {level}, {n_boot}, {n_perm}")
    xa, ya = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if xa.shape != ya.shape:
        raise ValueError(f"x and y must have the same length, got {xa.size} and {ya.size}")
    names = list(range(xa.size)) if labels is None else list(labels)
    if len(names) != xa.size:
        raise ValueError(f"labels must have one entry per point ({xa.size}), got {len(names)}")
    keep = np.flatnonzero(np.isfinite(xa) & np.isfinite(ya))
    xa, ya, names = xa[keep], ya[keep], [names[i] for i in keep]
    n, nan, nan2 = int(xa.size), float("nan"), (float("nan"), float("nan"))
    out = {"n": n, "pearson_r": nan, "pearson_ci": nan2, "pearson_p_perm": nan, "spearman_rho": nan,
           "spearman_ci": nan2, "spearman_p_perm": nan, "loo": [], "max_loo_change": nan, "max_loo_point": None}
    if n < 3:
        return out
    rng = np.random.default_rng(seed)
    rx, ry = _rank(xa), _rank(ya)
    r, rho = float(_r(xa, ya)), float(_r(rx, ry))
    out.update(pearson_r=r, spearman_rho=rho)
    if n_boot:
        idx = rng.integers(0, n, size=(n_boot, n))
        out["pearson_ci"] = _ci(_r(xa[idx], ya[idx]), level)
        out["spearman_ci"] = _ci(_r(_rank(xa[idx]), _rank(ya[idx])), level)
    if n_perm:
        perm = rng.permuted(np.tile(np.arange(n), (n_perm, 1)), axis=1)
        out["pearson_p_perm"] = _perm_p(r, _r(np.broadcast_to(xa, perm.shape), ya[perm]))
        out["spearman_p_perm"] = _perm_p(rho, _r(np.broadcast_to(rx, perm.shape), ry[perm]))
    loo_idx = np.array([np.delete(np.arange(n), j) for j in range(n)])  # [n, n − 1]
    loo_r, loo_rho = _r(xa[loo_idx], ya[loo_idx]), _r(_rank(xa[loo_idx]), _rank(ya[loo_idx]))
    out["loo"] = [(names[j], float(loo_r[j]), float(loo_rho[j])) for j in range(n)]
    change = np.fmax(np.abs(loo_r - r), np.abs(loo_rho - rho))
    if np.isfinite(change).any():
        j = int(np.nanargmax(change))
        out["max_loo_change"], out["max_loo_point"] = float(change[j]), names[j]
    return out


def _within(values: np.ndarray, codes: np.ndarray, n_groups: int, scale: bool) -> np.ndarray:
    """Centre (and with ``scale`` z-score, ddof 1) ``values`` ``[..., n]`` within each group code."""
    out = np.empty_like(values)
    for g in range(n_groups):
        m = codes == g
        v = values[..., m] - values[..., m].mean(-1, keepdims=True)
        if scale:
            sd = v.std(-1, ddof=1, keepdims=True)
            v = np.divide(v, sd, out=np.zeros_like(v), where=sd > 0)
        out[..., m] = v
    return out


def within_group_correlation(x, y, groups, n_boot: int = 2000, n_perm: int = 2000, seed: int = 0,
                             level: float = 0.95, per_group: bool = True) -> dict:
    """Pooled correlation with the group (model) as a fixed effect, plus per-group correlations.

    Args:
        x: ``[n]`` point values. y: ``[n]``. groups: ``[n]`` group of each point (e.g. the model).
        n_boot: replicates resampling points within each group (0 = no CI). n_perm: permutations of y within
            each group (0 = no p). seed: RNG seed. level: CI level. per_group: also run
            :func:`correlate_points` per group (same n_boot / n_perm).

    Returns:
        ``{"n", "n_groups", "fe_r"`` (Pearson of values z-scored within groups), ``"fe_ci", "fe_p_perm",
        "fe_rho"`` (same on within-group ranks), ``"partial_r"`` (correlation of within-group centred values =
        partial correlation given group dummies), ``"naive_r"`` (pooled ignoring groups, for contrast),
        ``"per_group": {group: correlate_points dict}}``. Groups with < 2 finite points are dropped.
    """
    xa, ya, ga = finite_in_groups(x, y, groups)
    labels, codes = np.unique(ga, return_inverse=True)
    n, n_g = int(xa.size), int(labels.size)
    nan = float("nan")
    out = {"n": n, "n_groups": n_g, "fe_r": nan, "fe_ci": (nan, nan), "fe_p_perm": nan, "fe_rho": nan,
           "partial_r": nan, "naive_r": nan, "per_group": {}}
    if n - n_g < 2:
        return out
    zx, zy = _within(xa, codes, n_g, True), _within(ya, codes, n_g, True)
    fe = float(_r(zx, zy))
    out.update(fe_r=fe, naive_r=float(_r(xa, ya)),
               fe_rho=float(_r(_within(_rank_within(xa, codes, n_g), codes, n_g, True),
                               _within(_rank_within(ya, codes, n_g), codes, n_g, True))),
               partial_r=float(_r(_within(xa, codes, n_g, False), _within(ya, codes, n_g, False))))
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(codes == g) for g in range(n_g)]
    if n_boot:
        idx = np.concatenate([m[rng.integers(0, m.size, size=(n_boot, m.size))] for m in members], axis=1)
        out["fe_ci"] = _ci(_r(_within(xa[idx], codes[idx[0]], n_g, True), _within(ya[idx], codes[idx[0]], n_g, True)), level)
    if n_perm:
        perm = np.tile(np.arange(n), (n_perm, 1))
        for m in members:
            perm[:, m] = rng.permuted(np.tile(m, (n_perm, 1)), axis=1)
        out["fe_p_perm"] = _perm_p(fe, _r(np.broadcast_to(zx, perm.shape), zy[perm]))
    if per_group:
        out["per_group"] = {lab.item() if hasattr(lab, "item") else lab: correlate_points(
            xa[m], ya[m], n_boot=n_boot, n_perm=n_perm, seed=seed, level=level) for lab, m in zip(labels, members)}
    return out


def _rank_within(values: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    out = np.empty_like(values)
    for g in range(n_groups):
        out[codes == g] = sps.rankdata(values[codes == g])
    return out
