"""Transfer gains: relative performance gain (RPG), its validity rule, a bounded gain, convergence speed.

RPG is *defined* for a point only where the scratch run beats the task's trivial baseline
(:func:`rpg_status`); :func:`normalised_gain` is finite for every point:

    NG = s·(P_pre − P_scr) / (|P_pre − P_base| + |P_scr − P_base| + ε),  s = +1 if higher is better else −1,

which lies in [−1, 1] (triangle inequality), is +1 when only pretraining beats the baseline and 0 for a tie.

Convergence definition (works for any sign and either direction): with v_t the validation value at epoch t
(1-based), v_0 the reference value (``start``/``baseline``; default the first entry) and b the best value the
run reaches (max if higher is better, min otherwise), the *progress* at epoch t is

    progress_t = (v_t − v_0) / (b − v_0)

and ``epochs_to_fraction`` is the first t with progress_t ≥ fraction. Progress is 1 at the best epoch and does
not depend on the metric's scale, offset or sign (a loss of −3 → −5 is handled like a Dice of 0.3 → 0.5).
If the run never improves on v_0 (b = v_0) the answer is the first epoch whose value equals b. NaN epochs are
never counted as reached; an empty or all-NaN curve gives ``None``.

Epoch 0 (STUDY §5): with ``epoch0=True`` the first entry is the evaluation *before any update* and the answer
counts epochs from it (0 = already there at initialisation, so a head start from pre-training is kept);
``seconds[0]`` is then the time of that evaluation (usually 0). :func:`convergence_summary` with
``epoch0=True`` measures both runs from one common start (default: the scratch run's epoch-0 value).
Without ``epoch0`` the old 1-based behaviour is unchanged. These whole-epoch functions are kept for older
callers and files; the study's convergence (STUDY §5.2: time to 90 / 95 % interpolated between >= 10
evaluations, runs that start above their threshold flagged) is :mod:`transferlimits.metrics.convergence`,
re-exported here (:func:`convergence_table`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from transferlimits.metrics.convergence import RunCurve, convergence_table, curve_of, find_crossing, time_to_fraction

__all__ = ["RPGStatus", "rpg", "rpg_status", "normalised_gain", "epochs_to_fraction", "seconds_to_fraction",
           "ProgressRule", "convergence_summary", "RunCurve", "convergence_table", "curve_of", "find_crossing",
           "time_to_fraction"]


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


class RPGStatus(NamedTuple):
    """RPG of one point with its validity: ``(value, defined, reason)``; value is None when not defined."""

    value: float | None
    defined: bool
    reason: str | None


def rpg_status(pretrained: float, scratch: float, baseline: float, higher_is_better: bool = True,
               margin: float = 0.0) -> RPGStatus:
    """RPG, defined only where the scratch run beats the trivial baseline (STUDY §5).

    Args:
        pretrained: test score of the pretrained init. scratch: test score of the scratch init.
        baseline: test score of the task's trivial baseline (identity, train median, class prior, empty mask).
        higher_is_better: direction of the metric (default True).
        margin: scratch must beat the baseline by more than this (in metric units, ≥ 0; default 0 = strictly).

    Returns:
        :class:`RPGStatus`; ``reason`` is ``"non-finite score"``, ``"scratch does not beat the baseline …"`` or
        ``"scratch score is 0"`` when undefined, else None.
    """
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    pre, scr, base = float(pretrained), float(scratch), float(baseline)
    if not all(math.isfinite(v) for v in (pre, scr, base)):
        return RPGStatus(None, False, f"non-finite score (pretrained={pre}, scratch={scr}, baseline={base})")
    sign = 1.0 if higher_is_better else -1.0
    if not sign * (scr - base) > margin:
        return RPGStatus(None, False, f"scratch does not beat the baseline (scratch={scr:.6g}, baseline={base:.6g}, "
                                      f"margin={margin:g}, {'higher' if higher_is_better else 'lower'} is better)")
    if scr == 0.0:
        return RPGStatus(None, False, "scratch score is 0")
    return RPGStatus(rpg(pre, scr, higher_is_better), True, None)


def normalised_gain(pretrained: float, scratch: float, baseline: float, higher_is_better: bool = True,
                    eps: float = 1e-12) -> float | None:
    """NG = s·(P_pre − P_scr) / (|P_pre − P_base| + |P_scr − P_base| + ε), in [−1, 1] (module docstring).

    Args:
        pretrained, scratch, baseline: test scores. higher_is_better: direction (s = ±1).
        eps: ε > 0 keeps the value finite (0) when all three scores coincide (default 1e-12).

    Returns:
        NG as a float; None when a score is NaN or infinite.
    """
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    pre, scr, base = float(pretrained), float(scratch), float(baseline)
    if not all(math.isfinite(v) for v in (pre, scr, base)):
        return None
    sign = 1.0 if higher_is_better else -1.0
    return min(1.0, max(-1.0, sign * (pre - scr) / (abs(pre - base) + abs(scr - base) + eps)))  # clip rounding


def _check_fraction(fraction: float) -> None:
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")


def _reference(v: np.ndarray, finite: np.ndarray, baseline: float | None, start: float | None) -> float:
    if baseline is not None and start is not None and float(baseline) != float(start):
        raise ValueError(f"pass either start or its old name baseline, got start={start}, baseline={baseline}")
    ref = start if start is not None else baseline
    if ref is not None and not math.isfinite(float(ref)):
        raise ValueError(f"start must be finite, got {ref}")
    return float(v[np.argmax(finite)]) if ref is None else float(ref)


def epochs_to_fraction(
    curve: Sequence[float],
    fraction: float = 0.9,
    higher_is_better: bool = True,
    baseline: float | None = None,
    *,
    start: float | None = None,
    epoch0: bool = False,
) -> int | None:
    """First epoch at which the run has covered ``fraction`` of the way from the start value to its best.

    Args:
        curve: validation values ``[E]``: epochs 1..E, or with ``epoch0=True`` epochs 0..E−1 (entry 0 evaluated
            before any update).
        fraction: required progress in (0, 1] (default 0.9).
        higher_is_better: direction of the metric (default True).
        baseline: old name of ``start`` (kept for existing callers).
        start: reference value v_0, e.g. the common starting score of the pretrained and scratch runs; default
            None = the curve's first finite value.
        epoch0: the first entry is epoch 0 and the answer counts from it (default False: 1-based).

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
    ref = _reference(v, finite, baseline, start)
    span = best - ref
    if sign * span <= 0:  # never better than the reference: first epoch at (or beyond) the best value
        hit = np.flatnonzero(finite & (sign * v >= sign * best))
    else:
        progress = np.where(finite, (v - ref) / span, -np.inf)
        hit = np.flatnonzero(progress >= fraction - 1e-12)
    return int(hit[0]) + (0 if epoch0 else 1)


