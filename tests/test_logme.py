"""Facts about LogME and the linear probe (transferlimits.metrics.logme)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferlimits.metrics.logme import _fit_evidence, check_target_varies, group_folds, linear_probe_score, logme

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


def you_et_al_logme(f: np.ndarray, y: np.ndarray, iters: int = 10000, tol: float = 1e-12) -> float:
    """You et al. 2021, Algorithm 1, in feature space: α, β by MacKay's fixed point with m = β A⁻¹ Fᵀy,
    A = αI + βFᵀF (a D x D solve, no SVD), then the log evidence / n (the paper's Eq. 2)."""
    n, d = f.shape
    ftf, fty = f.T @ f, f.T @ y
    lam = np.linalg.eigvalsh(ftf)  # eigenvalues of FᵀF (D of them, zeros included)
    alpha, beta = 1.0, 1.0
    for _ in range(iters):
        a = alpha * np.eye(d) + beta * ftf
        m = beta * np.linalg.solve(a, fty)
        gamma = np.sum(beta * lam / (alpha + beta * lam))
        new_alpha = gamma / (m @ m)
        new_beta = (n - gamma) / np.sum((y - f @ m) ** 2)
        done = abs(new_alpha - alpha) / alpha < tol and abs(new_beta - beta) / beta < tol
        alpha, beta = new_alpha, new_beta
        if done:
            break
    a = alpha * np.eye(d) + beta * ftf
    m = beta * np.linalg.solve(a, fty)
    evidence = (n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
                - beta / 2 * np.sum((y - f @ m) ** 2) - alpha / 2 * (m @ m) - 0.5 * np.linalg.slogdet(a)[1])
    return evidence / n


@pytest.mark.parametrize("n,d", [(60, 8), (15, 30)])
def test_logme_equals_you_et_al_algorithm(n, d):
    """Regression columns and one-hot class columns, both n > d and n < d, against the direct algorithm."""
    rng = np.random.default_rng(n + d)
    f = rng.normal(size=(n, d))
    y = f @ rng.normal(size=d) * 0.3 + rng.normal(size=n)
    assert logme(f, y, regression=True, tol=1e-12, max_iter=10000) == pytest.approx(you_et_al_logme(f, y), abs=1e-7)
    labels = rng.integers(0, 3, n)
    direct = np.mean([you_et_al_logme(f, (labels == c).astype(float)) for c in range(3)])
    assert logme(f, labels, tol=1e-12, max_iter=10000) == pytest.approx(direct, abs=1e-7)
    # the default stopping rule (relative change < 1e-3) is close to the converged value
    assert logme(f, y, regression=True) == pytest.approx(you_et_al_logme(f, y), abs=2e-3)


@pytest.mark.parametrize("target,regression", [
    (np.full(20, 3.0), True), (3.0 + 1e-13 * np.arange(20), True), (np.ones(20, int), False),
    (np.stack([np.arange(20.0), np.zeros(20)], 1), True)])
def test_degenerate_target_is_an_error_naming_it(target, regression):
    f = np.random.default_rng(0).normal(size=(20, 4))
    with pytest.raises(ValueError, match="'lesion fraction' is degenerate"):
        logme(f, target, regression=regression, target_name="lesion fraction")
    with pytest.raises(ValueError, match="'lesion fraction' is degenerate"):
        check_target_varies(target, regression, "lesion fraction")
    check_target_varies(np.arange(20.0) * 1e-12, True)  # small units are not constant: no error


def test_group_folds_keep_images_whole_and_cover_every_row():
    groups = np.repeat(np.arange(7), 5)
    folds = group_folds(groups, 3, seed=1)
    tests = np.concatenate([t for _, t in folds])
    assert np.array_equal(np.sort(tests), np.arange(35))
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
    assert [t.tolist() for _, t in folds] != [t.tolist() for _, t in group_folds(groups, 3, seed=2)]
    with pytest.raises(ValueError, match="cv"):
        group_folds(groups, 8)


def test_probe_by_image_does_not_memorise_images():
    """Rows of one image share a feature signature and a random per-image target: row folds leak it, image
    folds do not."""
    rng = np.random.default_rng(4)
    n_img, per = 60, 6
    groups = np.repeat(np.arange(n_img), per)
    signature = rng.normal(size=(n_img, 40))
    f = signature[groups] + 0.01 * rng.normal(size=(n_img * per, 40))
    t = rng.normal(size=n_img)[groups]
    by_rows = linear_probe_score(f, t, regression=True)
    by_image = linear_probe_score(f, t, regression=True, groups=groups)
    assert by_rows["r2"] > 0.3 and by_image["r2"] < 0.0 and by_image["folds"] == "by image"
    labels = (t > 0).astype(int)
    assert linear_probe_score(f, labels, groups=groups)["auroc"] < 0.7 < linear_probe_score(f, labels)["auroc"]
