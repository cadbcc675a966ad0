"""Power of the encoder controls' detection test (``study.control_check``), in closed form.

A control's paired gains ``d_1 … d_n`` over ``n`` seeds (pretrained − scratch, signed so that a gain is > 0) are
tested with a one-sided one-sample t-test, Holm-adjusted over the ``m`` (task, model) points of that control. The
first Holm step compares the smallest p with ``α / m``, so a control can only be detected at all when its own
``t = mean / (sd / √n)`` exceeds ``t_{1 − α/m, n − 1}``; this module reads that step (later steps are easier, so it
bounds each point's power from below). With true gain ``δ`` and seed-to-seed SD ``σ`` of the differences, ``t``
is non-central t with ``n − 1`` degrees of freedom and non-centrality ``(δ / σ) √n`` (gains normal over seeds).

* :func:`detection_power` — the probability of detection at effect size ``δ / σ``;
* :func:`detectable_gain` — the smallest ``δ / σ`` detected with the given power (bisection).
"""

from __future__ import annotations

import math

from scipy import stats

__all__ = ["critical_t", "detection_power", "detectable_gain"]


def critical_t(seeds: int, points: int, alpha: float = 0.05) -> float:
    """``t_{1 − α/m, n − 1}``: the t a control needs at Holm's first step (one-sided, ``m`` = ``points``).

    Raises:
        ValueError: ``seeds`` < 2, ``points`` < 1 or ``alpha`` not in (0, 1).
    """
    if seeds < 2:
        raise ValueError(f"seeds must be >= 2 for a t-test over seeds, got {seeds}")
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return float(stats.t.ppf(1 - alpha / points, seeds - 1))


def detection_power(effect: float, seeds: int, points: int, alpha: float = 0.05) -> float:
    """P(detected) of a control whose paired gain is ``effect`` seed-SDs (``δ / σ``), ``seeds`` seeds, Holm over
    ``points`` points (first step), one-sided level ``alpha``."""
    tc = critical_t(seeds, points, alpha)
    if not math.isfinite(effect):
        raise ValueError(f"effect must be finite, got {effect}")
    return float(stats.nct.sf(tc, seeds - 1, effect * math.sqrt(seeds)))


def detectable_gain(seeds: int, points: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest ``δ / σ`` with :func:`detection_power` ≥ ``power`` (bisection to 1e-4).

    Raises:
        ValueError: ``power`` not in (0, 1), or the arguments of :func:`critical_t`.
    """
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power}")
    lo, hi = 0.0, 1.0
    while detection_power(hi, seeds, points, alpha) < power:
        lo, hi = hi, hi * 2
    while hi - lo > 1e-4:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if detection_power(mid, seeds, points, alpha) < power else (lo, mid)
    return hi