def seconds_to_fraction(curve: Sequence[float], seconds: Sequence[float], fraction: float = 0.9,
                        higher_is_better: bool = True, baseline: float | None = None, *, start: float | None = None,
                        epoch0: bool = False) -> float | None:
    """Cumulative wall seconds at :func:`epochs_to_fraction`'s epoch.

    Args:
        curve: validation values ``[E]`` (see :func:`epochs_to_fraction`).
        seconds: cumulative seconds at each entry of ``curve`` ``[E]`` (non-decreasing; with ``epoch0`` the
            first is the time of the epoch-0 evaluation, usually 0).
        fraction, higher_is_better, baseline, start, epoch0: as in :func:`epochs_to_fraction`.

    Returns:
        Seconds, or ``None`` when the epoch is ``None``.
    """
    s = np.asarray(seconds, dtype=np.float64).ravel()
    if s.size != len(curve):
        raise ValueError(f"seconds must have one entry per epoch ({len(curve)}), got {s.size}")
    if np.any(np.diff(s) < 0):
        raise ValueError("seconds must be cumulative (non-decreasing)")
    epoch = epochs_to_fraction(curve, fraction, higher_is_better, baseline, start=start, epoch0=epoch0)
    return None if epoch is None else float(s[epoch - (0 if epoch0 else 1)])


