"""Time to 90 / 95 % interpolated between evaluations (metrics.convergence; STUDY §5.2 "Convergence")."""

from __future__ import annotations

import math

import numpy as np
import pytest

from transferlimits.jsonsafe import dumps_strict
from transferlimits.metrics.convergence import RunCurve, convergence_table, curve_of, find_crossing, time_to_fraction

NAN = float("nan")


@pytest.mark.parametrize("values, steps, start, hib, fraction, want", [
    # T = 0.2 + 0.9 * 0.8 = 0.92 between 0.8 (step 20) and 1.0 (step 30): w = 0.6
    ([0.2, 0.5, 0.8, 1.0], [0, 10, 20, 30], None, True, 0.9, 26.0),
    ([0.2, 0.5, 0.8, 1.0], [0, 10, 20, 30], None, True, 0.95, 28.0),  # T = 0.96: w = 0.8
    # a loss: T = 10 + 0.9 * (2 - 10) = 2.8 between 4 (step 10) and 2 (step 15): w = 0.6
    ([10.0, 6.0, 4.0, 2.0], [0, 5, 10, 15], None, False, 0.9, 13.0),
    # common start 0.1 below the run's own step 0: T = 0.1 + 0.9 * 0.8 = 0.82 between 0.6 (4) and 0.9 (8)
    ([0.5, 0.6, 0.9], [0, 4, 8], 0.1, True, 0.9, 4 + 4 * 0.22 / 0.3),
    # a NaN evaluation is skipped: T = 0.9 between 0.5 (step 1) and 1.0 (step 3)
    ([0.0, 0.5, NAN, 1.0], [0, 1, 2, 3], None, True, 0.9, 1 + 2 * 0.8),
    # the first crossing counts, not the best: T = 0.9 between 0 (0) and 0.95 (10)
    ([0.0, 0.95, 0.5, 1.0], [0, 10, 20, 30], None, True, 0.9, 10 * 0.9 / 0.95),
    # negative values, lower is better: T = -3 + 0.9 * (-5 + 3) = -4.8 between -4 (2) and -5 (3): w = 0.8
    ([-3.0, -3.5, -4.0, -5.0], [0, 1, 2, 3], None, False, 0.9, 2.8),
])
def test_interpolated_crossing_matches_hand_computation(values, steps, start, hib, fraction, want):
    run = RunCurve(values, steps=steps)
    got = time_to_fraction(run, fraction, hib, start)
    assert got["steps"] == pytest.approx(want) and not got["started_above"] and got["reason"] is None


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.95])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_linear_curve_is_crossed_exactly_at_the_fraction(fraction, seed):
    """Linear interpolation of a linear rise is exact: with v = step / 100 sampled at uneven steps, the time to f
    is f · 100 steps, whatever the sampling."""
    rng = np.random.default_rng(seed)
    steps = np.concatenate([[0], np.sort(rng.choice(np.arange(1, 100), 10, replace=False)), [100]])
    run = RunCurve(steps / 100.0, steps=steps, seconds=steps * 0.5, epochs=steps / 25.0)
    got = time_to_fraction(run, fraction)
    assert got["steps"] == pytest.approx(100 * fraction)
    assert got["seconds"] == pytest.approx(50 * fraction) and got["epochs"] == pytest.approx(4 * fraction)


@pytest.mark.parametrize("hib", [True, False])
@pytest.mark.parametrize("seed", range(5))
def test_a_monotone_curve_reaches_95_no_earlier_than_90(hib, seed):
    rng = np.random.default_rng(seed)
    rise = np.cumsum(rng.exponential(size=12))
    values = np.concatenate([[0.0], rise]) * (1 if hib else -1)
    steps = np.cumsum(np.concatenate([[0], rng.integers(1, 9, size=12)]))
    run = RunCurve(values, steps=steps, seconds=np.cumsum(rng.uniform(0, 2, size=13)))
    t90, t95 = (time_to_fraction(run, f, hib) for f in (0.9, 0.95))
    assert 0 < t90["steps"] <= t95["steps"] <= steps[-1]
    assert t90["seconds"] <= t95["seconds"]


@pytest.mark.parametrize("values, start, hib", [
    ([0.9, 0.85, 0.95], 0.1, True),  # T = 0.1 + 0.9 * 0.85 = 0.865 <= 0.9 at step 0
    ([0.95, 0.9, 0.92], 0.1, True),  # the step-0 value is the run's best
    ([1.0, 1.5, 0.95], 3.0, False),  # a loss already near its best before any update
])
def test_a_run_starting_above_its_threshold_is_flagged_not_scored_zero(values, start, hib):
    got = time_to_fraction(RunCurve(values, steps=list(range(len(values)))), 0.9, hib, start)
    assert got["started_above"] and got["steps"] is None and "started above" in got["reason"]


