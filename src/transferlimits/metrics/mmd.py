"""Unbiased MMD² with a Gaussian kernel, its permutation test and confidence intervals.

The statistic (Gretton et al., JMLR 2012, eq. 3) for samples ``x`` ``[n, d]`` and ``y`` ``[m, d]`` is

    MMD²_u = Σ_{i≠j} k(x_i, x_j) / (n(n−1)) + Σ_{i≠j} k(y_i, y_j) / (m(m−1)) − 2 Σ_{i,j} k(x_i, y_j) / (nm)

with k(a, b) = exp(−‖a − b‖² / (2σ²)). ``bandwidth="median"`` sets σ to the median pairwise Euclidean
distance of the pooled sample (off-diagonal pairs); a float sets σ; a sequence of floats sums the kernels.

Implementation: the pooled sample z = [x; y] (N = n + m rows) is walked in row blocks of ``block_size``;
each block of the kernel matrix ``[block, N]`` is computed once, its diagonal entries zeroed, and used for the
observed statistic and for every permutation at the same time. A permutation is a 0/1 membership vector u
(n ones); with K₀ the kernel matrix without its diagonal, A = uᵀK₀u, r = K₀1 and T = 1ᵀK₀1,

    Σ_XX = A,  Σ_XY = uᵀr − A,  Σ_YY = T − A − 2 Σ_XY,

so all permutations need only the products K₀[block] @ U (U = ``[N, P_block]``). Memory is
O(N·block + N·P_block) floats plus the N×P membership matrix as bytes; the kernel matrix is never stored.
The permutation p-value is p = (1 + #{perm ≥ observed}) / (1 + P) (Phipson & Smyth 2010).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "MMDTestResult",
    "mmd2",
    "mmd2_test",
    "mmd2_ci",
    "mmd2_multi",
    "median_bandwidth",
]

BandwidthSpec = str | float | Sequence[float]


# ----------------------------------------------------------------------------- kernel blocks


def to_tensor(a, device=None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """NumPy array or tensor -> tensor of ``dtype`` on ``device`` (default: its own device, or CPU)."""
    if isinstance(a, torch.Tensor):
        return a.detach().to(device=device if device is not None else a.device, dtype=dtype)
    return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)


def _sq_dists(a: torch.Tensor, b: torch.Tensor, b_sq: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``[len(a), len(b)]`` via ‖a‖² + ‖b‖² − 2ab (clamped at 0)."""
    d2 = a @ b.T  # in place from here on: one [len(a), len(b)] buffer
    return d2.mul_(-2.0).add_((a * a).sum(1, keepdim=True)).add_(b_sq[None, :]).clamp_min_(0.0)


def median_bandwidth(x, y, max_samples: int = 4000, seed: int = 0, device=None) -> float:
    """Median pairwise Euclidean distance of the pooled sample (off-diagonal pairs i < j).

    Args:
        x: ``[n, d]``. y: ``[m, d]``.
        max_samples: above this many pooled points the median is taken over a random subset of this size
            (seeded; default 4000, i.e. exact for n + m ≤ 4000), because all N² distances would not fit.
        seed: seed of that subset (default 0). device: torch device (default: the input's).

    Returns:
        σ as a float (> 0; raises ``ValueError`` if all pooled points coincide).
    """
    z = torch.cat([to_tensor(x, device), to_tensor(y, device)])
    return median_pairwise_distance(z, max_samples, seed, "all pooled points coincide")


def median_pairwise_distance(z: torch.Tensor, max_samples: int = 4000, seed: int = 0,
                             what: str = "all rows coincide") -> float:
    """Median Euclidean distance over the pairs i < j of the rows of ``z`` [N, d] (NumPy median convention).

    Above ``max_samples`` rows a seeded random subset of that size is used. ``ValueError`` naming ``what``
    when the median is 0.
    """
    if z.shape[0] > max_samples:
        gen = torch.Generator().manual_seed(int(seed))
        z = z[torch.randperm(z.shape[0], generator=gen)[:max_samples].to(z.device)]
    d2 = _sq_dists(z, z, (z * z).sum(1))
    iu = torch.triu_indices(z.shape[0], z.shape[0], offset=1, device=z.device)
    # torch.median returns the lower middle value; use the NumPy convention (mean of the two middles)
    med = float(np.median(d2[iu[0], iu[1]].sqrt().cpu().numpy()))
    if not med > 0:
        raise ValueError(f"median pairwise distance is 0 ({what}); pass a float bandwidth")
    return med