def _ratio(a: float | None, b: float | None) -> float:
    if a is None or b is None or b == 0:
        return float("nan")
    return float(a) / float(b)


@dataclass(frozen=True)
class ProgressRule:
    """Where :func:`convergence_summary` measures progress from (see :func:`epochs_to_fraction`).

    Attributes:
        baseline: old name of ``start`` (kept for existing callers; default None).
        start: common starting score of both runs. With ``epoch0=True`` its default is the scratch run's
            epoch-0 value (the score without pre-training); without ``epoch0`` each run starts from its own
            first value unless ``start``/``baseline`` is given (old behaviour).
        epoch0: curves begin with the epoch-0 evaluation (default False).
    """

    baseline: float | None = None
    start: float | None = None
    epoch0: bool = False


def convergence_summary(
    curve_pre: Sequence[float],
    curve_scr: Sequence[float],
    seconds_pre: Sequence[float] | None = None,
    seconds_scr: Sequence[float] | None = None,
    fractions: Sequence[float] = (0.9, 0.95),
    higher_is_better: bool = True,
    rule: ProgressRule | None = None,
    **keywords: float | bool | None,
) -> dict:
    """Epochs and seconds to each fraction for the pretrained and scratch runs, and their ratios.

    Args:
        curve_pre: pretrained run's validation values ``[E1]``. curve_scr: scratch run's ``[E2]``.
        seconds_pre: cumulative seconds per entry of the pretrained run ``[E1]`` (default None: no seconds).
        seconds_scr: same for the scratch run ``[E2]``.
        fractions: progress fractions (default 0.9, 0.95).
        higher_is_better: as in :func:`epochs_to_fraction`.
        rule: :class:`ProgressRule` (``baseline``, ``start``, ``epoch0``); default: its defaults.
        **keywords: ``baseline``, ``start`` and/or ``epoch0`` (override ``rule``; the former signature).

    Returns:
        ``{str(fraction): {"epochs_pretrained", "epochs_scratch", "epochs_ratio", "seconds_pretrained",
        "seconds_scratch", "seconds_ratio"}}`` (plus ``"start"`` with ``epoch0``); ratio = pretrained /
        scratch (< 1 means pretrained is faster), NaN when a side is ``None`` or the scratch side is 0;
        seconds are ``None`` when not given.

    Raises:
        TypeError: a keyword that is no field of :class:`ProgressRule`.
        ValueError: a fraction outside (0, 1], conflicting ``start``/``baseline``, bad seconds.
    """
    rule = replace(rule if rule is not None else ProgressRule(), **keywords)
    baseline, start, epoch0 = rule.baseline, rule.start, rule.epoch0
    if epoch0 and start is None and baseline is None:
        v = np.asarray(curve_scr, dtype=np.float64).ravel()
        start = float(v[np.argmax(np.isfinite(v))]) if np.isfinite(v).any() else None
    kw = {"baseline": baseline, "start": start, "epoch0": epoch0}
    out = {}
    for frac in fractions:
        e_pre = epochs_to_fraction(curve_pre, frac, higher_is_better, **kw)
        e_scr = epochs_to_fraction(curve_scr, frac, higher_is_better, **kw)
        s_pre = s_scr = None
        if seconds_pre is not None:
            s_pre = seconds_to_fraction(curve_pre, seconds_pre, frac, higher_is_better, **kw)
        if seconds_scr is not None:
            s_scr = seconds_to_fraction(curve_scr, seconds_scr, frac, higher_is_better, **kw)
        out[str(frac)] = {
            "epochs_pretrained": e_pre,
            "epochs_scratch": e_scr,
            "epochs_ratio": _ratio(e_pre, e_scr),
            "seconds_pretrained": s_pre,
            "seconds_scratch": s_scr,
            "seconds_ratio": _ratio(s_pre, s_scr),
        }
        if epoch0:
            out[str(frac)]["start"] = start
    return out
