"""Analytic minimum detectable effects of the fixed-effect correlation, given the design (STUDY §5.1 "Power").

The simulation in :mod:`transferlimits.metrics.power` gives power and MDE of the within-task permutation test
for a planned design; the functions here give the same MDE in closed form (Fisher's z on n − G − 2 degrees of
freedom, attenuated by the seed noise of seed-averaged values), cheap enough for every verdict, and the Holm
threshold a hypothesis has to reach among H1–H6. ``benchmarks/power.py`` prints both side by side.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

__all__ = ["fisher_mde", "holm_alpha", "reliability", "seed_reliability"]


def holm_alpha(alpha: float, m: int, rank: int = 1) -> float:
    """Holm's threshold for the ``rank``-th smallest of ``m`` p-values: ``α / (m − rank + 1)``.

    ``rank`` = 1 (default) is the strictest step (= Bonferroni, α/m): the level a hypothesis must reach when no
    other one has been rejected; ``rank`` = m is α.

    Raises:
        ValueError: ``m`` < 1, ``rank`` outside 1..m, or ``alpha`` outside (0, 1).
    """
    if m < 1 or not 1 <= rank <= m or not 0 < alpha < 1:
        raise ValueError(f"need m >= 1, 1 <= rank <= m and 0 < alpha < 1; got m={m}, rank={rank}, alpha={alpha}")
    return alpha / (m - rank + 1)


def reliability(noise: float, seeds: int) -> float:
    """Reliability ``1 / (1 + λ²/s)`` of a mean over ``seeds`` seeds with per-seed noise ratio ``noise`` = λ."""
    if seeds < 1 or noise < 0:
        raise ValueError(f"need seeds >= 1 and noise >= 0, got seeds={seeds}, noise={noise}")
    return 1.0 / (1.0 + noise * noise / seeds)


def fisher_mde(n_units: int, n_groups: int = 1, alpha: float = 0.05, target: float = 0.8,
               rel_x: float = 1.0, rel_y: float = 1.0) -> float:
    """Analytic minimum detectable true |ρ| of the fixed-effect correlation (two-sided ``alpha``, power ``target``).

    The observed r_FE of seed-averaged values estimates ρ·√(rel_x·rel_y) (attenuation by seed noise, see
    :func:`reliability` / :func:`seed_reliability`); Fisher's z gives the smallest observed |r| detected,
    tanh((z₁₋α/₂ + z_power) / √(n − G − 2)), so the true MDE is that divided by √(rel_x·rel_y).

    Returns:
        The MDE in (0, 1]; NaN when n − G − 2 < 1, a reliability is not positive, or even |ρ| = 1 would not be
        detected with that power (the attenuated value exceeds 1).
    """
    dof = n_units - max(n_groups, 1) - 2
    if dof < 1 or not (rel_x > 0 and rel_y > 0):
        return float("nan")
    from_z = float(sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(target))
    value = math.tanh(from_z / math.sqrt(dof)) / math.sqrt(min(rel_x, 1.0) * min(rel_y, 1.0))
    return value if value <= 1.0 else float("nan")


def seed_reliability(means, sds, counts, groups) -> float:
    """Reliability of seed-averaged values from their own table: 1 − (seed-noise variance of a mean) / (observed
    within-group variance of the means), clipped to [0, 1].

    Args:
        means: ``[n]`` per-unit means over seeds. sds: ``[n]`` their seed SDs (ddof 1). counts: ``[n]`` seeds
            per unit. groups: ``[n]`` fixed-effect group of each unit.

    Returns:
        The reliability; NaN when no unit has ≥ 2 seeds or nothing varies within groups.
    """
    m, sd, n = (np.asarray(a, dtype=np.float64).ravel() for a in (means, sds, counts))
    g = np.asarray(groups).ravel()
    keep = np.isfinite(m)
    labels, codes = np.unique(g[keep], return_inverse=True)
    if labels.size == 0 or keep.sum() - labels.size < 1:
        return float("nan")
    mk = m[keep]
    resid = mk - np.array([mk[codes == c].mean() for c in range(labels.size)])[codes]
    observed = float((resid**2).sum()) / (mk.size - labels.size)
    noisy = keep & np.isfinite(sd) & (n >= 2)
    if not noisy.any() or observed <= 0:
        return float("nan")
    noise = float(np.mean(sd[noisy] ** 2 / n[noisy]))
    return float(min(1.0, max(0.0, 1.0 - noise / observed)))
