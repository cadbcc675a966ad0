"""Facts about LogME and the linear probe (transferlimits.metrics.logme)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferlimits.metrics.logme import _fit_evidence, linear_probe_score, logme

torch.set_num_threads(1)


def class_data(n=150, d=12, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    good = rng.normal(size=(n, d))
    good[:, :3] += 2.0 * np.eye(3)[y]
    return good, rng.normal(size=(n, d)), y


def reg_data(n=150, d=12, seed=1):
    rng = np.random.default_rng(seed)
    t = rng.normal(size=n)
    good = rng.normal(size=(n, d))
    good[:, 0] = t + 0.2 * rng.normal(size=n)
    return good, rng.normal(size=(n, d)), t


def test_evidence_matches_gaussian_marginal_likelihood():
    """The SVD fixed point's log evidence equals log N(y; 0, I/β + F Fᵀ/α) at the fitted α, β."""
    rng = np.random.default_rng(2)
    f = rng.normal(size=(30, 5))
    y = f @ rng.normal(size=5) + 0.5 * rng.normal(size=30)
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    ev, alpha, beta = _fit_evidence(s * s, u.T @ y, float(y @ y), 30, 5, 100, 1e-6)
    cov = np.eye(30) / beta + f @ f.T / alpha
    sign, logdet = np.linalg.slogdet(cov)
    direct = -0.5 * (30 * np.log(2 * np.pi) + logdet + y @ np.linalg.solve(cov, y))
    assert sign > 0
    assert ev == pytest.approx(direct / 30, abs=1e-8)
    # and it is a fixed point: another update leaves alpha, beta unchanged
    ev2, alpha2, beta2 = _fit_evidence(s * s, u.T @ y, float(y @ y), 30, 5, 1000, 1e-10)
    assert alpha2 == pytest.approx(alpha, rel=1e-4) and beta2 == pytest.approx(beta, rel=1e-4)


def test_ranks_informative_features_classification():
    good, bad, y = class_data()
    assert logme(good, y) > logme(bad, y) + 0.05


def test_ranks_informative_features_regression_and_columns():
    good, bad, t = reg_data()
    assert logme(good, t, regression=True) > logme(bad, t, regression=True) + 0.5
    two = np.stack([t, t], axis=1)
    assert logme(good, two, regression=True) == pytest.approx(logme(good, t, regression=True))


def test_more_features_than_samples():
    good, bad, y = class_data(n=20, d=50, seed=3)
    assert np.isfinite(logme(good, y)) and np.isfinite(logme(torch.from_numpy(bad), torch.from_numpy(y)))


def test_linear_probe_scores():
    good, bad, y = class_data()
    g, b = linear_probe_score(good, y), linear_probe_score(bad, y)
    assert g["accuracy"] > b["accuracy"] + 0.2 and g["auroc"] > 0.8 and b["auroc"] < 0.7
    gr, br, t = reg_data()
    assert linear_probe_score(gr, t, regression=True)["r2"] > 0.8
    assert linear_probe_score(br, t, regression=True)["r2"] < 0.2


def test_ill_arguments():
    good, _, y = class_data()
    with pytest.raises(ValueError, match="integer labels"):
        logme(good, y + 0.5)
    with pytest.raises(ValueError, match="at least 2 classes"):
        logme(good, np.zeros(len(y), dtype=int))
    with pytest.raises(ValueError, match="one entry per feature row"):
        logme(good, y[:-1])
    with pytest.raises(ValueError, match="2-D"):
        logme(good[:, 0], y)
    with pytest.raises(ValueError, match="cv"):
        linear_probe_score(good, y, cv=1)
