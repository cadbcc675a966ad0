"""Facts about RPG and convergence speed (transferlimits.metrics.transfer)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from transferlimits.metrics.transfer import (
    RPGStatus,
    convergence_summary,
    epochs_to_fraction,
    normalised_gain,
    rpg,
    rpg_status,
    seconds_to_fraction,
)


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


# ------------------------------------------------------------------------------------ RPG validity rule
@pytest.mark.parametrize(
    "pre,scr,base,hib,margin,defined,value",
    [
        (0.8, 0.6, 0.5, True, 0.0, True, 100 * 0.2 / 0.6),
        (0.8, 0.5, 0.5, True, 0.0, False, None),  # a tie with the baseline is not "learned"
        (0.8, 0.55, 0.5, True, 0.1, False, None),  # within the margin
        (0.8, 0.45, 0.5, True, 0.0, False, None),  # worse than the baseline (restoration below identity)
        (5.0, 10.0, 20.0, False, 0.0, True, 50.0),  # lower is better (HD95): scratch 10 < baseline 20
        (5.0, 25.0, 20.0, False, 0.0, False, None),
        (0.01, 1e-6, 0.0, True, 0.0, True, rpg(0.01, 1e-6)),  # defined but huge: why NG exists
    ],
)
def test_rpg_status(pre, scr, base, hib, margin, defined, value):
    st = rpg_status(pre, scr, base, higher_is_better=hib, margin=margin)
    assert isinstance(st, RPGStatus) and st.defined is defined
    if defined:
        assert st.value == pytest.approx(value) and st.reason is None
    else:
        assert st.value is None and "baseline" in st.reason


def test_rpg_status_non_finite_and_zero_scratch():
    st = rpg_status(float("nan"), 0.6, 0.5)
    assert not st.defined and st.value is None and "non-finite" in st.reason
    v, defined, reason = rpg_status(-0.5, 0.0, -1.0)  # beats the baseline, but the relative gain divides by 0
    assert v is None and not defined and "0" in reason
    with pytest.raises(ValueError, match="margin"):
        rpg_status(0.8, 0.6, 0.5, margin=-0.1)


@pytest.mark.parametrize(
    "pre,scr,base,hib,want",
    [
        (0.8, 0.6, 0.5, True, 0.2 / 0.4),
        (0.8, 0.5, 0.5, True, 1.0),  # only pretraining beats the baseline
        (0.5, 0.8, 0.5, True, -1.0),
        (0.5, 0.5, 0.5, True, 0.0),  # all equal: finite, 0
        (0.01, 1e-6, 0.0, True, (0.01 - 1e-6) / (0.01 + 1e-6)),  # RPG +999 900 %, NG just below 1
        (5.0, 10.0, 20.0, False, 5.0 / 25.0),  # lower is better
        (-0.13, 0.0, 0.0, True, -1.0),  # QWK −0.13 vs 0: bounded
    ],
)
def test_normalised_gain_values(pre, scr, base, hib, want):
    assert normalised_gain(pre, scr, base, higher_is_better=hib) == pytest.approx(want, abs=1e-9)


def test_normalised_gain_bounded_antisymmetric_and_undefined():
    rng = np.random.default_rng(0)
    for pre, scr, base in rng.normal(size=(500, 3)) * rng.choice([1e-6, 1.0, 1e6], size=(500, 1)):
        g = normalised_gain(pre, scr, base)
        assert -1.0 <= g <= 1.0
        assert normalised_gain(scr, pre, base) == pytest.approx(-g, abs=1e-12)
        assert normalised_gain(pre, scr, base, higher_is_better=False) == pytest.approx(-g, abs=1e-12)
    assert normalised_gain(float("inf"), 0.5, 0.5) is None
    with pytest.raises(ValueError, match="eps"):
        normalised_gain(0.8, 0.6, 0.5, eps=0.0)


# ------------------------------------------------------------------------------------ convergence from epoch 0
def test_epoch0_counts_from_the_evaluation_before_training():
    pre = [0.70, 0.88, 0.89, 0.90]  # epoch 0 already above the common start 0.5 (head start)
    scr = [0.50, 0.60, 0.80, 0.90]
    assert epochs_to_fraction(pre, 0.9, start=0.5, epoch0=True) == 1  # needs 0.5 + 0.9 · 0.4 = 0.86
    assert epochs_to_fraction(scr, 0.9, start=0.5, epoch0=True) == 3
    assert epochs_to_fraction(pre, 0.5, epoch0=True) == 1  # from its own start (0.70) the head start is erased
    assert epochs_to_fraction(pre, 0.5, start=0.5, epoch0=True) == 0  # head start: 0.70 ≥ 0.70 before any update
    assert epochs_to_fraction(scr, 0.9, epoch0=True) == epochs_to_fraction(scr, 0.9) - 1  # only the numbering moves


def test_epoch0_lower_is_better_and_seconds():
    loss_pre, loss_scr = [4.0, 2.0, 1.2, 1.0], [10.0, 6.0, 3.0, 1.0]  # common start 10 (scratch at init)
    secs = [0.0, 5.0, 10.0, 15.0]
    assert epochs_to_fraction(loss_pre, 0.9, higher_is_better=False, start=10.0, epoch0=True) == 2  # ≤ 1.9
    assert seconds_to_fraction(loss_pre, secs, 0.9, higher_is_better=False, start=10.0, epoch0=True) == 10.0
    out = convergence_summary(loss_pre, loss_scr, secs, secs, fractions=(0.5, 0.9), higher_is_better=False, epoch0=True)
    assert out["0.9"]["start"] == 10.0
    assert out["0.5"]["epochs_pretrained"] == 0 and out["0.5"]["seconds_pretrained"] == 0.0  # 4 ≤ 5.5 at init
    assert out["0.9"]["epochs_pretrained"] == 2 and out["0.9"]["epochs_scratch"] == 3
    assert out["0.9"]["seconds_ratio"] == pytest.approx(10.0 / 15.0)


def test_start_is_the_old_baseline_keyword():
    curve = [0.6, 0.7, 0.8, 0.9]
    assert epochs_to_fraction(curve, 0.5, start=0.5) == epochs_to_fraction(curve, 0.5, baseline=0.5) == 2
    with pytest.raises(ValueError, match="either start"):
        epochs_to_fraction(curve, 0.5, baseline=0.5, start=0.6)
    with pytest.raises(ValueError, match="start must be finite"):
        epochs_to_fraction(curve, 0.5, start=float("nan"))
