"""Power of the within-task alignment–gain test, simulated from the noise of a finished run (STUDY §5.1).

Model. ``G`` (task, model) groups with ``k`` encoders each. Encoder ``i`` of group ``g`` has a true alignment
``a`` and a true gain ``t`` drawn bivariate normal with unit between-encoder SD and correlation ``ρ`` (the
effect), plus a group offset on each (the task's difficulty: a fixed effect the test removes). The observed
values are means over ``s`` seeds of true + noise, the per-seed noise SD being ``λ`` times the between-encoder
SD (``λ_a`` for alignment, ``λ_t`` for gain), so the reliability of an observed value is ``1 / (1 + λ²/s)``.

Test. The within-group (partial) correlation: demean both sides within each group, correlate the pooled
demeaned values (= :func:`transferlimits.metrics.correlation.within_group_correlation`'s ``partial_r``);
two-sided permutation p-value, gains permuted among the encoders of each group, ``(1 + #{|r*| ≥ |r|}) /
(1 + P)``. Power is the rejection rate at ``α`` over simulated datasets; the minimum detectable effect (MDE)
the smallest ``|ρ|`` with power ≥ 80 %, by bisection on common random numbers (the same normals and
permutations at every ``ρ``, so power is smooth in ``ρ``).

Noise. :func:`estimate_noise` reads ``metrics.json`` dicts and, per (task, model) group, treats the native
and the swapped pre-training objective as two encoders: the seed noise is the pooled within-encoder variance
over seeds; the between-encoder spread is the one-way ANOVA component ``(MS_between − MS_within) / n₀``
(truncated at 0). Two encoders per group make each group's spread rough, so the pooled ratio is a ratio of
sums of the components, each group first divided by its total variance (units differ across tasks).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np

__all__ = ["Design", "across_task_power", "draw_base", "estimate_noise", "mde", "perm_pvalues", "power",
           "signflip_min_p", "within_r"]

_CHUNK = 64  # simulated datasets per vectorised permutation block


@dataclass(frozen=True)
class Design:
    """One study design and the simulation settings.

    Attributes:
        n_groups: (task, model) groups G. k: encoders per group. seeds: seeds averaged per encoder s.
        noise_align: λ_a, per-seed SD of alignment over the between-encoder SD. noise_gain: λ_t, same for gain.
        n_sims: simulated datasets. n_perm: permutations per dataset. alpha: two-sided level. seed: RNG seed.
    """

    n_groups: int = 10
    k: int = 4
    seeds: int = 3
    noise_align: float = 0.0
    noise_gain: float = 0.0
    n_sims: int = 1000
    n_perm: int = 200
    alpha: float = 0.05
    seed: int = 0


def draw_base(design: Design) -> dict[str, np.ndarray]:
    """Common random numbers of a design: normals ``[B, G, k]`` and within-group permutations ``[B, P, G, k]``."""
    if design.k < 2 or design.n_groups < 1 or design.seeds < 1:
        raise ValueError(f"need k >= 2, n_groups >= 1, seeds >= 1; got {design}")
    rng = np.random.default_rng(design.seed)
    shape = (design.n_sims, design.n_groups, design.k)
    base = {name: rng.standard_normal(shape) for name in ("z_a", "z_t", "e_a", "e_t")}
    base["offset"] = 3.0 * rng.standard_normal((design.n_sims, design.n_groups, 1))
    perm_shape = (design.n_sims, design.n_perm, design.n_groups, design.k)
    base["perm"] = np.argsort(rng.random(perm_shape), axis=-1).astype(np.int8)
    return base


def _observed(design: Design, rho: float, base: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Observed seed-averaged alignment and gain ``[B, G, k]`` at effect ``rho``."""
    a = base["z_a"]
    t = rho * a + math.sqrt(max(1.0 - rho * rho, 0.0)) * base["z_t"]
    root_s = math.sqrt(design.seeds)
    x = a + base["offset"] + design.noise_align / root_s * base["e_a"]
    y = t - 2.0 * base["offset"] + design.noise_gain / root_s * base["e_t"]
    return x, y


