"""Centered kernel alignment (Kornblith et al., ICML 2019) between paired representations.

CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) · HSIC(L, L)) for Gram matrices K, L of the same n examples.
The biased variant centres the Gram matrices with H = I − 11ᵀ/n; the debiased variant uses the
U-centred Gram matrices, whose inner product divided by n(n−3) is the unbiased HSIC estimator of
Song et al. (JMLR 2012), so debiased CKA of independent representations is close to 0 rather than to a
positive, n- and d-dependent value. Unlike MMD, CKA uses the pairing of the rows of x and y.

All functions take NumPy arrays (or anything ``np.asarray`` accepts) and compute in float64.
"""

from __future__ import annotations

import numpy as np

__all__ = ["gram_linear", "gram_rbf", "center_gram", "cka", "feature_space_linear_cka"]


def _as_2d(a, name: str) -> np.ndarray:
    arr = np.asarray(a.detach().cpu() if hasattr(a, "detach") else a, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D [n, d], got shape {arr.shape}")
    return arr


def _check_pair(x: np.ndarray, y: np.ndarray, debiased: bool) -> None:
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x and y must have the same number of rows (paired examples), got {x.shape[0]} and {y.shape[0]}"
        )
    min_n = 4 if debiased else 2
    if x.shape[0] < min_n:
        variant = "debiased" if debiased else "biased"
        raise ValueError(f"need at least {min_n} examples for {variant} CKA, got {x.shape[0]}")


def gram_linear(x) -> np.ndarray:
    """Linear Gram matrix ``[n, n]`` = x xᵀ of ``x`` ``[n, d]``."""
    x = _as_2d(x, "x")
    return x @ x.T


def gram_rbf(x, threshold: float = 1.0) -> np.ndarray:
    """Gaussian Gram matrix ``[n, n]`` with σ² = threshold² · median squared pairwise distance.

    Args:
        x: ``[n, d]``.
        threshold: bandwidth as a multiple of the median distance (default 1.0; > 0).
    """
    if threshold <= 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    x = _as_2d(x, "x")
    sq = (x * x).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)
    med = np.median(d2)
    if not med > 0:
        raise ValueError("median squared distance is 0; the RBF bandwidth is undefined")
    return np.exp(-d2 / (2.0 * threshold**2 * med))


def center_gram(gram: np.ndarray, unbiased: bool = False) -> np.ndarray:
    """Double-centre a symmetric Gram matrix ``[n, n]``.

    Args:
        gram: ``[n, n]`` symmetric.
        unbiased: if True, U-centre it (zero diagonal; K̃_ij = K_ij − r_i/(n−2) − r_j/(n−2) + s/((n−1)(n−2))
            with r the row sums and s the total of the zero-diagonal matrix), else H K H (default False).
    """
    g = np.array(gram, dtype=np.float64, copy=True)
    if g.ndim != 2 or g.shape[0] != g.shape[1]:
        raise ValueError(f"gram must be square [n, n], got shape {g.shape}")
    n = g.shape[0]
    if unbiased:
        if n < 4:
            raise ValueError(f"U-centring needs n >= 4, got {n}")
        np.fill_diagonal(g, 0.0)
        r = g.sum(1)
        g = g - r[:, None] / (n - 2) - r[None, :] / (n - 2) + r.sum() / ((n - 1) * (n - 2))
        np.fill_diagonal(g, 0.0)
        return g
    col = g.mean(0)
    return g - col[None, :] - g.mean(1)[:, None] + col.mean()


def _cka_from_grams(kx: np.ndarray, ky: np.ndarray, debiased: bool) -> float:
    kx, ky = center_gram(kx, debiased), center_gram(ky, debiased)
    hsic_xy = (kx * ky).sum()
    denom = np.sqrt((kx * kx).sum() * (ky * ky).sum())
    return float(hsic_xy / denom) if denom > 0 else float("nan")


def cka(x, y, debiased: bool = False, kernel: str = "linear", rbf_threshold: float = 1.0) -> float:
    """CKA between paired representations in example space (via n×n Gram matrices).

    Args:
        x: ``[n, d1]``. y: ``[n, d2]`` (row i of both is the same example).
        debiased: use U-centring (unbiased HSIC) (default False). Needs n ≥ 4.
        kernel: ``"linear"`` (default) or ``"rbf"``.
        rbf_threshold: RBF bandwidth as a multiple of the median distance (default 1.0).

    Returns:
        CKA as a float (1 for identical representations; NaN if a representation is constant).
    """
    x, y = _as_2d(x, "x"), _as_2d(y, "y")
    _check_pair(x, y, debiased)
    if kernel == "linear":
        return _cka_from_grams(gram_linear(x), gram_linear(y), debiased)
    if kernel == "rbf":
        return _cka_from_grams(gram_rbf(x, rbf_threshold), gram_rbf(y, rbf_threshold), debiased)
    raise ValueError(f"kernel must be one of ('linear', 'rbf'), got {kernel!r}")


def _unbiased_hsic_linear(x: np.ndarray, y: np.ndarray) -> float:
    """n(n−3) · unbiased HSIC for linear kernels, from features only (no n×n matrix)."""
    n = x.shape[0]
    nx, ny = (x * x).sum(1), (y * y).sum(1)  # diagonals of the Gram matrices
    tr = np.sum((x.T @ y) ** 2) - np.dot(nx, ny)  # Σ_{i≠j} K_ij L_ij
    kx1 = x @ x.sum(0) - nx  # K̃1 (zero-diagonal row sums)
    ly1 = y @ y.sum(0) - ny
    sx, sy = kx1.sum(), ly1.sum()
    return float(tr + sx * sy / ((n - 1) * (n - 2)) - 2.0 * np.dot(kx1, ly1) / (n - 2))


def feature_space_linear_cka(x, y, debiased: bool = False) -> float:
    """Linear CKA from the d×d cross-covariances (cheaper than :func:`cka` when n ≫ d).

    Biased: ‖xᶜᵀyᶜ‖²_F / (‖xᶜᵀxᶜ‖_F ‖yᶜᵀyᶜ‖_F) with column-centred xᶜ, yᶜ. Debiased: the unbiased HSIC
    expressed through feature sums. Equals ``cka(x, y, debiased, kernel="linear")`` up to rounding.

    Args:
        x: ``[n, d1]``. y: ``[n, d2]``. debiased: as in :func:`cka` (default False).
    """
    x, y = _as_2d(x, "x"), _as_2d(y, "y")
    _check_pair(x, y, debiased)
    x, y = x - x.mean(0), y - y.mean(0)
    if debiased:
        hxy, hxx, hyy = _unbiased_hsic_linear(x, y), _unbiased_hsic_linear(x, x), _unbiased_hsic_linear(y, y)
    else:
        hxy = np.sum((x.T @ y) ** 2)
        hxx, hyy = np.sum((x.T @ x) ** 2), np.sum((y.T @ y) ** 2)
    denom = np.sqrt(hxx * hyy)
    return float(hxy / denom) if denom > 0 else float("nan")
