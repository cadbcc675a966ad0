"""Facts about the paired MMD² statistic, its permutation test and CIs (transferlimits.metrics.mmd_paired)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from transferlimits.metrics.mmd import mmd2
from transferlimits.metrics.mmd_paired import (
    MULTIPLIERS,
    PairedKernel,
    PairedMMDResult,
    median_sigma,
    mmd2_paired,
    mmd2_paired_ci,
    mmd2_paired_clustered,
    mmd2_paired_multi,
    mmd2_paired_test,
)

torch.set_num_threads(1)


# --------------------------------------------------------------- independent reference (plain loops)
def ref_k(a, b, sigmas) -> float:
    d2 = sum((ai - bi) ** 2 for ai, bi in zip(a, b))
    return sum(math.exp(-d2 / (2 * s * s)) for s in sigmas)


def ref_h(x, y, i, j, sigmas) -> float:
    return ref_k(x[i], x[j], sigmas) + ref_k(y[i], y[j], sigmas) - ref_k(x[i], y[j], sigmas) - ref_k(x[j], y[i], sigmas)


def ref_paired(x, y, sigmas, groups=None) -> float:
    n = len(x)
    g = list(range(n)) if groups is None else list(groups)
    pairs = [(i, j) for i in range(n) for j in range(n) if g[i] != g[j]]
    return sum(ref_h(x, y, i, j, sigmas) for i, j in pairs) / len(pairs)


def ref_median_x(x) -> float:
    return float(np.median([math.dist(a, b) for a, b in itertools.combinations(list(x), 2)]))


def pairs(n, d=3, rho=0.9, shift=0.0, seed=0):
    """x ~ N(0, I); y = ρx + √(1−ρ²)e + shift: equal marginals (exchangeable pairs) when shift = 0."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    return x, rho * x + math.sqrt(1 - rho**2) * rng.normal(size=(n, d)) + shift


