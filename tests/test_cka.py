"""Facts about linear/RBF CKA and its debiased variant (transferlimits.metrics.cka)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import ortho_group

from transferlimits.metrics.cka import center_gram, cka, feature_space_linear_cka, gram_linear, gram_rbf

torch.set_num_threads(1)


def pair(n=40, d1=6, d2=9, noise=1.0, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d1))
    return x, x @ rng.normal(size=(d1, d2)) + noise * rng.normal(size=(n, d2))


@pytest.mark.parametrize("debiased", [False, True])
def test_feature_and_example_space_agree(debiased):
    x, y = pair(seed=1)
    assert cka(x, y, debiased=debiased) == pytest.approx(feature_space_linear_cka(x, y, debiased=debiased), abs=1e-10)


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_invariances_and_self_similarity(debiased, kernel):
    x, y = pair(seed=2)
    base = cka(x, y, debiased=debiased, kernel=kernel)
    q = ortho_group.rvs(x.shape[1], random_state=3)
    assert cka(x @ q, y, debiased=debiased, kernel=kernel) == pytest.approx(base, abs=1e-9)
    assert cka(3.7 * x, 0.2 * y, debiased=debiased, kernel=kernel) == pytest.approx(base, abs=1e-9)
    assert cka(x, x, debiased=debiased, kernel=kernel) == pytest.approx(1.0, abs=1e-12)
    assert 0.0 < base < 1.0


def test_not_invariant_to_non_isotropic_scaling():
    """Linear CKA is invariant to orthogonal maps and isotropic scaling only (so the tests above can fail)."""
    x, y = pair(seed=4)
    stretched = x * np.array([10.0, 1, 1, 1, 1, 0.1])
    assert abs(cka(stretched, y) - cka(x, y)) > 1e-3


def test_debiased_near_zero_for_independent_data():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(300, 20)), rng.normal(size=(300, 20))
    biased, debiased = cka(x, y), cka(x, y, debiased=True)
    assert abs(debiased) < 0.02
    assert biased > 0.04  # the biased estimator is inflated at d/n ~ 0.07


def test_gram_helpers():
    x, _ = pair(n=10, seed=6)
    g = gram_linear(x)
    assert g.shape == (10, 10) and np.allclose(g, g.T)
    c = center_gram(g)
    assert np.allclose(c.sum(0), 0) and np.allclose(c.sum(1), 0)
    u = center_gram(g, unbiased=True)
    assert np.allclose(np.diag(u), 0) and np.allclose(u.sum(0), 0)  # U-centred rows/cols sum to 0
    r = gram_rbf(x)
    assert np.allclose(np.diag(r), 1.0) and r.min() > 0


def test_torch_input():
    x, y = pair(seed=7)
    assert cka(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(cka(x, y))


def test_ill_arguments():
    x, y = pair(seed=8)
    with pytest.raises(ValueError, match="same number of rows"):
        cka(x, y[:-1])
    with pytest.raises(ValueError, match="kernel"):
        cka(x, y, kernel="poly")
    with pytest.raises(ValueError, match="2-D"):
        feature_space_linear_cka(x[:, 0], y)
    with pytest.raises(ValueError, match="at least 4"):
        cka(x[:3], y[:3], debiased=True)
    with pytest.raises(ValueError, match="threshold"):
        gram_rbf(x, threshold=0)
