"""Facts about the unbiased MMD² estimator, its permutation test and CIs (transferlimits.metrics.mmd)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from transferlimits.metrics.mmd import (
    MMDTestResult,
    blockwise_mmd2,
    median_bandwidth,
    mmd2,
    mmd2_ci,
    mmd2_multi,
    mmd2_test,
)

torch.set_num_threads(1)


# --------------------------------------------------------------- independent reference (plain loops)
def ref_median(x: np.ndarray, y: np.ndarray) -> float:
    z = list(np.concatenate([x, y]))
    return float(np.median([math.dist(a, b) for a, b in itertools.combinations(z, 2)]))


def ref_mmd2(x: np.ndarray, y: np.ndarray, sigmas) -> float:
    def k(a, b):
        d2 = sum((ai - bi) ** 2 for ai, bi in zip(a, b))
        return sum(math.exp(-d2 / (2 * s * s)) for s in sigmas)

    n, m = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return kxx + kyy - 2 * kxy


def sample(n, d=3, shift=0.0, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


# --------------------------------------------------------------------------------------- statistic
@pytest.mark.parametrize("n,m", [(20, 20), (17, 26)])
def test_agrees_with_reference_median_float_multi(n, m):
    x, y = sample(n, seed=1), sample(m, shift=0.4, seed=2)
    med = ref_median(x, y)
    assert median_bandwidth(x, y) == pytest.approx(med, abs=1e-9)
    assert mmd2(x, y) == pytest.approx(ref_mmd2(x, y, [med]), abs=1e-6)
    assert mmd2(x, y, bandwidth=0.7) == pytest.approx(ref_mmd2(x, y, [0.7]), abs=1e-6)
    assert mmd2(x, y, bandwidth=[0.5, 1.0, 3.0]) == pytest.approx(ref_mmd2(x, y, [0.5, 1.0, 3.0]), abs=1e-6)


def test_multi_bandwidth_dict_matches_reference_and_sums():
    x, y = sample(15, seed=3), sample(19, shift=0.5, seed=4)
    out = mmd2_multi(x, y, multipliers=(0.5, 1.0, 2.0))
    med = ref_median(x, y)
    for mult in (0.5, 1.0, 2.0):
        assert out[mult] == pytest.approx(ref_mmd2(x, y, [mult * med]), abs=1e-6)
    assert out["sum"] == pytest.approx(mmd2(x, y, bandwidth=[0.5 * med, med, 2 * med]), abs=1e-9)
    assert out["median_bandwidth"] == pytest.approx(med)


def test_near_zero_same_distribution_and_monotone_in_shift():
    x, x2 = sample(200, seed=5), sample(200, seed=6)
    same = mmd2(x, x2, bandwidth=2.0)
    values = [mmd2(x, sample(200, shift=s, seed=7), bandwidth=2.0) for s in (0.25, 0.5, 1.0)]
    assert abs(same) < 0.01
    assert values[0] < values[1] < values[2]
    assert values[0] > abs(same)


def test_symmetric_and_blocking_invariant():
    x, y = sample(30, seed=8), sample(23, shift=0.3, seed=9)
    assert mmd2(x, y) == pytest.approx(mmd2(y, x), abs=1e-12)
    assert mmd2(x, y, block_size=4) == pytest.approx(mmd2(x, y, block_size=10_000), abs=1e-12)


def test_numpy_and_torch_inputs_agree():
    x, y = sample(25, seed=10), sample(21, shift=0.2, seed=11)
    a = mmd2(x, y)
    b = mmd2(torch.from_numpy(x).float(), torch.from_numpy(y).float())
    assert isinstance(b, float)
    assert a == pytest.approx(b, abs=1e-6)


def test_unbiased_under_h0():
    """Mean over repeats is within 4 standard errors of 0; the biased V-statistic is not (so this can fail)."""
    unbiased, biased = [], []
    for r in range(100):
        x, y = sample(12, d=2, seed=100 + 2 * r), sample(12, d=2, seed=101 + 2 * r)
        unbiased.append(mmd2(x, y, bandwidth=1.0))
        z = np.concatenate([x, y])
        k = np.exp(-((z[:, None] - z[None]) ** 2).sum(-1) / 2.0)
        biased.append(k[:12, :12].mean() + k[12:, 12:].mean() - 2 * k[:12, 12:].mean())
    se = np.std(unbiased, ddof=1) / np.sqrt(len(unbiased))
    assert abs(np.mean(unbiased)) < 4 * se
    assert np.mean(biased) > 4 * np.std(biased, ddof=1) / np.sqrt(len(biased))


def test_standardize_removes_feature_scale():
    x, y = sample(20, seed=12), sample(20, shift=0.5, seed=13)
    scale = np.array([1.0, 100.0, 0.01])
    assert mmd2(x * scale, y * scale, standardize=True) == pytest.approx(mmd2(x, y, standardize=True), abs=1e-9)


# ---------------------------------------------------------------------------------- permutation test
def test_permutation_columns_are_permuted_statistics():
    x, y = sample(9, seed=14), sample(7, shift=0.3, seed=15)
    z = np.concatenate([x, y])
    rng = np.random.default_rng(0)
    splits = [rng.permutation(16) for _ in range(5)]
    member = torch.zeros(16, 5, dtype=torch.uint8)
    for p, perm in enumerate(splits):
        member[perm[:9], p] = 1
    got = blockwise_mmd2(torch.from_numpy(x), torch.from_numpy(y), (1.3,), member, block_size=5, perm_block=2)
    for p, perm in enumerate(splits):
        assert got[p, 0].item() == pytest.approx(ref_mmd2(z[perm[:9]], z[perm[9:]], [1.3]), abs=1e-9)


def test_test_statistic_blockwise_equals_unblocked():
    x, y = sample(20, seed=16), sample(25, shift=0.3, seed=17)
    a = mmd2_test(x, y, n_permutations=50, seed=3, block_size=6, perm_block=7)
    b = mmd2_test(x, y, n_permutations=50, seed=3, block_size=1000, perm_block=1000)
    assert isinstance(a, MMDTestResult)
    assert a.statistic == pytest.approx(b.statistic, abs=1e-12)
    assert a.statistic == pytest.approx(mmd2(x, y), abs=1e-12)
    assert a.p_value == b.p_value
    assert a.n_permutations == 50 and a.bandwidth == pytest.approx((median_bandwidth(x, y),))


def test_p_value_uniform_under_h0():
    pvals = np.array(
        [mmd2_test(sample(12, d=2, seed=500 + r), sample(12, d=2, seed=900 + r), n_permutations=99, seed=r).p_value
         for r in range(100)]
    )
    assert np.all((pvals > 0) & (pvals <= 1))
    assert 0.02 <= np.mean(pvals < 0.1) <= 0.2  # Binomial(100, 0.1): mean 10, sd 3
    assert stats.kstest(pvals, "uniform").pvalue > 0.001


def test_p_value_small_under_shift():
    res = mmd2_test(sample(40, seed=18), sample(40, shift=1.5, seed=19), n_permutations=200)
    assert res.p_value < 0.01
    assert res.p_value == pytest.approx(1 / 201)


def test_confidence_intervals():
    x, y = sample(30, seed=20), sample(30, shift=1.0, seed=21)
    for method in ("subset", "bootstrap"):
        lo, hi, reps = mmd2_ci(x, y, method=method, n=40, seed=1)
        assert reps.shape == (40,) and lo <= hi
        assert lo > 0  # a clear shift stays positive in every interval
    lo, hi, _ = mmd2_ci(x, y, n=40, seed=1)
    assert (lo, hi) == mmd2_ci(x, y, n=40, seed=1)[:2]


# ------------------------------------------------------------------------------------ ill arguments
@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"bandwidth": "mean"}, "median"),
        ({"bandwidth": -1.0}, "positive"),
        ({"bandwidth": [1.0, 0.0]}, "positive"),
    ],
)
def test_bad_bandwidth(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mmd2(sample(5), sample(5), **kwargs)


def test_bad_shapes_and_values():
    with pytest.raises(ValueError, match="feature dimension"):
        mmd2(sample(5, d=3), sample(5, d=4))
    with pytest.raises(ValueError, match="2-D"):
        mmd2(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError, match="at least 2"):
        mmd2(sample(1), sample(5))
    bad = sample(5)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        mmd2(bad, sample(5))
    with pytest.raises(ValueError, match="n_permutations"):
        mmd2_test(sample(5), sample(5), n_permutations=0)
    with pytest.raises(ValueError, match="method"):
        mmd2_ci(sample(5), sample(5), method="jackknife")
    with pytest.raises(ValueError, match="all pooled points coincide"):
        mmd2(np.ones((4, 2)), np.ones((4, 2)))


def test_device_dtype_and_median_subset():
    x, y = sample(60, seed=22), sample(60, shift=0.3, seed=23)
    assert mmd2(x, y, device="cpu", dtype=torch.float32) == pytest.approx(mmd2(x, y), abs=1e-5)
    exact = median_bandwidth(x, y)
    approx = median_bandwidth(x, y, max_samples=80)  # seeded subset of the 120 pooled points
    assert approx != exact and approx == pytest.approx(exact, rel=0.1)
    assert approx == median_bandwidth(x, y, max_samples=80)
