"""Facts about seed averaging, point-level correlation and model fixed effects (transferlimits.metrics.correlation)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from transferlimits.metrics.correlation import (
    average_seeds,
    correlate_points,
    standardise_by,
    within_group_correlation,
)
from transferlimits.metrics.mmd_paired import mmd2_paired
from transferlimits.metrics.stats import correlate


# ------------------------------------------------------------------------------------ standardise_by
def test_standardise_by_reference_statistics():
    rng = np.random.default_rng(0)
    ref = rng.normal(loc=3.0, scale=[1.0, 10.0, 0.1], size=(50, 3))
    other = ref + ref.std(0, ddof=1)  # a shift of one reference SD in every feature
    zr, zo = standardise_by(ref, other)
    assert np.allclose(zr.mean(0), 0.0) and np.allclose(zr.std(0, ddof=1), 1.0)
    assert np.allclose(zo - zr, 1.0)  # the same affine map: the shift stays visible, in SD units
    const = np.column_stack([ref[:, 0], np.full(50, 2.0)])
    assert np.allclose(standardise_by(const)[0][:, 1], 0.0)  # zero-SD feature is only centred


def test_standardised_paired_mmd_does_not_depend_on_feature_scale():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 4))
    y = 0.9 * x + 0.4 * rng.normal(size=(30, 4)) + 0.3
    scale = np.array([1.0, 100.0, 0.01, 5.0])
    a = mmd2_paired(*standardise_by(x, y))
    b = mmd2_paired(*standardise_by(x * scale + 7.0, y * scale + 7.0))
    assert a == pytest.approx(b, abs=1e-12)
    assert mmd2_paired(x, y) != pytest.approx(mmd2_paired(x * scale, y * scale), abs=1e-3)


def test_standardise_by_errors():
    with pytest.raises(ValueError, match="reference"):
        standardise_by(np.zeros(5))
    with pytest.raises(ValueError, match="array 0"):
        standardise_by(np.zeros((5, 3)), np.zeros((5, 2)))


# ------------------------------------------------------------------------------------ average_seeds
def test_average_seeds_one_row_per_point():
    rows = [
        {"task": "a", "model": "m1", "seed": 0, "rpg": 1.0, "mmd": 0.1},
        {"task": "a", "model": "m1", "seed": 1, "rpg": 3.0, "mmd": 0.3},
        {"task": "a", "model": "m1", "seed": 2, "rpg": float("nan"), "mmd": 0.2},
        {"task": "a", "model": "m2", "seed": 0, "rpg": 5.0, "mmd": 0.5},
        {"task": "b", "model": "m1", "seed": 0, "rpg": 2.0, "mmd": 0.4},
        {"task": "b", "model": "m1", "seed": 1, "rpg": 4.0, "mmd": 0.6},
    ]
    out = average_seeds(rows)
    assert len(out) == 3 and list(out["task"]) == ["a", "a", "b"] and list(out["model"]) == ["m1", "m2", "m1"]
    first = out.iloc[0]
    assert first["n_seeds"] == 3 and first["rpg_n"] == 2 and first["mmd_n"] == 3
    assert first["rpg"] == pytest.approx(2.0) and first["rpg_sd"] == pytest.approx(math.sqrt(2.0))
    assert first["mmd"] == pytest.approx(0.2) and first["mmd_sd"] == pytest.approx(0.1)
    assert math.isnan(out.iloc[1]["rpg_sd"])  # one seed: no spread
    same = average_seeds(pd.DataFrame(rows), value_cols=["rpg"])
    assert "mmd" not in same.columns and same["rpg"].tolist() == out["rpg"].tolist()
    with pytest.raises(ValueError, match="keys"):
        average_seeds(rows, keys=("task", "encoder"))


# ------------------------------------------------------------------------------------ correlate_points
def test_correlate_points_agrees_with_stats_correlate():
    rng = np.random.default_rng(2)
    x = rng.normal(size=12)
    y = 0.6 * x + rng.normal(size=12)
    a = correlate_points(x, y, labels=[f"p{i}" for i in range(12)], n_boot=1000, n_perm=1000)
    b = correlate(x, y, n_boot=1000, n_perm=1000)
    assert a["pearson_r"] == pytest.approx(b["pearson_r"]) and a["spearman_rho"] == pytest.approx(b["spearman_rho"])
    assert a["max_loo_change"] == pytest.approx(b["max_loo_change"])
    assert [r for _, r, _ in a["loo"]] == pytest.approx([r for _, r, _ in b["loo"]])
    assert a["pearson_p_perm"] == pytest.approx(b["pearson_p_perm"], abs=0.04)
    assert a["pearson_ci"] == pytest.approx(b["pearson_ci"], abs=0.1)
    assert a["loo"][0][0] == "p0" and a["max_loo_point"] in {f"p{i}" for i in range(12)}


def test_correlate_points_influential_point_and_small_n():
    x = [1.0, 2.0, 3.0, 4.0, 5.0, 20.0]
    y = [1.0, 1.5, 0.5, 1.2, 0.8, 20.0]
    out = correlate_points(x, y, labels=list("abcdef"), n_boot=200, n_perm=200)
    assert out["pearson_r"] > 0.9 and out["max_loo_point"] == "f" and out["max_loo_change"] > 0.5
    short = correlate_points([1.0, 2.0], [2.0, 1.0])
    assert short["n"] == 2 and math.isnan(short["pearson_r"]) and short["max_loo_point"] is None


# ------------------------------------------------------------------------------------ fixed effects
def simpson(slopes, offsets, n=15, noise=0.3, seed=3):
    rng = np.random.default_rng(seed)
    xs, ys, gs = [], [], []
    for g, (slope, off) in enumerate(zip(slopes, offsets)):
        x = rng.normal(size=n)
        xs.append(x + off)
        ys.append(slope * x + noise * rng.normal(size=n) + off)
        gs += [f"model{g}"] * n
    return np.concatenate(xs), np.concatenate(ys), np.array(gs)


def test_fixed_effect_removes_between_group_correlation():
    x, y, g = simpson(slopes=(-1.0, -1.0), offsets=(0.0, 6.0))  # negative within, positive between
    out = within_group_correlation(x, y, g, n_boot=500, n_perm=500)
    assert out["naive_r"] > 0.5
    assert out["fe_r"] < -0.8 and out["partial_r"] < -0.8 and out["fe_ci"][1] < 0
    assert all(v["pearson_r"] < -0.8 for v in out["per_group"].values())
    assert out["n"] == 30 and out["n_groups"] == 2 and set(out["per_group"]) == {"model0", "model1"}


def test_opposite_within_slopes_pool_to_about_zero():
    x, y, g = simpson(slopes=(1.0, -1.0), offsets=(0.0, 6.0), n=40)
    out = within_group_correlation(x, y, g, n_boot=300, n_perm=500)
    assert out["naive_r"] > 0.5
    assert abs(out["fe_r"]) < 0.2 and out["fe_p_perm"] > 0.05
    r = {k: v["pearson_r"] for k, v in out["per_group"].items()}
    assert r["model0"] > 0.8 and r["model1"] < -0.8


def test_partial_r_equals_regression_on_group_dummies():
    x, y, g = simpson(slopes=(0.5, -0.2, 1.0), offsets=(0.0, 3.0, -2.0), n=10, noise=1.0)
    dummies = (g[:, None] == np.unique(g)[None, :]).astype(float)
    resid = lambda v: v - dummies @ np.linalg.lstsq(dummies, v, rcond=None)[0]  # noqa: E731
    want = np.corrcoef(resid(x), resid(y))[0, 1]
    assert within_group_correlation(x, y, g, n_boot=0, n_perm=0)["partial_r"] == pytest.approx(want, abs=1e-12)


def test_pooling_seeds_inflates_false_positives_while_averaging_keeps_size():
    """10 points × 3 seeds, x and y independent across points but each stable across seeds (ICC ≈ 0.9)."""
    sims, alpha = 300, 0.05
    rng = np.random.default_rng(4)
    px, py = np.repeat(rng.normal(size=(sims, 10)), 3, axis=1), np.repeat(rng.normal(size=(sims, 10)), 3, axis=1)
    rows = pd.DataFrame({"sim": np.repeat(np.arange(sims), 30), "task": np.tile(np.repeat(np.arange(10), 3), sims),
                         "model": "m", "seed": np.tile(np.arange(3), 10 * sims),
                         "x": (px + 0.3 * rng.normal(size=px.shape)).ravel(),
                         "y": (py + 0.3 * rng.normal(size=py.shape)).ravel()})
    points = average_seeds(rows, keys=("sim", "task", "model"), value_cols=["x", "y"])
    assert len(points) == 10 * sims and (points["n_seeds"] == 3).all()
    pooled, averaged = [], []
    for s, (run, pts) in zip(range(sims), zip(rows.groupby("sim"), points.groupby("sim"))):
        pooled.append(correlate_points(run[1]["x"], run[1]["y"], n_boot=0, n_perm=199, seed=s)["pearson_p_perm"] <= alpha)
        averaged.append(correlate_points(pts[1]["x"], pts[1]["y"], n_boot=0, n_perm=199, seed=s)["pearson_p_perm"] <= alpha)
    half = 3.5 * math.sqrt(alpha * (1 - alpha) / sims)
    assert abs(np.mean(averaged) - alpha) <= half
    assert np.mean(pooled) > 0.15


def test_within_group_errors_and_dropped_groups():
    with pytest.raises(ValueError, match="one length"):
        within_group_correlation([1.0, 2.0], [1.0, 2.0], ["a"])
    x, y, g = simpson(slopes=(1.0, 1.0), offsets=(0.0, 1.0), n=6)
    out = within_group_correlation(np.append(x, 9.0), np.append(y, 9.0), np.append(g, "lonely"), n_boot=0, n_perm=0)
    assert out["n_groups"] == 2 and out["n"] == 12  # a group with one point carries no within-group information
