"""The alignment entry of a study point (``study.measure.compare_features``): the paired MMD² standardised by the
starting encoder's statistics, with one σ from the starting features, against an independent O(n²) formula."""

from __future__ import annotations

import numpy as np
import pytest

from transferlimits.config import get_profile
from transferlimits.study.measure import compare_features, standardise_pair

PROFILE = get_profile("smoke", measure={"n_permutations": 99, "n_bootstrap": 50})


def _paired(n=24, d=6, rho=0.8, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=(n, d)) + shift
    return x, y


def _direct_paired_mmd2(x, y):
    """Σ_{i≠j} k(xi,xj) + k(yi,yj) − k(xi,yj) − k(xj,yi) / (n(n−1)), σ = median pairwise distance of x (loops)."""
    n = len(x)
    dist = [np.linalg.norm(x[i] - x[j]) for i in range(n) for j in range(i + 1, n)]
    s2 = 2 * np.median(dist) ** 2
    k = lambda a, b: np.exp(-np.sum((a - b) ** 2) / s2)  # noqa: E731
    total = sum(k(x[i], x[j]) + k(y[i], y[j]) - k(x[i], y[j]) - k(x[j], y[i])
                for i in range(n) for j in range(n) if i != j)
    return total / (n * (n - 1)), np.median(dist)


@pytest.mark.parametrize("shift", [0.0, 0.7])
def test_primary_statistic_is_the_paired_u_statistic_on_standardised_features(shift):
    x, y = _paired(shift=shift)
    x, y = 3.0 * x + 5.0, 3.0 * y + 5.0  # units: removed by the standardisation
    entry = compare_features(x, y, PROFILE, seed=0)
    xs, ys = (x - x.mean(0)) / x.std(0), (y - x.mean(0)) / x.std(0)
    want, sigma = _direct_paired_mmd2(xs, ys)
    assert entry["mmd2"] == pytest.approx(want, rel=1e-9) and entry["bandwidth"] == pytest.approx(sigma)
    assert entry["mmd2_multi"]["1.0"] == pytest.approx(want, rel=1e-9)
    assert entry["ci"][0] <= entry["ci"][1] and entry["n_groups"] == entry["n"] == 24
    assert entry["mmd2_two_sample"] is not None and -1 <= entry["cka"] <= 1


def test_values_do_not_depend_on_feature_units():
    x, y = _paired(shift=0.5)
    scale = np.arange(1, 7) ** 2.0
    a, b = compare_features(x, y, PROFILE, 0), compare_features(x * scale - 2, y * scale - 2, PROFILE, 0)
    for key in ("mmd2", "p_value", "bandwidth", "ci"):
        assert a[key] == pytest.approx(b[key], rel=1e-9)


def test_shift_is_detected_and_identical_features_are_not():
    x, y = _paired(n=40, shift=1.0)
    assert compare_features(x, y, PROFILE, 0)["p_value"] <= 0.02
    same = compare_features(x, x.copy(), PROFILE, 0)
    assert same["mmd2"] == pytest.approx(0.0, abs=1e-12) and same["p_value"] == 1.0


def test_token_rows_are_clustered_by_image():
    x, y = _paired(n=60, shift=0.3)
    groups = np.repeat(np.arange(12), 5)
    entry = compare_features(x, y, PROFILE, 0, groups=groups)
    assert entry["n"] == 60 and entry["n_groups"] == 12 and "cka" not in entry
    assert 0 < entry["p_value"] <= 1 and entry["ci"][0] <= entry["ci"][1]


@pytest.mark.parametrize("case,note", [("constant", "constant features"), ("one_image", "fewer than 2")])
def test_undefined_entries_are_null_with_a_reason(case, note):
    x = np.ones((8, 3)) if case == "constant" else np.random.default_rng(0).normal(size=(8, 3))
    groups = None if case == "constant" else np.zeros(8, int)
    entry = compare_features(x, x + 1, PROFILE, 0, groups=groups)
    assert entry["mmd2"] is None and entry["p_value"] is None and note in entry["note"]


def test_standardise_pair_uses_the_starting_side_only():
    x, y = _paired(shift=2.0)
    xs, ys = standardise_pair(x, y)
    assert np.allclose(xs.mean(0), 0) and np.allclose(xs.std(0), 1)
    assert np.allclose(ys.mean(0), (y.mean(0) - x.mean(0)) / x.std(0))