def clustered(n_images, tokens, d=3, rho=0.5, icc=0.8, shift=0.0, seed=0):
    """Tokens share an image effect (within-image correlation icc): x = √icc·a + √(1−icc)·e and the same for y
    with (a, a′) and (e, e′) bivariate normal with correlation ρ, so whole images are exchangeable at shift 0
    (but single tokens are not: a swapped token loses its image effect)."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_images), tokens)

    def corr_pair(shape):
        u = rng.normal(size=shape)
        return u, rho * u + math.sqrt(1 - rho**2) * rng.normal(size=shape)

    (a, a2), (e, e2) = corr_pair((n_images, d)), corr_pair((len(groups), d))
    x = math.sqrt(icc) * a[groups] + math.sqrt(1 - icc) * e
    y = math.sqrt(icc) * a2[groups] + math.sqrt(1 - icc) * e2 + shift
    return x, y, groups


def band(alpha, trials, z=3.5) -> tuple[float, float]:
    half = z * math.sqrt(alpha * (1 - alpha) / trials)
    return alpha - half, alpha + half


# --------------------------------------------------------------------------------------- statistic
@pytest.mark.parametrize("bandwidth", ["median", 0.7, [0.5, 1.0, 3.0]])
def test_agrees_with_double_loop(bandwidth):
    x, y = pairs(14, shift=0.3, seed=1)
    sig = [ref_median_x(x)] if bandwidth == "median" else ([bandwidth] if np.isscalar(bandwidth) else bandwidth)
    want = ref_paired(x, y, sig)
    assert mmd2_paired(x, y, bandwidth) == pytest.approx(want, abs=1e-10)
    assert mmd2_paired(x, y, bandwidth, block_size=3) == pytest.approx(want, abs=1e-10)


def test_median_bandwidth_uses_x_only():
    x, y = pairs(20, seed=2)
    assert median_sigma(x) == pytest.approx(ref_median_x(x), abs=1e-12)
    a = mmd2_paired_test(x, y, n_permutations=10)
    b = mmd2_paired_test(x, 5.0 * y + 3.0, n_permutations=10)
    assert a.bandwidth == b.bandwidth == pytest.approx((ref_median_x(x),))
    assert mmd2_paired_test(y, x, n_permutations=10).bandwidth != a.bandwidth


def test_multi_bandwidth_per_multiplier_and_sum():
    x, y = pairs(12, shift=0.4, seed=3)
    med = ref_median_x(x)
    out = mmd2_paired_multi(x, y)
    for m in MULTIPLIERS:
        assert out[m] == pytest.approx(ref_paired(x, y, [m * med]), abs=1e-10)
    assert out["sum"] == pytest.approx(mmd2_paired(x, y, "multi"), abs=1e-12)
    assert out["median_bandwidth"] == pytest.approx(med)


def test_identical_samples_give_zero_and_torch_inputs_agree():
    x, y = pairs(25, shift=0.2, seed=4)
    assert mmd2_paired(x, x) == 0.0
    assert mmd2_paired(torch.from_numpy(x).float(), torch.from_numpy(y).float()) == pytest.approx(mmd2_paired(x, y), abs=1e-6)


def test_unbiased_for_strongly_dependent_pairs_where_two_sample_is_not():
    """Mean over repeats at ρ = 0.9 and equal marginals: paired ≈ 0 (within 4 SE); two-sample is negative."""
    paired, two = [], []
    for r in range(60):
        x, y = pairs(30, d=2, rho=0.9, seed=100 + r)
        paired.append(mmd2_paired(x, y, 1.0))
        two.append(mmd2(x, y, bandwidth=1.0))
    se = lambda v: np.std(v, ddof=1) / math.sqrt(len(v))  # noqa: E731
    assert abs(np.mean(paired)) < 4 * se(paired)
    assert np.mean(two) < -4 * se(two)


# ---------------------------------------------------------------------------------- permutation test
def test_sign_flips_are_swapped_statistics_and_null_is_centred():
    """T(s) equals the statistic recomputed on swapped pairs; T(s) = T(−s); mean over all 2ⁿ flips is 0."""
    x, y = pairs(8, shift=0.5, seed=5)
    pk = PairedKernel(x, y, 1.0)
    signs = np.array(list(itertools.product([-1.0, 1.0], repeat=8))).T  # [8, 256]
    t = pk.quad_forms(signs) / (8 * 7)
    for col in (3, 77, 200):
        swap = signs[:, col] < 0
        xs, ys = np.where(swap[:, None], y, x), np.where(swap[:, None], x, y)
        assert t[col] == pytest.approx(ref_paired(xs, ys, [1.0]), abs=1e-10)
    assert np.allclose(t, t[::-1])  # column c and 255 − c are opposite sign vectors
    assert abs(t.mean()) < 1e-12
    assert t[-1] == pytest.approx(pk.statistic())


def test_result_fields_and_p_value_formula():
    x, y = pairs(20, shift=0.3, seed=6)
    res = mmd2_paired_test(x, y, n_permutations=99, seed=1)
    pk = PairedKernel(x, y)
    null = pk.permutation_null(99, seed=1)
    assert isinstance(res, PairedMMDResult) and res.n == 20 and res.n_groups == 20 and res.n_permutations == 99
    assert res.p_value == pytest.approx((1 + np.sum(null >= res.mmd2 - 1e-12)) / 100)
    assert res.ci_low is None and res.to_dict()["bandwidth"] == list(res.bandwidth)
    full = pk.test(n_permutations=99, seed=1, n_boot=50)  # one kernel pass: statistic, p and CI
    lo, hi, _ = mmd2_paired_ci(x, y, n_boot=50, seed=1)
    assert (full.mmd2, full.p_value, full.ci_low, full.ci_high) == (res.mmd2, res.p_value, lo, hi)


def test_size_near_alpha_for_correlated_pairs_and_power_under_shift():
    trials, alpha = 400, 0.05
    rejections = [mmd2_paired_test(*pairs(60, d=8, rho=0.9, seed=1000 + t), n_permutations=199, seed=t).p_value <= alpha
                  for t in range(trials)]
    lo, hi = band(alpha, trials)
    assert lo <= np.mean(rejections) <= hi
    power = [mmd2_paired_test(*pairs(60, d=8, rho=0.9, shift=0.3, seed=5000 + t), n_permutations=199, seed=t).p_value
             <= alpha for t in range(100)]
    assert np.mean(power) > 0.8


# ---------------------------------------------------------------------------------- bootstrap CI
def test_bootstrap_replicate_matches_direct_weighted_u_statistic():
    """A replicate with duplicated pairs counts only pairs of distinct originals (no ‖Dᵢ‖² terms)."""
    x, y = pairs(9, shift=0.3, seed=7)
    pk = PairedKernel(x, y, 1.2)
    boot = pk.bootstrap(5, seed=3)
    draws = np.random.default_rng(3).integers(0, 9, size=(5, 9))
    for b in range(5):
        idx = draws[b]
        terms = [ref_h(x, y, idx[p], idx[q], [1.2]) for p in range(9) for q in range(9) if idx[p] != idx[q]]
        assert boot[b] == pytest.approx(sum(terms) / len(terms), abs=1e-10)


def test_ci_covers_truth_under_h0_and_excludes_zero_under_shift():
    cover = []
    for r in range(40):
        lo, hi, s = mmd2_paired_ci(*pairs(40, d=4, seed=2000 + r), n_boot=200, seed=r)
        cover.append(lo <= 0.0 <= hi)
        assert s.shape == (200,) and lo <= hi
    assert np.mean(cover) >= 0.85
    lo, _, _ = mmd2_paired_ci(*pairs(80, d=4, shift=0.8, seed=9), n_boot=300)
    assert lo > 0


# ---------------------------------------------------------------------------------- clustered tokens
def test_clustered_statistic_counts_only_pairs_from_different_images():
    x, y, g = clustered(4, 3, shift=0.3, seed=8)
    sig = ref_median_x(x)
    res = mmd2_paired_clustered(x, y, g, n_permutations=20, n_boot=20)
    assert res.mmd2 == pytest.approx(ref_paired(x, y, [sig], groups=g), abs=1e-10)
    assert res.n == 12 and res.n_groups == 4 and res.ci_low <= res.ci_high
    # one token per image is the per-image statistic
    assert PairedKernel(x, y, 1.0, groups=np.arange(12)).statistic() == pytest.approx(mmd2_paired(x, y, 1.0))


def test_clustered_size_near_alpha_while_token_flips_are_anticonservative():
    trials, alpha = 300, 0.05
    image_level, token_level = [], []
    for t in range(trials):
        x, y, g = clustered(12, 8, seed=3000 + t)
        image_level.append(mmd2_paired_clustered(x, y, g, n_permutations=199, n_boot=0, seed=t).p_value <= alpha)
        token_level.append(mmd2_paired_test(x, y, n_permutations=199, seed=t).p_value <= alpha)
    lo, hi = band(alpha, trials)
    assert lo <= np.mean(image_level) <= hi
    assert np.mean(token_level) > hi


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"y": np.zeros((5, 3))}, "paired"),
        ({"bandwidth": "mean"}, "bandwidth"),
        ({"bandwidth": -1.0}, "positive"),
        ({"groups": np.zeros(6)}, "2 distinct groups"),
        ({"groups": np.arange(5)}, "one label per row"),
    ],
)
def test_ill_arguments(kwargs, match):
    x, y = pairs(6, seed=10)
    args = {"x": x, "y": y, **kwargs}
    with pytest.raises(ValueError, match=match):
        PairedKernel(**args)
    with pytest.raises(ValueError, match="finite"):
        PairedKernel(np.full((4, 2), np.nan), np.zeros((4, 2)), 1.0)