def blockwise_mmd2(
    x: torch.Tensor,
    y: torch.Tensor,
    sigmas: tuple[float, ...],
    membership: torch.Tensor | None = None,
    block_size: int = 1024,
    perm_block: int = 256,
) -> torch.Tensor:
    """Unbiased MMD² per kernel for the observed split and for permuted splits, blockwise.

    Args:
        x: ``[n, d]``. y: ``[m, d]`` (same device and dtype).
        sigmas: Gaussian bandwidths σ_k.
        membership: optional uint8 ``[N, P]`` (N = n + m), column p marking the n rows of the first sample
            in split p; ``None`` means only the observed split (first n rows).
        block_size: kernel rows per block. perm_block: membership columns per matrix product.

    Returns:
        ``[P, K]`` tensor (``[1, K]`` when ``membership`` is None): MMD² per split and per kernel.
    """
    if block_size < 1 or perm_block < 1:
        raise ValueError(f"block_size and perm_block must be >= 1, got {block_size}, {perm_block}")
    n, m = x.shape[0], y.shape[0]
    z = torch.cat([x, y])
    total = n + m
    if membership is None:
        membership = torch.zeros(total, 1, dtype=torch.uint8)
        membership[:n, 0] = 1
    membership = membership.to(z.device)  # uint8 [N, P], moved once
    n_splits = membership.shape[1]
    z_sq = (z * z).sum(1)
    gammas = [1.0 / (2.0 * s * s) for s in sigmas]
    quad = torch.zeros(n_splits, len(sigmas), dtype=z.dtype, device=z.device)  # A = uᵀK₀u
    row_sums = torch.zeros(total, len(sigmas), dtype=z.dtype, device=z.device)  # r = K₀1
    for start in range(0, total, block_size):
        stop = min(start + block_size, total)
        d2 = _sq_dists(z[start:stop], z, z_sq)  # [b, N]
        rows = torch.arange(stop - start, device=z.device)
        for k, g in enumerate(gammas):
            kb = torch.mul(d2, -g).exp_()
            kb[rows, rows + start] = 0.0  # K₀: drop the diagonal
            row_sums[start:stop, k] = kb.sum(1)
            for p0 in range(0, n_splits, perm_block):
                u = membership[:, p0 : p0 + perm_block].to(device=z.device, dtype=z.dtype)  # [N, Pb]
                quad[p0 : p0 + perm_block, k] += ((kb @ u) * u[start:stop]).sum(0)
    total_sum = row_sums.sum(0)  # T = 1ᵀK₀1, [K]
    ur = torch.cat(  # uᵀr, [P, K]
        [
            membership[:, p0 : p0 + perm_block].to(device=z.device, dtype=z.dtype).T @ row_sums
            for p0 in range(0, n_splits, perm_block)
        ]
    )
    s_xx = quad
    s_xy = ur - quad
    s_yy = total_sum[None, :] - s_xx - 2.0 * s_xy
    return s_xx / (n * (n - 1)) + s_yy / (m * (m - 1)) - 2.0 * s_xy / (n * m)


@dataclass(frozen=True)
class MMDTestResult:
    """Result of :func:`mmd2_test`.

    Attributes:
        statistic: observed unbiased MMD² (sum over the kernels if several bandwidths).
        p_value: permutation p-value (1 + #{perm ≥ obs}) / (1 + P).
        bandwidth: the σ value(s) used (tuple of floats).
        n_permutations: P.
    """

    statistic: float
    p_value: float
    bandwidth: tuple[float, ...]
    n_permutations: int


