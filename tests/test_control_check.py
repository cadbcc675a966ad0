"""The design check (STUDY §5.1): Holm against hand values; a planted positive-control gain is detected, a
negative control's noise is not; the check's text says which."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from transferlimits.study.control_check import control_table, design_check, holm


def test_holm_against_a_hand_computation():
    # p sorted 0.01, 0.02, 0.04 (+ NaN ignored): 3 * 0.01, max(0.03, 2 * 0.02), max(0.04, 1 * 0.04)
    assert holm([0.04, 0.01, float("nan"), 0.02]) == pytest.approx([0.04, 0.03, float("nan"), 0.04], nan_ok=True)
    assert holm([0.5, 0.9]) == [1.0, 1.0]


def _point(task, kind, seed, pre, scr, share=0.8):
    return {"task": task, "model": "m", "seed": seed, "objective": kind, "objective_name": kind,
            "task_spec": {"primary_metric": "auc", "higher_is_better": True},
            "runs": {"pretrained": {"test": {"auc": pre}}, "scratch": {"test": {"auc": scr}}},
            "baseline_primary": {"value": 0.5}, "rpg_primary": None, "encoder_share": {"pretrained": share}}


def _points(rng):
    pts = []
    for t in range(5):
        for s in range(3):
            scr = 0.6 + 0.01 * rng.standard_normal()
            pts.append(_point(f"t{t}", "native", s, scr + 0.01 * rng.standard_normal(), scr))
            pts.append(_point(f"t{t}", "positive", s, scr + 0.2 + 0.005 * rng.standard_normal(), scr))
            pts.append(_point(f"t{t}", "random", s, scr + 0.02 * rng.standard_normal(), scr, share=0.1))
    return pts


def test_a_planted_positive_gain_is_detected_and_noise_is_not():
    table = control_table(_points(np.random.default_rng(0)))
    assert set(table["kind"]) == {"native", "positive", "random"} and (table["n"] == 3).all()
    pos, neg = table[table["kind"] == "positive"], table[table["kind"] == "random"]
    assert pos["detected"].all() and not neg["detected"].any()
    assert (pos["mean"] > 0.19).all() and (pos["p_holm"] >= pos["p"]).all()
    assert neg["encoder_share"].tolist() == [0.1] * 5
    check = design_check(table)
    assert check["positive"] == {"m": (5, 5)} and check["negative"] == (0, 5) and check["passes"] is True
    assert "passes" in check["text"]


def test_without_controls_the_check_says_so():
    pts = [p for p in _points(np.random.default_rng(1)) if p["objective"] == "native"]
    check = design_check(control_table(pts))
    assert check["passes"] is None and "no encoder controls" in check["text"]


def test_a_design_that_misses_its_positive_control_fails():
    pts = [p for p in _points(np.random.default_rng(2)) if p["objective"] != "positive"]
    pts += [_point(f"t{t}", "positive", s, 0.6 + 0.02 * np.sin(7 * t + s), 0.6) for t in range(5) for s in range(3)]
    check = design_check(control_table(pts))
    assert check["passes"] is False and "fails" in check["text"]


def test_the_control_test_is_one_sided_for_a_gain():
    # seed differences (0.02, 0.03, 0.04): t = 0.03 / (0.01 / sqrt 3); one-sided p = t.sf(t, 2), half the two-sided
    pts = [_point("t0", "positive", s, 0.6 + d, 0.6) for s, d in enumerate((0.02, 0.03, 0.04))]
    pts += [_point("t0", "random", s, 0.6 - d, 0.6) for s, d in enumerate((0.02, 0.03, 0.04))]
    table = control_table(pts).set_index("kind")
    t = 0.03 / (0.01 / np.sqrt(3))
    assert table.loc["positive", "p"] == pytest.approx(stats.t.sf(t, 2), rel=1e-9)
    assert table.loc["positive", "p"] == pytest.approx(stats.ttest_1samp([0.02, 0.03, 0.04], 0).pvalue / 2, rel=1e-9)
    # the same differences as a loss: p = 1 - that, never detected
    assert table.loc["random", "p"] == pytest.approx(1 - stats.t.sf(t, 2), rel=1e-9)
    assert bool(table.loc["positive", "detected"]) and not bool(table.loc["random", "detected"])
