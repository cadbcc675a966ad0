"""Unbiased MMD² with a Gaussian kernel, its permutation test and confidence intervals.

The statistic (Gretton et al., JMLR 2012, eq. 3) for samples ``x`` ``[n, d]`` and ``y`` ``[m, d]`` is

    MMD²_u = Σ_{i≠j} k(x_i, x_j) / (n(n−1)) + Σ_{i≠j} k(y_i, y_j) / (m(m−1)) − 2 Σ_{i,j} k(x_i, y_j) / (nm)

with k(a, b) = exp(−‖a − b‖² / (2σ²)). ``bandwidth="median"`` sets σ to the median pairwise Euclidean
distance of the pooled sample (off-diagonal pairs); a float sets σ; a sequence of floats sums the kernels.

The kernel sums are computed blockwise (:mod:`.mmd_kernel`): the kernel matrix is never stored, and a
permutation test evaluates all permutations from one pass. The permutation p-value is
p = (1 + #{perm ≥ observed}) / (1 + P) (Phipson & Smyth 2010).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from .mmd_kernel import (
    BandwidthSpec,
    blockwise_mmd2,
    median_bandwidth,
    median_pairwise_distance,
    to_tensor,
)

__all__ = [
    "MMDConfig",
    "MMDTestResult",
    "mmd2",
    "mmd2_test",
    "mmd2_ci",
    "mmd2_multi",
    "median_bandwidth",
    "blockwise_mmd2",
    "median_pairwise_distance",
    "to_tensor",
]

@dataclass(frozen=True)
class MMDConfig:
    """How an MMD² is computed; each field may also be passed to the functions of this module as a keyword.

    Attributes:
        bandwidth: ``"median"`` (default; σ = median pairwise distance of the pooled sample, exact up to 4000
            pooled points, else over a fixed seeded subset of 4000, see :func:`median_bandwidth`), a positive
            float σ, or a sequence of floats (the kernels are summed). :func:`mmd2_multi` sets its own.
        block_size: rows of the kernel matrix held at once (default 1024).
        perm_block: permutations evaluated per matrix product (default 256; :func:`mmd2_test` only).
        standardize: z-score every feature with the pooled mean and std first (default False).
        device: torch device for the computation (default: the device of ``x`` if a tensor, else CPU).
        dtype: computation dtype (default float64).
    """

    bandwidth: BandwidthSpec = "median"
    block_size: int = 1024
    perm_block: int = 256
    standardize: bool = False
    device: torch.device | str | None = None
    dtype: torch.dtype = torch.float64


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


def _config(config: MMDConfig | None, keywords: dict[str, Any]) -> MMDConfig:
    """``config`` (default: the defaults) with the keywords applied (TypeError for a keyword that is no field)."""
    return replace(config if config is not None else MMDConfig(), **keywords)


def _inputs(x, y, config: MMDConfig) -> tuple[torch.Tensor, torch.Tensor, tuple[float, ...]]:
    """(x, y) as checked tensors of ``config``'s device and dtype, and the bandwidths from the full sample."""
    xt, yt = _prepare(x, y, config.standardize, config.device, config.dtype)
    return xt, yt, _sigmas(config.bandwidth, xt, yt, seed=0)


def mmd2(x, y, config: MMDConfig | None = None, **keywords: Any) -> float:
    """Unbiased MMD² between two samples with a Gaussian kernel.

    Args:
        x: first sample ``[n, d]`` (NumPy array or torch tensor).
        y: second sample ``[m, d]``; ``m`` may differ from ``n`` (both ≥ 2).
        config: :class:`MMDConfig` (bandwidth, block size, standardisation, device, dtype); default: its
            defaults.
        **keywords: fields of :class:`MMDConfig` (override ``config``), e.g. ``bandwidth=0.7``.

    Returns:
        The statistic as a Python float (can be slightly negative: the estimator is unbiased).

    Raises:
        ValueError: bad shapes, non-finite values or a bad bandwidth.
        TypeError: a keyword that is no field of :class:`MMDConfig`.
    """
    config = _config(config, keywords)
    xt, yt, sig = _inputs(x, y, config)
    stats = blockwise_mmd2(xt, yt, sig, membership=None, block_size=config.block_size)
    return float(stats[0].sum())