def within_r(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Partial correlation given group dummies: r of within-group centred values, ``[..., G, k] → [...]``."""
    xc, yc = x - x.mean(-1, keepdims=True), y - y.mean(-1, keepdims=True)
    den = np.sqrt((xc * xc).sum((-1, -2)) * (yc * yc).sum((-1, -2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (xc * yc).sum((-1, -2)) / den, np.nan)


def perm_pvalues(x: np.ndarray, y: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Two-sided within-group permutation p-values of :func:`within_r` for datasets ``[B, G, k]``.

    Args:
        x: ``[B, G, k]`` alignment. y: ``[B, G, k]`` gain. perm: ``[B, P, G, k]`` permutations of ``range(k)``.

    Returns:
        ``[B]`` p-values ``(1 + #{|r*| ≥ |r|}) / (1 + P)`` (1.0 where r is undefined).
    """
    xc, yc = x - x.mean(-1, keepdims=True), y - y.mean(-1, keepdims=True)
    den = np.sqrt((xc * xc).sum((-1, -2)) * (yc * yc).sum((-1, -2)))
    den = np.where(den > 0, den, np.inf)
    r_obs = np.abs((xc * yc).sum((-1, -2)) / den)
    out = np.empty(x.shape[0])
    for lo in range(0, x.shape[0], _CHUNK):
        sl = slice(lo, lo + _CHUNK)
        y_perm = np.take_along_axis(yc[sl, None], perm[sl].astype(np.intp), axis=-1)
        r_perm = np.abs((xc[sl, None] * y_perm).sum((-1, -2)) / den[sl, None])
        out[sl] = (1 + (r_perm >= r_obs[sl, None] - 1e-12).sum(-1)) / (1 + perm.shape[1])
    return np.where(np.isfinite(den), out, 1.0)


def power(design: Design, rho: float, base: Mapping[str, np.ndarray] | None = None,
          alpha: float | None = None) -> float:
    """Rejection rate of the within-group permutation test at ``rho`` (size when ``rho`` = 0).

    Args:
        design: the design. rho: true within-group correlation. base: :func:`draw_base` (drawn when None).
        alpha: two-sided level (default ``design.alpha``; e.g. :func:`holm_alpha` for the Holm threshold).
    """
    base = draw_base(design) if base is None else base
    level = design.alpha if alpha is None else alpha
    x, y = _observed(design, rho, base)
    return float(np.mean(perm_pvalues(x, y, base["perm"]) <= level))


def mde(design: Design, base: Mapping[str, np.ndarray] | None = None, target: float = 0.8,
        tol: float = 0.005, alpha: float | None = None) -> float | None:
    """Smallest ``|ρ|`` with power ≥ ``target`` at ``alpha`` (bisection on ``[0, 0.99]``); None if 0.99 falls short."""
    base = draw_base(design) if base is None else base
    lo, hi = 0.0, 0.99
    if power(design, -hi, base, alpha) < target:
        return None
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if power(design, -mid, base, alpha) >= target else (mid, hi)
    return hi


def across_task_power(design: Design, rho: float) -> float:
    """Power of the plain correlation over ``n_groups`` points (one per group, no fixed effects).

    Each point's true alignment and gain correlate ``rho`` across points; the design's λ are taken relative
    to the between-point spread; the p-value permutes gains over all points.
    """
    one = replace(design, k=design.n_groups, n_groups=1)
    base = dict(draw_base(one))
    base["offset"] = np.zeros_like(base["offset"])
    return power(one, rho, base)


def signflip_min_p(n_tasks: int) -> float:
    """Smallest attainable two-sided p of an exact sign-flip test over ``n_tasks`` units: ``2 / 2^T`` (≤ 1)."""
    if n_tasks < 1:
        raise ValueError(f"need n_tasks >= 1, got {n_tasks}")
    return min(1.0, 2.0 / 2.0**n_tasks)


def _components(values: Mapping[str, list[float]]) -> dict | None:
    """Seed-noise SD, between-encoder SD and their ratio from ``{encoder: [per-seed values]}``."""
    cells = [np.asarray(v, dtype=float) for v in values.values()]
    cells = [c[np.isfinite(c)] for c in cells]
    cells = [c for c in cells if c.size >= 2]
    if len(cells) < 2:
        return None
    n = np.array([c.size for c in cells], dtype=float)
    means = np.array([c.mean() for c in cells])
    grand = float(np.concatenate(cells).mean())
    ms_within = sum(((c - c.mean()) ** 2).sum() for c in cells) / float((n - 1).sum())
    ms_between = float((n * (means - grand) ** 2).sum() / (len(cells) - 1))
    n0 = (n.sum() - (n * n).sum() / n.sum()) / (len(cells) - 1)
    spread2 = max(0.0, (ms_between - ms_within) / n0)
    total = float(np.concatenate(cells).var(ddof=1))
    return {"sd_seed": math.sqrt(ms_within), "sd_between": math.sqrt(spread2),
            "ratio": math.sqrt(ms_within / spread2) if spread2 > 0 else None,
            "var_seed_rel": ms_within / total if total > 0 else None,
            "var_between_rel": spread2 / total if total > 0 else None,
            "n_encoders": len(cells), "n_values": int(n.sum()), **_twoway(values, total)}


def _twoway(values: Mapping[str, list[float]], total: float) -> dict:
    """Additive encoder + seed model (the seed effect shared by encoders, e.g. one scratch run, removed).

    Returns ``sd_interaction`` (encoder × seed residual SD), ``sd_between_twoway`` ((MS_encoder −
    MS_interaction) / seeds, truncated at 0), their ratio and both variances relative to ``total``; None
    entries where the table is incomplete.
    """
    table = np.asarray(list(values.values()), dtype=float)  # [encoders, seeds]
    none = {"sd_interaction": None, "sd_between_twoway": None, "ratio_twoway": None,
            "var_interaction_rel": None, "var_between_twoway_rel": None}
    if table.ndim != 2 or min(table.shape) < 2 or not np.isfinite(table).all() or total <= 0:
        return none
    n_enc, n_seed = table.shape
    resid = table - table.mean(0) - table.mean(1, keepdims=True) + table.mean()
    ms_int = float((resid**2).sum()) / ((n_enc - 1) * (n_seed - 1))
    ms_enc = n_seed * float(((table.mean(1) - table.mean()) ** 2).sum()) / (n_enc - 1)
    spread2 = max(0.0, (ms_enc - ms_int) / n_seed)
    return {"sd_interaction": math.sqrt(ms_int), "sd_between_twoway": math.sqrt(spread2),
            "ratio_twoway": math.sqrt(ms_int / spread2) if spread2 > 0 else None,
            "var_interaction_rel": ms_int / total, "var_between_twoway_rel": spread2 / total}


def _ratio_of_sums(rows: list[dict], noise: str, spread: str) -> float | None:
    rows = [g for g in rows if g[noise] is not None and g[spread] is not None]
    between = sum(g[spread] for g in rows)
    return math.sqrt(sum(g[noise] for g in rows) / between) if between > 0 else None


def _pooled(groups: Iterable[dict | None]) -> dict:
    """Ratio of sums of the relative variance components over groups (see the module docstring)."""
    rows = [g for g in groups if g and g["var_seed_rel"] is not None]
    ratio = _ratio_of_sums(rows, "var_seed_rel", "var_between_rel")
    twoway = _ratio_of_sums(rows, "var_interaction_rel", "var_between_twoway_rel")
    return {"ratio": ratio, "ratio_twoway": twoway, "n_groups": len(rows),
            "n_groups_twoway": sum(g["var_interaction_rel"] is not None for g in rows),
            "reliability_1_seed": None if ratio is None else 1.0 / (1.0 + ratio**2)}


def _value(metrics: Mapping, field: str) -> float:
    if field == "gain":
        v = metrics.get("rpg_primary")
    else:
        v = ((((metrics.get("alignment") or {}).get("pretrained") or {}).get("pooled") or {})
             .get("embedding") or {}).get("mmd2")
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else float("nan")


def estimate_noise(metrics: Iterable[Mapping]) -> dict:
    """Seed noise and between-encoder spread of RPG (``gain``) and embedding MMD² (``align``) per group.

    Args:
        metrics: ``metrics.json`` dicts with ``task``, ``model``, ``seed``, ``objective``, ``rpg_primary``
            and ``alignment.pretrained.pooled.embedding.mmd2``; each objective is one encoder of its group.

    Returns:
        ``{"groups": {"task/model": {"gain": comps | None, "align": comps | None}}, "pooled": {"gain": ...,
        "align": ...}}``; ``comps`` as in :func:`_components`.
    """
    table: dict[str, dict[str, dict[str, dict]]] = defaultdict(lambda: defaultdict(dict))
    for m in metrics:
        group = f"{m['task']}/{m['model']}"
        table[group][m.get("objective") or "native"][m["seed"]] = m
    out: dict = {"groups": {}, "pooled": {}}
    for group in sorted(table):
        encoders = table[group]
        seeds = sorted(set().union(*(e.keys() for e in encoders.values())))
        out["groups"][group] = {field: _components({
            name: [_value(runs[s], field) if s in runs else float("nan") for s in seeds]
            for name, runs in sorted(encoders.items())}) for field in ("gain", "align")}
    for field in ("gain", "align"):
        out["pooled"][field] = _pooled(g[field] for g in out["groups"].values())
    return out
