"""Transfer gains: relative performance gain (RPG) and convergence speed, pretrained vs scratch.

Convergence definition (works for any sign and either direction): with v_t the validation value at epoch t
(1-based), v_0 the reference value (``baseline``; default the first epoch's value v_1) and b the best value the
run reaches (max if higher is better, min otherwise), the *progress* at epoch t is

    progress_t = (v_t − v_0) / (b − v_0)

and ``epochs_to_fraction`` is the first t with progress_t ≥ fraction. Progress is 1 at the best epoch and does
not depend on the metric's scale, offset or sign (a loss of −3 → −5 is handled like a Dice of 0.3 → 0.5).
If the run never improves on v_0 (b = v_0) the answer is the first epoch whose value equals b. NaN epochs are
never counted as reached; an empty or all-NaN curve gives ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["rpg", "epochs_to_fraction", "seconds_to_fraction", "convergence_summary"]


def rpg(pretrained: float, scratch: float, higher_is_better: bool = True) -> float:
    """Relative performance gain in percent: (P_pre − P_scr) / |P_scr| · 100.

    The sign is flipped for lower-is-better metrics, so a positive RPG always means pretraining helped.

    Args:
        pretrained: test score of the pretrained init. scratch: test score of the scratch init.
        higher_is_better: direction of the metric (default True).

    Returns:
        RPG in percent; NaN when ``scratch`` is 0 or either value is NaN or infinite.
    """
    pre, scr = float(pretrained), float(scratch)
    if not (math.isfinite(pre) and math.isfinite(scr)) or scr == 0.0:
        return float("nan")
    gain = (pre - scr) / abs(scr) * 100.0
    return gain if higher_is_better else -gain


def _check_fraction(fraction: float) -> None:
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")


def epochs_to_fraction(
    curve: Sequence[float], fraction: float = 0.9, higher_is_better: bool = True, baseline: float | None = None
) -> int | None:
    """First epoch (1-based) at which the run has made ``fraction`` of its progress to its best value.

    Args:
        curve: per-epoch validation values ``[E]``.
        fraction: required progress in (0, 1] (default 0.9).
        higher_is_better: direction of the metric (default True).
        baseline: reference value v_0 (e.g. chance level); default None = the first epoch's value.

    Returns:
        The epoch number, or ``None`` for an empty / all-NaN curve.
    """
    _check_fraction(fraction)
    v = np.asarray(curve, dtype=np.float64).ravel()
    finite = np.isfinite(v)
    if not finite.any():
        return None
    sign = 1.0 if higher_is_better else -1.0
    best = sign * np.max(sign * v[finite])
    ref = float(v[np.argmax(finite)]) if baseline is None else float(baseline)
    span = best - ref
    if sign * span <= 0:  # never better than the reference: first epoch at (or beyond) the best value
        hit = np.flatnonzero(finite & (sign * v >= sign * best))
    else:
        progress = np.where(finite, (v - ref) / span, -np.inf)
        hit = np.flatnonzero(progress >= fraction - 1e-12)
    return int(hit[0]) + 1


def seconds_to_fraction(
    curve: Sequence[float],
    seconds: Sequence[float],
    fraction: float = 0.9,
    higher_is_better: bool = True,
    baseline: float | None = None,
) -> float | None:
    """Cumulative wall seconds at :func:`epochs_to_fraction`'s epoch.

    Args:
        curve: per-epoch validation values ``[E]``.
        seconds: cumulative seconds at the end of each epoch ``[E]`` (non-decreasing).
        fraction, higher_is_better, baseline: as in :func:`epochs_to_fraction`.

    Returns:
        Seconds, or ``None`` when the epoch is ``None``.
    """
    s = np.asarray(seconds, dtype=np.float64).ravel()
    if s.size != len(curve):
        raise ValueError(f"seconds must have one entry per epoch ({len(curve)}), got {s.size}")
    if np.any(np.diff(s) < 0):
        raise ValueError("seconds must be cumulative (non-decreasing)")
    epoch = epochs_to_fraction(curve, fraction, higher_is_better, baseline)
    return None if epoch is None else float(s[epoch - 1])


def _ratio(a: float | None, b: float | None) -> float:
    if a is None or b is None or b == 0:
        return float("nan")
    return float(a) / float(b)


def convergence_summary(
    curve_pre: Sequence[float],
    curve_scr: Sequence[float],
    seconds_pre: Sequence[float] | None = None,
    seconds_scr: Sequence[float] | None = None,
    fractions: Sequence[float] = (0.9, 0.95),
    higher_is_better: bool = True,
    baseline: float | None = None,
) -> dict:
    """Epochs and seconds to each fraction for the pretrained and scratch runs, and their ratios.

    Args:
        curve_pre: pretrained run's per-epoch validation values ``[E1]``. curve_scr: scratch run's ``[E2]``.
        seconds_pre: cumulative seconds per epoch of the pretrained run ``[E1]`` (default None: no seconds).
        seconds_scr: same for the scratch run ``[E2]``.
        fractions: progress fractions (default 0.9, 0.95).
        higher_is_better, baseline: as in :func:`epochs_to_fraction`.

    Returns:
        ``{str(fraction): {"epochs_pretrained", "epochs_scratch", "epochs_ratio", "seconds_pretrained",
        "seconds_scratch", "seconds_ratio"}}``; ratio = pretrained / scratch (< 1 means pretrained is faster),
        NaN when a side is ``None``; seconds are ``None`` when not given.
    """
    out = {}
    for frac in fractions:
        e_pre = epochs_to_fraction(curve_pre, frac, higher_is_better, baseline)
        e_scr = epochs_to_fraction(curve_scr, frac, higher_is_better, baseline)
        s_pre = s_scr = None
        if seconds_pre is not None:
            s_pre = seconds_to_fraction(curve_pre, seconds_pre, frac, higher_is_better, baseline)
        if seconds_scr is not None:
            s_scr = seconds_to_fraction(curve_scr, seconds_scr, frac, higher_is_better, baseline)
        out[str(frac)] = {
            "epochs_pretrained": e_pre,
            "epochs_scratch": e_scr,
            "epochs_ratio": _ratio(e_pre, e_scr),
            "seconds_pretrained": s_pre,
            "seconds_scratch": s_scr,
            "seconds_ratio": _ratio(s_pre, s_scr),
        }
    return out
