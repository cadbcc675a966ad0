"""Time to a fraction of the way from a common start to a run's best, interpolated between evaluations (STUDY §5.2).

A run is a sequence of validation values v_0, v_1, ... (v_0 evaluated before any update) with, for each, the
optimiser steps, the cumulative seconds and the fractional epoch at which it was taken. With ``start`` the
common starting score s (the scratch run's step-0 value), b the best value the run reaches (max if higher is
better, min otherwise, step 0 included) and f the fraction, the run's threshold is

    T = s + f · (b − s)

and the time to f is the first crossing of T, linearly interpolated between the last evaluation below T and
the first at or beyond it: with those two at positions j < i, ``w = (T − v_j) / (v_i − v_j)`` and every time axis
is read as ``x_j + w · (x_i − x_j)`` (steps, seconds and epochs alike). Undefined cases are never scored 0:

* the run's best does not improve on s (b = s, or worse): null, ``reason`` says so;
* the run's own step-0 value is already at or beyond T (e.g. a pretrained head start): null and
  ``started_above`` True, flagged (its crossing happened before any update; there is nothing to time);
* a non-finite step-0 value: null with a reason. NaN evaluations after step 0 are skipped.

:func:`convergence_table` does this for a pretrained and a scratch run per fraction and divides them
(pretrained / scratch; < 1 = pretrained is faster), returning the reasons of every null beside the table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

__all__ = ["AXES", "RunCurve", "Crossing", "find_crossing", "read_axis", "time_to_fraction", "convergence_table",
           "curve_of"]

#: the time axes of a run, in the order they appear in :func:`convergence_table`'s keys.
AXES = ("steps", "seconds", "epochs")


@dataclass(frozen=True)
class RunCurve:
    """One run's evaluations, all of length ``n`` (entry 0 = before any update).

    Attributes:
        values: validation primary metric ``[n]`` (NaN where not computable).
        steps: optimiser steps so far ``[n]`` (None: not recorded, e.g. an older file).
        seconds: cumulative training seconds ``[n]`` (None: not recorded).
        epochs: fractional epochs ``[n]`` (None: not recorded).
    """

    values: Sequence[float]
    steps: Sequence[float] | None = None
    seconds: Sequence[float] | None = None
    epochs: Sequence[float] | None = None

    def __post_init__(self) -> None:
        n = len(self.values)
        for name in AXES:
            axis = getattr(self, name)
            if axis is None:
                continue
            x = np.asarray(axis, dtype=np.float64)
            if x.shape != (n,):
                raise ValueError(f"RunCurve.{name} must have one entry per value ({n}), got shape {x.shape}")
            if not np.isfinite(x).all() or np.any(np.diff(x) < 0):
                raise ValueError(f"RunCurve.{name} must be finite and non-decreasing, got {list(axis)}")

    def axis(self, name: str) -> Sequence[float] | None:
        """The time axis ``name`` (one of :data:`AXES`)."""
        if name not in AXES:
            raise ValueError(f"axis name must be one of {AXES}, got {name!r}")
        return getattr(self, name)


class Crossing(NamedTuple):
    """Where a run first reaches its threshold: between entries ``lower`` and ``upper`` at weight ``weight``
    (0 = at ``lower``, 1 = at ``upper``); all None when undefined, with ``reason`` (and ``started_above``)."""

    lower: int | None
    upper: int | None
    weight: float | None
    threshold: float | None
    started_above: bool
    reason: str | None


def _undefined(reason: str, threshold: float | None = None, started_above: bool = False) -> Crossing:
    return Crossing(None, None, None, threshold, started_above, reason)


def find_crossing(values: Sequence[float], fraction: float, higher_is_better: bool = True,
                  start: float | None = None) -> Crossing:
    """The first crossing of ``start + fraction · (best − start)`` (module docstring).

    Args:
        values: the run's validation values ``[n]``, entry 0 evaluated before any update.
        fraction: progress in (0, 1].
        higher_is_better: direction of the metric (default True).
        start: the common starting score (default None: the run's own step-0 value).

    Returns:
        :class:`Crossing`.

    Raises:
        ValueError: ``fraction`` outside (0, 1], or a non-finite ``start``.
    """
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0 or not math.isfinite(v[0]):
        return _undefined("the step-0 evaluation is missing or not finite")
    ref = float(v[0]) if start is None else float(start)
    if not math.isfinite(ref):
        raise ValueError(f"start must be finite, got {start}")
    sign = 1.0 if higher_is_better else -1.0
    finite = np.flatnonzero(np.isfinite(v))
    best = sign * float(np.max(sign * v[finite]))
    if not sign * (best - ref) > 0:
        return _undefined(f"never improves on the start (start={ref:.6g}, best={best:.6g})")
    threshold = ref + float(fraction) * (best - ref)
    if sign * (v[0] - threshold) >= 0:
        return _undefined(f"started above: the step-0 value {v[0]:.6g} already reaches {fraction:g} of the way "
                          f"from the start {ref:.6g} to the best {best:.6g}", threshold, True)
    for lower, upper in zip(finite[:-1], finite[1:]):
        if sign * (v[upper] - threshold) >= 0:
            weight = (threshold - v[lower]) / (v[upper] - v[lower])
            return Crossing(int(lower), int(upper), float(min(1.0, max(0.0, weight))), threshold, False, None)
    raise AssertionError("unreachable: the best value reaches the threshold")  # pragma: no cover


def read_axis(axis: Sequence[float], crossing: Crossing) -> float | None:
    """``axis`` at the crossing, linearly interpolated (None when the crossing is undefined)."""
    if crossing.lower is None:
        return None
    x = np.asarray(axis, dtype=np.float64)
    lo, hi = float(x[crossing.lower]), float(x[crossing.upper])
    return lo + float(crossing.weight) * (hi - lo)


def time_to_fraction(run: RunCurve, fraction: float, higher_is_better: bool = True,
                     start: float | None = None) -> dict[str, Any]:
    """Steps, seconds and epochs to ``fraction`` of one run (module docstring).

    Args:
        run: the run's evaluations (:class:`RunCurve`).
        fraction, higher_is_better, start: as in :func:`find_crossing`.

    Returns:
        ``{"steps", "seconds", "epochs": float | None, "started_above": bool, "reason": str | None}``; an axis
        the run does not record is None with the reason ``"<axis> not recorded"`` in ``"axis_reasons"``.
    """
    crossing = find_crossing(run.values, fraction, higher_is_better, start)
    out: dict[str, Any] = {"started_above": crossing.started_above, "reason": crossing.reason, "axis_reasons": {}}
    for name in AXES:
        axis = run.axis(name)
        out[name] = None if axis is None else read_axis(axis, crossing)
        if axis is None:
            out["axis_reasons"][name] = f"{name} not recorded in this run's curve (older file)"
    return out


def _ratio(pre: float | None, scr: float | None, why_pre: str | None, why_scr: str | None
           ) -> tuple[float | None, str | None]:
    if pre is None or scr is None:
        return None, "; ".join(f"{init}: {why}" for init, why in (("pretrained", why_pre), ("scratch", why_scr))
                               if why)
    if scr == 0:
        return None, "the scratch run's time is 0"
    return float(pre) / float(scr), None


def convergence_table(pretrained: RunCurve, scratch: RunCurve, fractions: Sequence[float] = (0.9, 0.95),
                      higher_is_better: bool = True, start: float | None = None
                      ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Time to each fraction of both runs from one common start, and their ratios (pretrained / scratch).

    Args:
        pretrained, scratch: the two runs (:class:`RunCurve`).
        fractions: progress fractions in (0, 1] (default 0.9, 0.95).
        higher_is_better: direction of the metric (default True).
        start: the common starting score (default None: the scratch run's step-0 value).

    Returns:
        ``(table, reasons)``: ``table[str(fraction)]`` holds ``start``, ``interpolated`` (True),
        ``started_above`` ``{"pretrained", "scratch": bool}`` and, for each axis a in :data:`AXES`,
        ``a_pretrained``, ``a_scratch``, ``a_ratio`` (float or None); ``reasons`` maps
        ``"<fraction>.<key>"`` to why each None is None (strict JSON: no NaN).
    """
    reasons: dict[str, str] = {}
    if start is None:
        v0 = np.asarray(scratch.values, dtype=np.float64).ravel()
        start = float(v0[0]) if v0.size and math.isfinite(v0[0]) else None
    table: dict[str, dict[str, Any]] = {}
    for frac in fractions:
        key = str(frac)
        if start is None:
            runs = {init: {"started_above": False, "reason": "the scratch run's step-0 value (the common start) is "
                           "missing or not finite", "axis_reasons": {}, **{a: None for a in AXES}}
                    for init in ("pretrained", "scratch")}
        else:
            runs = {"pretrained": time_to_fraction(pretrained, frac, higher_is_better, start),
                    "scratch": time_to_fraction(scratch, frac, higher_is_better, start)}
        row: dict[str, Any] = {"start": start, "interpolated": True,
                               "started_above": {init: bool(r["started_above"]) for init, r in runs.items()}}
        for axis in AXES:
            why = {init: r["axis_reasons"].get(axis) or r["reason"] for init, r in runs.items()}
            for init, r in runs.items():
                row[f"{axis}_{init}"] = r[axis]
                if r[axis] is None:
                    reasons[f"{key}.{axis}_{init}"] = why[init]
            row[f"{axis}_ratio"], why_ratio = _ratio(runs["pretrained"][axis], runs["scratch"][axis],
                                                     why["pretrained"] if runs["pretrained"][axis] is None else None,
                                                     why["scratch"] if runs["scratch"][axis] is None else None)
            if why_ratio is not None:
                reasons[f"{key}.{axis}_ratio"] = why_ratio
        if start is None:
            reasons[f"{key}.start"] = runs["scratch"]["reason"]
        table[key] = row
    return table, reasons


def curve_of(records: Sequence[Mapping[str, Any]]) -> RunCurve:
    """A :class:`RunCurve` from a metrics.json ``curve``.

    The values are ``val_metric_subset`` where every entry has one (a run whose intermediate evaluations scored
    a fixed validation subset: the one series complete over the run), else ``val_metric`` (null -> NaN). Axes:
    ``step`` (absent in older files: steps unrecorded), ``wall_s``, ``epoch``.

    Args:
        records: the curve's dicts, entry 0 evaluated before any update.
    """
    key = "val_metric_subset" if records and all("val_metric_subset" in r for r in records) else "val_metric"
    values = [float("nan") if r.get(key) is None else float(r[key]) for r in records]

    def axis(name: str) -> list[float] | None:
        return [float(r[name]) for r in records] if records and all(name in r for r in records) else None

    return RunCurve(values, axis("step"), axis("wall_s"), axis("epoch"))