@pytest.mark.parametrize("values, start", [([0.5, 0.4, 0.3], None), ([0.5, 0.55], 0.6), ([0.5, 0.5], None)])
def test_a_run_that_never_improves_on_the_start_is_undefined(values, start):
    got = time_to_fraction(RunCurve(values, steps=list(range(len(values)))), 0.9, True, start)
    assert got["steps"] is None and not got["started_above"] and "never improves" in got["reason"]


def test_crossing_weights_and_arguments():
    c = find_crossing([0.0, 0.5, 1.0], 0.75)
    assert (c.lower, c.upper, c.weight, c.threshold) == (1, 2, pytest.approx(0.5), pytest.approx(0.75))
    assert find_crossing([NAN, 1.0], 0.9).reason.startswith("the step-0 evaluation")
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            find_crossing([0.0, 1.0], bad)
    with pytest.raises(ValueError, match="steps"):
        RunCurve([0.0, 1.0], steps=[0])
    with pytest.raises(ValueError, match="non-decreasing"):
        RunCurve([0.0, 1.0], seconds=[2.0, 1.0])


def test_table_ratios_reasons_and_strict_json():
    """Pretrained reaches 90 % in 4 steps, scratch in 8 (both from the scratch run's step-0 value 0): ratio 0.5
    on every axis. A pretrained run whose step-0 value 0.95 is already at both thresholds is flagged, never 0,
    and its times and ratios are null with a reason."""
    scratch = RunCurve([0.0, 0.45, 0.9, 1.0], steps=[0, 4, 8, 12], seconds=[0, 2, 4, 6], epochs=[0, 1, 2, 3])
    pretrained = RunCurve([0.5, 0.9, 1.0, 1.0], steps=[0, 4, 8, 12], seconds=[0, 2, 4, 6], epochs=[0, 1, 2, 3])
    table, reasons = convergence_table(pretrained, scratch, (0.9,))
    row = table["0.9"]
    # scratch: T = 0.9 at step 8; pretrained: T = 0.9 at step 4
    assert row["start"] == 0.0 and row["interpolated"] is True
    assert (row["steps_pretrained"], row["steps_scratch"], row["steps_ratio"]) == (4.0, 8.0, 0.5)
    assert row["seconds_ratio"] == 0.5 and row["epochs_ratio"] == 0.5 and not reasons
    flagged = RunCurve([0.95, 0.97, 1.0, 1.0], steps=[0, 4, 8, 12], seconds=[0, 2, 4, 6], epochs=[0, 1, 2, 3])
    table, reasons = convergence_table(flagged, scratch, (0.9, 0.95))
    for key in ("0.9", "0.95"):
        assert table[key]["started_above"] == {"pretrained": True, "scratch": False}
        assert table[key]["steps_pretrained"] is None and table[key]["steps_ratio"] is None
        assert "started above" in reasons[f"{key}.steps_ratio"]
        assert "started above" in reasons[f"{key}.steps_pretrained"]
    dumps_strict(table)  # no NaN anywhere


def test_old_curves_without_steps_and_subset_curves():
    """An older file's curve (no ``step``): steps null with a reason, epochs and seconds still interpolated; a
    curve with a validation subset is read from ``val_metric_subset``."""
    old = [{"epoch": e, "val_metric": v, "wall_s": 2.0 * e} for e, v in enumerate([0.0, 0.5, 1.0])]
    run = curve_of(old)
    assert run.steps is None and list(run.epochs) == [0, 1, 2]
    got = time_to_fraction(run, 0.9)
    assert got["steps"] is None and "not recorded" in got["axis_reasons"]["steps"]
    assert got["epochs"] == pytest.approx(1.8) and got["seconds"] == pytest.approx(3.6)
    table, reasons = convergence_table(run, run, (0.9,))
    assert table["0.9"]["epochs_ratio"] == pytest.approx(1.0) and "not recorded" in reasons["0.9.steps_ratio"]
    sub = [{"epoch": 0, "step": 0, "val_metric": 0.0, "val_metric_subset": 0.1, "wall_s": 0.0},
           {"epoch": 0.5, "step": 1, "val_metric": None, "val_metric_subset": 0.6, "wall_s": 1.0},
           {"epoch": 1.0, "step": 2, "val_metric": 0.9, "val_metric_subset": 1.1, "wall_s": 2.0}]
    assert list(curve_of(sub).values) == [0.1, 0.6, 1.1] and list(curve_of(sub).steps) == [0, 1, 2]
    sub[0]["val_metric_subset"] = None  # a null value: NaN, so the crossing is undefined
    assert math.isnan(curve_of(sub).values[0]) and time_to_fraction(curve_of(sub), 0.9)["steps"] is None