def mmd2_multi(x, y, multipliers: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0), config: MMDConfig | None = None,
               **keywords: Any) -> dict:
    """MMD² at several multiples of the median bandwidth, from one pass over the kernel blocks.

    Args:
        x: ``[n, d]``. y: ``[m, d]``.
        multipliers: σ = multiplier × median distance (default 0.25, 0.5, 1, 2, 4).
        config, **keywords: as in :func:`mmd2` (``bandwidth`` must stay ``"median"``).

    Returns:
        ``{multiplier: MMD², ..., "sum": Σ MMD², "median_bandwidth": σ_median}``; ``"sum"`` equals the
        MMD² of the summed kernel because the estimator is linear in the kernel.

    Raises:
        ValueError: empty or non-positive multipliers, a bandwidth other than ``"median"``, bad inputs.
    """
    config = _config(config, keywords)
    if len(multipliers) == 0 or any(m <= 0 for m in multipliers):
        raise ValueError(f"multipliers must be a non-empty sequence of positive floats, got {multipliers!r}")
    if not isinstance(config.bandwidth, str) or config.bandwidth != "median":
        raise ValueError(f"mmd2_multi sets its bandwidths from the median; got bandwidth={config.bandwidth!r}")
    xt, yt = _prepare(x, y, config.standardize, config.device, config.dtype)
    med = median_bandwidth(xt, yt)
    stats = blockwise_mmd2(xt, yt, tuple(m * med for m in multipliers), membership=None,
                           block_size=config.block_size)
    out: dict = {float(m): float(s) for m, s in zip(multipliers, stats[0].tolist())}
    out["sum"] = float(stats[0].sum())
    out["median_bandwidth"] = med
    return out


def mmd2_test(x, y, n_permutations: int = 1000, seed: int = 0, config: MMDConfig | None = None,
              **keywords: Any) -> MMDTestResult:
    """Permutation test of H0: x and y come from one distribution, with the unbiased MMD² statistic.

    The kernel matrix is computed blockwise once; all permutations are evaluated as matrix products
    (see :mod:`.mmd_kernel`). The bandwidth is fixed from the observed pooled sample (it is invariant to
    the permutation, because the pooled sample is).

    Args:
        x: ``[n, d]``. y: ``[m, d]``.
        n_permutations: P, the number of random relabellings (default 1000; ≥ 1).
        seed: seed of the permutations (default 0).
        config, **keywords: as in :func:`mmd2` (here ``perm_block`` counts too).

    Returns:
        :class:`MMDTestResult` (statistic, p_value, bandwidth, n_permutations).

    Raises:
        ValueError: ``n_permutations`` < 1 or bad inputs.
    """
    config = _config(config, keywords)
    if int(n_permutations) < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    xt, yt, sig = _inputs(x, y, config)
    n, total = xt.shape[0], xt.shape[0] + yt.shape[0]
    gen = torch.Generator().manual_seed(int(seed))
    membership = torch.zeros(total, n_permutations + 1, dtype=torch.uint8)  # column 0 = observed split
    membership[:n, 0] = 1
    for p in range(1, n_permutations + 1):
        membership[torch.randperm(total, generator=gen)[:n], p] = 1
    stats = blockwise_mmd2(xt, yt, sig, membership=membership, block_size=config.block_size,
                           perm_block=config.perm_block)
    per_perm = stats.sum(dim=1)  # [P + 1]
    observed = float(per_perm[0])
    exceed = int((per_perm[1:] >= observed - 1e-12 * max(1.0, abs(observed))).sum())
    p_value = (1 + exceed) / (1 + n_permutations)
    return MMDTestResult(statistic=observed, p_value=p_value, bandwidth=sig, n_permutations=int(n_permutations))


def _replicate(xt: torch.Tensor, yt: torch.Tensor, method: str, frac: float, rng: np.random.Generator
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """One subset (``frac`` of each sample, without replacement) or bootstrap resample of (xt, yt)."""
    nx, ny = xt.shape[0], yt.shape[0]
    if method == "subset":
        ix = rng.choice(nx, max(2, int(round(frac * nx))), replace=False)
        iy = rng.choice(ny, max(2, int(round(frac * ny))), replace=False)
    else:
        ix, iy = rng.integers(0, nx, nx), rng.integers(0, ny, ny)
    return xt[torch.as_tensor(ix, device=xt.device)], yt[torch.as_tensor(iy, device=yt.device)]


def mmd2_ci(x, y, method: str = "subset", n: int = 100, frac: float = 0.5, seed: int = 0, level: float = 0.95,
            config: MMDConfig | None = None, **keywords: Any) -> tuple[float, float, np.ndarray]:
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
        config, **keywords: as in :func:`mmd2`.

    Returns:
        ``(lo, hi, samples)`` with ``samples`` a float array ``[n]``.

    Raises:
        ValueError: an unknown method, ``frac``/``level``/``n`` out of range, or bad inputs.
    """
    config = _config(config, keywords)
    if method not in ("subset", "bootstrap"):
        raise ValueError(f"method must be one of ('subset', 'bootstrap'), got {method!r}")
    if not 0 < frac <= 1 or not 0 < level < 1 or n < 1:
        raise ValueError(f"need 0 < frac <= 1, 0 < level < 1 and n >= 1, got frac={frac}, level={level}, n={n}")
    xt, yt, sig = _inputs(x, y, config)
    rng = np.random.default_rng(seed)
    samples = np.empty(n)
    for i in range(n):
        xs, ys = _replicate(xt, yt, method, frac, rng)
        samples[i] = float(blockwise_mmd2(xs, ys, sig, membership=None, block_size=config.block_size)[0].sum())
    alpha = (1 - level) / 2
    lo, hi = np.quantile(samples, [alpha, 1 - alpha])
    return float(lo), float(hi), samples
