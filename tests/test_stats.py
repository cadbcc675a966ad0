"""Facts about correlate and bootstrap_ci (transferlimits.metrics.stats)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from transferlimits.metrics.stats import bootstrap_ci, correlate


def test_perfectly_monotone():
    x = np.arange(10.0)
    out = correlate(x, np.exp(x), n_boot=300, n_perm=500)
    assert out["n"] == 10
    assert out["spearman_rho"] == pytest.approx(1.0)
    assert out["spearman_p_perm"] < 0.01 and out["pearson_p_perm"] < 0.01
    assert 0.6 < out["pearson_r"] < 1.0  # monotone but not linear
    assert out["spearman_ci"][0] == pytest.approx(1.0)
    assert len(out["loo"]) == 10 and out["loo"][0][0] == 0
    assert all(rho == pytest.approx(1.0) for _, _, rho in out["loo"])


def test_independent_data():
    rng = np.random.default_rng(0)
    out = correlate(rng.normal(size=40), rng.normal(size=40), n_boot=300, n_perm=500)
    assert abs(out["pearson_r"]) < 0.4
    assert out["pearson_p_perm"] > 0.05 and out["spearman_p_perm"] > 0.05
    assert out["pearson_ci"][0] < 0 < out["pearson_ci"][1]


def test_nan_pairs_dropped_and_loo_influence():
    x = [1.0, 2.0, 3.0, np.nan, 4.0, 5.0, 20.0]
    y = [1.0, 1.5, 0.5, 7.0, 1.2, 0.8, 20.0]  # one influential point drives r
    out = correlate(x, y, n_boot=200, n_perm=200)
    assert out["n"] == 6
    assert [i for i, _, _ in out["loo"]] == [0, 1, 2, 4, 5, 6]  # original indices
    r_without_outlier = dict((i, r) for i, r, _ in out["loo"])[6]
    assert out["pearson_r"] > 0.9 and r_without_outlier < 0.5
    assert out["max_loo_change"] > 0.5


@pytest.mark.parametrize("n", [0, 1, 2])
def test_too_few_points_gives_nan(n):
    out = correlate(np.arange(n, dtype=float), np.arange(n, dtype=float))
    assert out["n"] == n and math.isnan(out["pearson_r"]) and math.isnan(out["spearman_p_perm"])


def test_bootstrap_ci():
    rng = np.random.default_rng(1)
    v = rng.normal(loc=3.0, size=200)
    lo, hi = bootstrap_ci(v, n_boot=500)
    assert lo < 3.0 < hi and hi - lo < 0.5
    assert bootstrap_ci(v, n_boot=500, seed=2) == bootstrap_ci(v, n_boot=500, seed=2)
    assert all(math.isnan(b) for b in bootstrap_ci([1.0]))


def test_ill_arguments():
    with pytest.raises(ValueError, match="same length"):
        correlate([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([1.0, 2.0], level=1.5)
