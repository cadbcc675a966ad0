"""Facts about RPG and convergence speed (transferlimits.metrics.transfer)."""

from __future__ import annotations

import math

import pytest

from transferlimits.metrics.transfer import convergence_summary, epochs_to_fraction, rpg, seconds_to_fraction


def test_rpg_sign_conventions():
    assert rpg(0.8, 0.5) == pytest.approx(60.0)
    assert rpg(0.4, 0.5) == pytest.approx(-20.0)
    assert rpg(5.0, 10.0, higher_is_better=False) == pytest.approx(50.0)  # lower HD95 with pretraining: a gain
    assert rpg(15.0, 10.0, higher_is_better=False) == pytest.approx(-50.0)
    assert rpg(-0.5, -1.0) == pytest.approx(50.0)  # |scratch| in the denominator keeps the sign meaningful
    assert rpg(0.5, 0.5) == 0.0


@pytest.mark.parametrize("pre,scr", [(0.5, 0.0), (float("nan"), 0.5), (0.5, float("nan")), (float("inf"), 1.0)])
def test_rpg_nan_cases(pre, scr):
    assert math.isnan(rpg(pre, scr))


def test_epochs_higher_is_better():
    curve = [0.5, 0.6, 0.7, 0.86, 0.9, 0.95, 1.0]  # progress from 0.5 to 1.0
    assert epochs_to_fraction(curve, 0.9) == 6  # needs 0.95
    assert epochs_to_fraction(curve, 0.7) == 4  # needs 0.85
    assert epochs_to_fraction(curve, 1.0) == 7
    assert epochs_to_fraction([0.2, 0.9, 0.5], 0.9) == 2  # best reached early, later drop irrelevant


def test_epochs_lower_is_better_and_negative_values():
    loss = [10.0, 6.0, 3.0, 2.0, 2.0, 1.0]  # progress from 10 to 1
    assert epochs_to_fraction(loss, 0.9, higher_is_better=False) == 6  # needs <= 1.9
    assert epochs_to_fraction(loss, 0.8, higher_is_better=False) == 4  # needs <= 2.8
    neg = [-3.0, -4.0, -4.9, -5.0]  # lower is better, all negative
    assert epochs_to_fraction(neg, 0.9, higher_is_better=False) == 3
    shifted = [v + 100.0 for v in neg]  # offset-invariant
    assert epochs_to_fraction(shifted, 0.9, higher_is_better=False) == 3


def test_epochs_edge_cases():
    assert epochs_to_fraction([0.9, 0.8, 0.7]) == 1  # never improves on the first epoch
    assert epochs_to_fraction([float("nan"), 0.5, 1.0]) == 3  # first finite value is the reference
    assert epochs_to_fraction([]) is None
    assert epochs_to_fraction([float("nan")]) is None
    assert epochs_to_fraction([0.6, 0.7, 0.8, 0.9], 0.5, baseline=0.5) == 2  # progress from chance level


def test_seconds_and_summary():
    curve, secs = [0.5, 0.8, 0.95, 1.0], [10.0, 20.0, 30.0, 40.0]
    assert seconds_to_fraction(curve, secs, 0.9) == 30.0
    out = convergence_summary(
        [0.5, 0.95, 1.0], curve, seconds_pre=[5.0, 10.0, 15.0], seconds_scr=secs, fractions=(0.9, 0.95)
    )
    assert out["0.9"]["epochs_pretrained"] == 2 and out["0.9"]["epochs_scratch"] == 3
    assert out["0.9"]["epochs_ratio"] == pytest.approx(2 / 3)
    assert out["0.9"]["seconds_ratio"] == pytest.approx(10 / 30)
    assert out["0.95"]["epochs_scratch"] == 4
    no_secs = convergence_summary(curve, curve)
    assert no_secs["0.9"]["seconds_pretrained"] is None and math.isnan(no_secs["0.9"]["seconds_ratio"])


def test_ill_arguments():
    with pytest.raises(ValueError, match="fraction"):
        epochs_to_fraction([1.0, 2.0], fraction=0.0)
    with pytest.raises(ValueError, match="fraction"):
        epochs_to_fraction([1.0, 2.0], fraction=1.5)
    with pytest.raises(ValueError, match="one entry per epoch"):
        seconds_to_fraction([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="cumulative"):
        seconds_to_fraction([1.0, 2.0], [2.0, 1.0])
