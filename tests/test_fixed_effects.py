"""The fixed-effect correlation, its within-group permutation test and the small-sample intervals / Holm
(transferlimits.metrics.fixed_effects, transferlimits.metrics.intervals, transferlimits.metrics.mde)."""

from __future__ import annotations

import math
from itertools import permutations, product

import numpy as np
import pytest
from scipy import stats as sps

from transferlimits.metrics.correlation import within_group_correlation
from transferlimits.metrics.fixed_effects import (entering_units, fisher_ci, fixed_effect_test, partial_r,
                                                  within_permutation_p)
from transferlimits.metrics.intervals import (
    contrast_interval, dependent_r_difference, holm, signflip_exact, t_interval)
from transferlimits.metrics.mde import fisher_mde, reliability, seed_reliability


def _grouped(n_groups: int, k: int, rho: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, y with within-group correlation ``rho`` and large group offsets of the opposite sign."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), k)
    offset = 5.0 * rng.standard_normal(n_groups)[groups]
    a, b = rng.standard_normal((2, groups.size))
    return a + offset, rho * a + math.sqrt(1 - rho * rho) * b - offset, groups


def test_partial_r_is_the_correlation_of_residuals_on_group_dummies():
    """Independent implementation: least-squares residuals of x and y on the group indicator matrix."""
    x, y, groups = _grouped(4, 5, 0.6, seed=0)
    dummies = (groups[:, None] == np.unique(groups)[None, :]).astype(float)
    rx = x - dummies @ np.linalg.lstsq(dummies, x, rcond=None)[0]
    ry = y - dummies @ np.linalg.lstsq(dummies, y, rcond=None)[0]
    assert partial_r(x, y, groups) == pytest.approx(np.corrcoef(rx, ry)[0, 1], abs=1e-12)
    ref = within_group_correlation(x, y, groups, n_boot=0, n_perm=0, per_group=False)["partial_r"]
    assert partial_r(x, y, groups) == pytest.approx(ref, abs=1e-12)
    assert np.corrcoef(x, y)[0, 1] < 0 < partial_r(x, y, groups)  # the offsets reverse the naive correlation


def test_partial_r_drops_singletons_and_non_finite():
    x, y, groups = _grouped(3, 4, 0.5, seed=1)
    full = partial_r(x, y, groups)
    x2, y2 = np.append(x, [7.0, np.nan]), np.append(y, [1.0, 2.0])
    assert partial_r(x2, y2, np.append(groups, [9, 3])) == pytest.approx(full)  # group 9 has one point
    assert math.isnan(partial_r([1.0, 2.0], [3.0, 4.0], [0, 1]))
    with pytest.raises(ValueError, match="one length"):
        partial_r([1.0, 2.0], [1.0], [0, 0])


def test_exact_permutation_p_by_enumeration():
    """3 groups × 3 units: 6³ = 216 within-group orders; p is a multiple of 1/216 and matches a brute force."""
    x, y, groups = _grouped(3, 3, 0.8, seed=2)
    p, method = within_permutation_p(x, y, groups)
    assert method == "exact (216 orders)"
    r = abs(partial_r(x, y, groups))
    idx = [np.flatnonzero(groups == g) for g in range(3)]
    hits = 0
    for combo in product(*(list(permutations(m)) for m in idx)):
        xp = x.copy()
        for m, order in zip(idx, combo):
            xp[m] = x[list(order)]
        hits += abs(partial_r(xp, y, groups)) >= r - 1e-12
    assert p == pytest.approx(hits / 216)


@pytest.mark.parametrize("n_groups, k, n_perm", [(3, 3, 1), (5, 4, 99)])  # exact, then Monte Carlo
def test_permutation_test_size_under_null(n_groups, k, n_perm):
    rejections = [within_permutation_p(*_grouped(n_groups, k, 0.0, seed), n_perm=n_perm, seed=seed)[0] <= 0.05
                  for seed in range(300)]
    assert 0.015 <= np.mean(rejections) <= 0.09


def test_fisher_ci_by_hand():
    lo, hi = fisher_ci(0.5, 20, 4)  # SE = 1 / sqrt(20 - 4 - 2)
    half = 1.959964 / math.sqrt(14)
    assert (lo, hi) == pytest.approx((math.tanh(math.atanh(0.5) - half), math.tanh(math.atanh(0.5) + half)), abs=1e-6)
    assert all(math.isnan(v) for v in fisher_ci(0.5, 6, 4))
    out = fixed_effect_test(*_grouped(4, 5, -0.6, seed=0))
    assert out["df"] == 20 - 4 - 1 and out["ci"][0] < out["r"] < out["ci"][1] and "Fisher z" in out["ci_method"]


def test_holm_against_a_hand_computed_example():
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = holm([0.01, float("nan")])  # an undefined p counts as 1 in the family of 2
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 0.8·2 caps at 1; the running max keeps 1
    with pytest.raises(ValueError, match="pvalues"):
        holm([1.5])


def test_signflip_exact_by_hand():
    assert signflip_exact([1.0, 2.0, 3.0, 4.0]) == (0.125, "exact (16 sign patterns)")
    # |Σ s·v| over the 8 patterns of (1, −2, 3): 2, 4, 6, 0, 0, 6, 4, 2 → 6 of 8 reach |2|
    assert signflip_exact([1.0, -2.0, 3.0])[0] == pytest.approx(0.75)


def test_t_interval_and_contrast_against_least_squares():
    v = np.array([1.0, 2.0, 4.0, 7.0])
    lo, hi = t_interval(v)
    half = sps.t.ppf(0.975, 3) * v.std(ddof=1) / 2
    assert (lo, hi) == pytest.approx((v.mean() - half, v.mean() + half))
    rng = np.random.default_rng(3)
    cells = np.array(["a"] * 3 + ["b"] * 2 + ["c"] * 4 + ["d"] * 2)
    y = rng.normal(size=cells.size) + (cells == "a") * 2
    w = {"a": 1, "b": -1, "c": -1, "d": 1}
    est, (lo, hi), dof = contrast_interval(y, cells, w)
    design = (cells[:, None] == np.array(list("abcd"))[None, :]).astype(float)  # OLS on cell dummies
    beta, res, *_ = np.linalg.lstsq(design, y, rcond=None)
    c = np.array([1, -1, -1, 1.0])
    se = math.sqrt(res[0] / (y.size - 4) * c @ np.linalg.inv(design.T @ design) @ c)
    assert dof == 7 and est == pytest.approx(c @ beta)
    assert hi - est == pytest.approx(sps.t.ppf(0.975, 7) * se)


def test_dependent_r_difference_coverage_and_null():
    """Zou's interval covers the true r1 − r2 about 95 % of the time (simulation); equal r gives p = 1."""
    cov = np.array([[1.0, 0.5, 0.3], [0.5, 1.0, 0.4], [0.3, 0.4, 1.0]])  # y, a, b
    rng = np.random.default_rng(4)
    hits = 0
    for _ in range(400):
        d = rng.multivariate_normal(np.zeros(3), cov, size=40)
        r = np.corrcoef(d.T)
        _, (lo, hi), _ = dependent_r_difference(r[0, 1], r[0, 2], r[1, 2], 40)
        hits += lo <= 0.2 <= hi
    assert 0.91 <= hits / 400 <= 0.98
    d, (lo, hi), p = dependent_r_difference(0.4, 0.4, 0.5, 30)
    assert d == 0 and lo < 0 < hi and p == pytest.approx(1.0)


def test_mde_attenuation_and_reliability():
    base = fisher_mde(40, 10)
    assert base == pytest.approx(math.tanh((1.959964 + 0.841621) / math.sqrt(28)), abs=1e-5)
    assert fisher_mde(40, 10, rel_x=0.5) == pytest.approx(base / math.sqrt(0.5))
    assert math.isnan(fisher_mde(12, 10)) and math.isnan(fisher_mde(40, 10, rel_x=0.05))
    assert reliability(2.0, 4) == pytest.approx(0.5)
    rng = np.random.default_rng(5)  # true SD 1 between units, seed SD 2, 4 seeds → reliability 1 / (1 + 4/4)
    groups = np.repeat(np.arange(200), 5)
    true = rng.standard_normal(groups.size) + 10 * rng.standard_normal(200)[groups]
    seeds = true[:, None] + 2.0 * rng.standard_normal((groups.size, 4))
    rel = seed_reliability(seeds.mean(1), seeds.std(1, ddof=1), np.full(groups.size, 4), groups)
    assert rel == pytest.approx(0.5, abs=0.06)


def test_entering_units_are_finite_pairs_in_groups_that_keep_two():
    x = [1.0, 2.0, np.nan, 4.0, 5.0, 6.0]
    y = [1.0, 1.0, 1.0, np.nan, 2.0, 3.0]
    groups = ["a", "a", "b", "b", "c", "c"]  # b keeps one finite pair: out
    assert entering_units(x, y, groups).tolist() == [True, True, False, False, True, True]
    assert fixed_effect_test(x, y, groups, n_perm=10)["n"] == 4
    with pytest.raises(ValueError, match="one length"):
        entering_units(x, y[:5], groups)
