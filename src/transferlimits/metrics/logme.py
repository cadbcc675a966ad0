"""Transferability of frozen features: LogME (You et al., ICML 2021) and a linear-probe score.

LogME models a target column y ``[n]`` as y = F w + ε with prior w ~ N(0, α⁻¹ I) and noise ε ~ N(0, β⁻¹ I)
on features F ``[n, d]`` and maximises the marginal likelihood (evidence) over α, β with MacKay's fixed point.
With F = U S Vᵀ (thin SVD, σ_i = s_i², z = Uᵀy) every quantity is a sum over the r = min(n, d) singular
directions:

    γ = Σ β σ_i / (α + β σ_i)
    ‖m‖² = Σ (β s_i z_i / (α + β σ_i))²,   ‖F m − y‖² = Σ (α z_i / (α + β σ_i))² + ‖y‖² − ‖z‖²
    α ← γ / ‖m‖²,   β ← (n − γ) / ‖F m − y‖²                       (iterated to a relative change < tol)
    log p(y | F) = n/2 log β + d/2 log α − n/2 log 2π − β/2 ‖F m − y‖² − α/2 ‖m‖² − 1/2 Σ_d log(α + β σ_i)

(σ_i = 0 for the d − r null directions). LogME is the log evidence divided by n, averaged over the
one-hot class columns (classification) or the target columns (regression). Higher is better.

A target with one value (one class; a continuous column with zero spread) is an error, not a score
(STUDY §5.2): its evidence only measures how well the fit shrinks to a constant (a z-scored constant-plus-noise
column gives −½ ln(2πe) = −1.41894 for any features). :func:`check_target_varies` raises a ``ValueError`` naming
the target; :func:`logme` calls it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["logme", "linear_probe_score", "check_target_varies", "group_folds", "RELATIVE_SPREAD"]

#: a continuous column counts as constant when its SD is at most this fraction of its mean magnitude (float noise
#: around one value), or exactly 0.
RELATIVE_SPREAD = 1e-9


def _fit_evidence(
    s2: np.ndarray, z: np.ndarray, y_sq: float, n: int, d: int, max_iter: int, tol: float
) -> tuple[float, float, float]:
    """Fixed point for one target column; returns (log evidence / n, alpha, beta)."""
    alpha, beta = 1.0, 1.0
    z2 = z * z
    for _ in range(max_iter):
        denom = alpha + beta * s2
        gamma = float(np.sum(beta * s2 / denom))
        m_sq = float(np.sum(beta**2 * s2 * z2 / denom**2))
        res = float(np.sum(alpha**2 * z2 / denom**2)) + max(y_sq - float(z2.sum()), 0.0)
        # Clamp to a finite positive range: with (near-)uninformative features gamma -> 0 and the
        # unclamped update would drive alpha to 0 (and the next relative-change test to 0/0).
        new_alpha = float(np.clip(gamma / max(m_sq, 1e-300), 1e-12, 1e12))
        new_beta = float(np.clip((n - gamma) / max(res, 1e-300), 1e-12, 1e12))
        done = abs(new_alpha - alpha) / alpha < tol and abs(new_beta - beta) / beta < tol
        alpha, beta = new_alpha, new_beta
        if done:
            break
    denom = alpha + beta * s2
    m_sq = float(np.sum(beta**2 * s2 * z2 / denom**2))
    res = float(np.sum(alpha**2 * z2 / denom**2)) + max(y_sq - float(z2.sum()), 0.0)
    log_det = float(np.sum(np.log(denom))) + (d - s2.size) * np.log(alpha)
    evidence = (
        n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
        - beta / 2 * res - alpha / 2 * m_sq - 0.5 * log_det
    )
    return float(evidence / n), alpha, beta


def _as_array(a) -> np.ndarray:
    return np.asarray(a.detach().cpu() if hasattr(a, "detach") else a)


def check_target_varies(targets, regression: bool = False, name: str = "target") -> None:
    """Raise unless the target takes more than one value.

    Args:
        targets: ``[n]`` labels, or ``[n]`` / ``[n, k]`` floats with ``regression`` (every column must vary).
        regression: continuous target (default False: class labels).
        name: what the target is, for the message (default ``"target"``).

    Raises:
        ValueError: fewer than 2 rows, non-finite values, one class, or a continuous column whose SD is 0 or at
            most :data:`RELATIVE_SPREAD` × its mean magnitude; the message names the target and its value.
    """
    t = _as_array(targets)
    if t.shape[0] < 2:
        raise ValueError(f"LogME target {name!r} is degenerate: {t.shape[0]} row(s)")
    if not regression:
        classes = np.unique(t)
        if classes.size < 2:
            raise ValueError(f"LogME target {name!r} is degenerate: one class {classes.tolist()} in all "
                             f"{t.shape[0]} rows (classification needs at least 2 classes)")
        return
    cols = t.astype(np.float64).reshape(t.shape[0], -1)
    if not np.isfinite(cols).all():
        raise ValueError(f"LogME target {name!r} has non-finite values")
    sd, mean = cols.std(axis=0), np.abs(cols.mean(axis=0))
    flat = (sd == 0) | (sd <= RELATIVE_SPREAD * mean)
    if flat.any():
        k = int(np.argmax(flat))
        raise ValueError(f"LogME target {name!r} is degenerate: column {k} is constant ({cols[0, k]:.6g}, SD "
                         f"{sd[k]:.3g} over {t.shape[0]} rows)")


def _targets_matrix(targets, regression: bool, n: int, name: str) -> np.ndarray:
    t = _as_array(targets)
    if t.shape[0] != n:
        raise ValueError(f"targets must have one entry per feature row ({n}), got shape {t.shape}")
    if not regression and (t.ndim != 1 or not np.all(np.equal(np.mod(t, 1), 0))):
        raise ValueError(
            "classification targets must be a 1-D array of integer labels; pass regression=True for floats"
        )
    check_target_varies(t, regression, name)
    if regression:
        t = t.astype(np.float64)
        return t[:, None] if t.ndim == 1 else t
    classes = np.unique(t)
    return (t[:, None] == classes[None, :]).astype(np.float64)


def logme(features, targets, regression: bool = False, max_iter: int = 100, tol: float = 1e-3,
          target_name: str = "target") -> float:
    """LogME score of frozen features for a task (You et al., ICML 2021).

    Args:
        features: ``[n, d]`` float features (NumPy or torch).
        targets: ``[n]`` integer class labels (classification), or ``[n]`` / ``[n, k]`` floats with
            ``regression=True`` (each column scored separately, then averaged; not standardised).
        regression: treat targets as real-valued (default False).
        max_iter: fixed-point iterations at most (default 100). tol: relative change to stop (default 1e-3).
        target_name: what the target is, named by the degenerate-target error (default ``"target"``).

    Returns:
        Mean log evidence per sample over the target columns (higher = more transferable).

    Raises:
        ValueError: features not a finite 2-D array, a row-count mismatch, float labels without ``regression``,
            or a degenerate target (:func:`check_target_varies`, naming ``target_name``).
    """
    f = np.asarray(features.detach().cpu() if hasattr(features, "detach") else features, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"features must be 2-D [n, d], got shape {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError("features must be finite")
    n, d = f.shape
    y = _targets_matrix(targets, regression, n, target_name)
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    s2 = s * s
    scores = [
        _fit_evidence(s2, u.T @ y[:, k], float(y[:, k] @ y[:, k]), n, d, max_iter, tol)[0]
        for k in range(y.shape[1])
    ]
    return float(np.mean(scores))


def group_folds(groups, cv: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """GroupKFold with shuffled groups: the unique groups in a seeded random order, cut into ``cv`` near-equal runs.

    Every group's rows fall in one test fold (rows of one image are never split between train and test).

    Args:
        groups: ``[n]`` group (image) of each row. cv: folds (2 <= cv <= number of groups). seed: shuffle seed.

    Returns:
        ``cv`` pairs ``(train_rows, test_rows)`` of int index arrays.

    Raises:
        ValueError: ``cv`` < 2 or more folds than groups.
    """
    g = np.asarray(groups).ravel()
    uniq = np.unique(g)
    if cv < 2 or cv > uniq.size:
        raise ValueError(f"cv must be in [2, number of groups = {uniq.size}], got {cv}")
    order = np.random.default_rng(seed).permutation(uniq)
    folds = []
    for part in np.array_split(order, cv):
        test = np.isin(g, part)
        folds.append((np.flatnonzero(~test), np.flatnonzero(test)))
    return folds


def linear_probe_score(features, targets, regression: bool = False, seed: int = 0, cv: int = 3,
                       groups=None) -> dict:
    """Cross-validated linear probe on frozen features (scikit-learn), folds by image groups.

    Classification: ``StandardScaler`` + ``LogisticRegression(max_iter=2000)`` with ``StratifiedGroupKFold``
    (shuffled with ``seed``); reports mean accuracy and mean AUROC (binary; one-vs-rest macro for more classes).
    Regression: ``StandardScaler`` + ``RidgeCV`` (alphas 10⁻³…10³) with :func:`group_folds`, mean R² (averaged
    over target columns). Rows of one group (image) are never split between a fold's train and test part.

    Args:
        features: ``[n, d]``. targets: ``[n]`` int labels, or ``[n]`` / ``[n, k]`` floats with ``regression``.
        regression: default False. seed: fold shuffling seed (default 0). cv: folds (default 3, ≥ 2).
        groups: ``[n]`` image of each row; default None = every row its own group (one row per image).

    Returns:
        ``{"accuracy", "auroc"}`` or ``{"r2"}`` (floats), plus ``"cv"`` and ``"folds"`` (``"by image"``).

    Raises:
        ValueError: ``cv`` < 2 or more folds than groups, mismatched shapes, fewer than 2 classes.
    """
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.model_selection import StratifiedGroupKFold, cross_validate
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if cv < 2:
        raise ValueError(f"cv must be >= 2, got {cv}")
    f = np.asarray(features.detach().cpu() if hasattr(features, "detach") else features, dtype=np.float64)
    t = _as_array(targets)
    if f.ndim != 2 or t.shape[0] != f.shape[0]:
        raise ValueError(f"need features [n, d] and targets [n, ...] with equal n, got {f.shape} and {t.shape}")
    g = np.arange(f.shape[0]) if groups is None else np.asarray(groups).ravel()
    if g.shape[0] != f.shape[0]:
        raise ValueError(f"groups must have one entry per feature row ({f.shape[0]}), got {g.shape[0]}")
    if regression:
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
        out = cross_validate(model, f, t.astype(np.float64), cv=group_folds(g, cv, seed), scoring="r2")
        return {"r2": float(np.mean(out["test_score"])), "cv": cv, "folds": "by image"}
    n_classes = np.unique(t).size
    if n_classes < 2:
        raise ValueError(f"classification needs at least 2 classes, got {n_classes}")
    if cv > np.unique(g).size:
        raise ValueError(f"cv must be in [2, number of groups = {np.unique(g).size}], got {cv}")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = list(StratifiedGroupKFold(cv, shuffle=True, random_state=seed).split(f, t, g))
    auroc = "roc_auc" if n_classes == 2 else "roc_auc_ovr"
    out = cross_validate(model, f, t, cv=folds, scoring={"accuracy": "accuracy", "auroc": auroc})
    return {"accuracy": float(np.mean(out["test_accuracy"])), "auroc": float(np.mean(out["test_auroc"])), "cv": cv,
            "folds": "by image"}