def _prepare(x, y, standardize: bool, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    xt, yt = to_tensor(x, device, dtype), to_tensor(y, device, dtype)
    if xt.ndim != 2 or yt.ndim != 2:
        raise ValueError(f"x and y must be 2-D [n, d] and [m, d], got shapes {tuple(xt.shape)} and {tuple(yt.shape)}")
    if xt.shape[1] != yt.shape[1]:
        raise ValueError(f"x and y must have the same feature dimension, got {xt.shape[1]} and {yt.shape[1]}")
    if xt.shape[0] < 2 or yt.shape[0] < 2:
        raise ValueError(f"need at least 2 samples on each side, got n={xt.shape[0]}, m={yt.shape[0]}")
    if not (torch.isfinite(xt).all() and torch.isfinite(yt).all()):
        raise ValueError("x and y must be finite (found NaN or inf)")
    if standardize:
        z = torch.cat([xt, yt])
        mean, std = z.mean(0), z.std(0)
        std = torch.where(std > 0, std, torch.ones_like(std))
        xt, yt = (xt - mean) / std, (yt - mean) / std
    return xt, yt


def _sigmas(bandwidth: BandwidthSpec, x: torch.Tensor, y: torch.Tensor, seed: int) -> tuple[float, ...]:
    if isinstance(bandwidth, str):
        if bandwidth != "median":
            raise ValueError(f"bandwidth must be 'median', a positive float or a sequence of them, got {bandwidth!r}")
        return (median_bandwidth(x, y, seed=seed),)
    values = (float(bandwidth),) if np.isscalar(bandwidth) else tuple(float(b) for b in bandwidth)
    if not values or any(not np.isfinite(v) or v <= 0 for v in values):
        raise ValueError(f"bandwidth values must be positive and finite, got {bandwidth!r}")
    return values


def mmd2(
    x,
    y,
    bandwidth: BandwidthSpec = "median",
    standardize: bool = False,
    block_size: int = 1024,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> float:
    """Unbiased MMD² between two samples with a Gaussian kernel.

    Args:
        x: first sample ``[n, d]`` (NumPy array or torch tensor).
        y: second sample ``[m, d]``; ``m`` may differ from ``n`` (both ≥ 2).
        bandwidth: ``"median"`` (default; σ = median pairwise distance of the pooled sample, exact up to
            4000 pooled points, else over a fixed seeded subset of 4000, see :func:`median_bandwidth`), a
            positive float σ, or a sequence of floats (the kernels are summed).
        standardize: z-score every feature with the pooled mean and std first (default False).
        block_size: rows of the kernel matrix held at once (default 1024).
        device: torch device for the computation (default: the device of ``x`` if a tensor, else CPU).
        dtype: computation dtype (default float64).

    Returns:
        The statistic as a Python float (can be slightly negative: the estimator is unbiased).
    """
    xt, yt = _prepare(x, y, standardize, device, dtype)
    sig = _sigmas(bandwidth, xt, yt, seed=0)
    stats = blockwise_mmd2(xt, yt, sig, membership=None, block_size=block_size)
    return float(stats[0].sum())


def mmd2_multi(
    x,
    y,
    multipliers: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0),
    standardize: bool = False,
    block_size: int = 1024,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> dict:
    """MMD² at several multiples of the median bandwidth, from one pass over the kernel blocks.

    Args:
        x: ``[n, d]``. y: ``[m, d]``.
        multipliers: σ = multiplier × median distance (default 0.25, 0.5, 1, 2, 4).
        standardize, block_size, device, dtype: as in :func:`mmd2`.

    Returns:
        ``{multiplier: MMD², ..., "sum": Σ MMD², "median_bandwidth": σ_median}``; ``"sum"`` equals the
        MMD² of the summed kernel because the estimator is linear in the kernel.
    """
    if len(multipliers) == 0 or any(m <= 0 for m in multipliers):
        raise ValueError(f"multipliers must be a non-empty sequence of positive floats, got {multipliers!r}")
    xt, yt = _prepare(x, y, standardize, device, dtype)
    med = median_bandwidth(xt, yt)
    stats = blockwise_mmd2(xt, yt, tuple(m * med for m in multipliers), membership=None, block_size=block_size)
    out: dict = {float(m): float(s) for m, s in zip(multipliers, stats[0].tolist())}
    out["sum"] = float(stats[0].sum())
    out["median_bandwidth"] = med
    return out


def mmd2_test(
    x,
    y,
    n_permutations: int = 1000,
    seed: int = 0,
    bandwidth: BandwidthSpec = "median",
    block_size: int = 1024,
    perm_block: int = 256,
    standardize: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> MMDTestResult:
    """Permutation test of H0: x and y come from one distribution, with the unbiased MMD² statistic.

    The kernel matrix is computed blockwise once; all permutations are evaluated as matrix products
    (see the module docstring). The bandwidth is fixed from the observed pooled sample (it is invariant to
    the permutation, because the pooled sample is).

    Args:
        x: ``[n, d]``. y: ``[m, d]``.
        n_permutations: P, the number of random relabellings (default 1000; ≥ 1).
        seed: seed of the permutations (default 0).
        bandwidth: as in :func:`mmd2` (default ``"median"``).
        block_size: kernel rows per block (default 1024).
        perm_block: permutations evaluated per matrix product (default 256).
        standardize, device, dtype: as in :func:`mmd2`.

    Returns:
        :class:`MMDTestResult` (statistic, p_value, bandwidth, n_permutations).
    """
    if int(n_permutations) < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    xt, yt = _prepare(x, y, standardize, device, dtype)
    sig = _sigmas(bandwidth, xt, yt, seed=0)
    n, total = xt.shape[0], xt.shape[0] + yt.shape[0]
    gen = torch.Generator().manual_seed(int(seed))
    membership = torch.zeros(total, n_permutations + 1, dtype=torch.uint8)  # column 0 = observed split
    membership[:n, 0] = 1
    for p in range(1, n_permutations + 1):
        membership[torch.randperm(total, generator=gen)[:n], p] = 1
    stats = blockwise_mmd2(xt, yt, sig, membership=membership, block_size=block_size, perm_block=perm_block)
    per_perm = stats.sum(dim=1)  # [P + 1]
    observed = float(per_perm[0])
    exceed = int((per_perm[1:] >= observed - 1e-12 * max(1.0, abs(observed))).sum())
    p_value = (1 + exceed) / (1 + n_permutations)
    return MMDTestResult(statistic=observed, p_value=p_value, bandwidth=sig, n_permutations=int(n_permutations))


def mmd2_ci(
    x,
    y,
    method: str = "subset",
    n: int = 100,
    frac: float = 0.5,
    seed: int = 0,
    level: float = 0.95,
    bandwidth: BandwidthSpec = "median",
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[float, float, np.ndarray]:
    """Percentile interval of MMD² over random subsets or bootstrap resamples.

    The bandwidth is fixed from the full pooled sample so that the replicates differ only by sampling.
    ``"subset"`` draws ``frac`` of each sample without replacement (the interval describes the statistic at
    that smaller size, as torchmetrics' KID reports a subset mean ± std); ``"bootstrap"`` resamples each sample
    with replacement at full size (duplicated points enter the off-diagonal sums, so the replicates are biased
    upwards by about E[k(a,a)] / n; read it as a spread, not an unbiased interval).

    Args:
        x: ``[n_x, d]``. y: ``[n_y, d]``.
        method: ``"subset"`` (default) or ``"bootstrap"``.
        n: number of replicates (default 100).
        frac: subset fraction in (0, 1] for ``"subset"`` (default 0.5).
        seed: RNG seed (default 0). level: interval level in (0, 1) (default 0.95).
        bandwidth, device, dtype: as in :func:`mmd2`.

    Returns:
        ``(lo, hi, samples)`` with ``samples`` a float array ``[n]``.
    """
    if method not in ("subset", "bootstrap"):
        raise ValueError(f"method must be one of ('subset', 'bootstrap'), got {method!r}")
    if not 0 < frac <= 1 or not 0 < level < 1 or n < 1:
        raise ValueError(f"need 0 < frac <= 1, 0 < level < 1 and n >= 1, got frac={frac}, level={level}, n={n}")
    xt, yt = _prepare(x, y, False, device, dtype)
    sig = _sigmas(bandwidth, xt, yt, seed=0)
    rng = np.random.default_rng(seed)
    nx, ny = xt.shape[0], yt.shape[0]
    samples = np.empty(n)
    for i in range(n):
        if method == "subset":
            ix = rng.choice(nx, max(2, int(round(frac * nx))), replace=False)
            iy = rng.choice(ny, max(2, int(round(frac * ny))), replace=False)
        else:
            ix, iy = rng.integers(0, nx, nx), rng.integers(0, ny, ny)
        ix_t = torch.as_tensor(ix, device=xt.device)
        iy_t = torch.as_tensor(iy, device=yt.device)
        samples[i] = float(blockwise_mmd2(xt[ix_t], yt[iy_t], sig, membership=None)[0].sum())
    alpha = (1 - level) / 2
    lo, hi = np.quantile(samples, [alpha, 1 - alpha])
    return float(lo), float(hi), samples
