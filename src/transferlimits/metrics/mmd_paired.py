"""Paired MMD²: before/after features of the same images (or tokens), its permutation test and CIs.

Rows ``x[i]`` (pretrained encoder) and ``y[i]`` (fine-tuned encoder) come from the same input, so they are
dependent; the two-sample estimator of :mod:`.mmd` is biased for such data and its label permutation is not
a valid null. With a Gaussian kernel k(a, b) = exp(−‖a − b‖² / (2σ²)) and feature map φ, let
Dᵢ = φ(xᵢ) − φ(yᵢ) and
    Hᵢⱼ = ⟨Dᵢ, Dⱼ⟩ = k(xᵢ,xⱼ) + k(yᵢ,yⱼ) − k(xᵢ,yⱼ) − k(xⱼ,yᵢ),     MMD²_paired = Σ_{i≠j} Hᵢⱼ / (n(n−1)).
For independent pairs i ≠ j, E[Hᵢⱼ] = ‖E φ(x) − E φ(y)‖² = MMD²(P, Q), however strongly xᵢ and yᵢ depend.

Permutations as a quadratic form: swapping xᵢ ↔ yᵢ turns Dᵢ into −Dᵢ. With sᵢ = −1 for a swapped pair and +1
otherwise, Hᵢⱼ becomes sᵢsⱼHᵢⱼ, so with H₀ = H with its diagonal set to 0 the swapped statistic is
    T(s) = sᵀ H₀ s / (n(n−1)),     T(1) = observed,  T(s) = T(−s),  mean of T over all s = 0.
All permutations are therefore one matrix product S ↦ Σ (S ⊙ H₀S) over a sign matrix S ``[n, P]``.

Clustering (tokens within images): rows carry a group label g(i) (the image). Only pairs of rows from
different groups enter (pairs within an image are not independent): with Eᵢ_g = 1[g(i) = g] the group
matrix is H_G = Eᵀ H E with its diagonal set to 0 (``[G, G]``), the statistic is 1ᵀH_G1 / (N² − Σ_g n_g²),
a permutation flips whole groups (s ∈ {±1}^G) and a bootstrap resamples groups. The per-image case is the
special case of one row per group. Everything after the single kernel pass works on the cached ``[G, G]``
matrix, so statistic, permutation test and CI share one kernel computation (:class:`PairedKernel`).

Bootstrap with duplicates: a replicate draws groups with replacement (counts c_g); the statistic is the
weighted U-statistic Σ_{g≠h} c_g c_h H_G[g,h] / Σ_{g≠h} c_g c_h n_g n_h. Two copies of the same original
pair are *not* counted as a distinct pair (that would add ‖Dᵢ‖² terms and bias the replicates upwards).
The bandwidth is held fixed (from the observed x) across permutations and replicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .mmd_kernel import BandwidthSpec, _sq_dists, median_pairwise_distance, to_tensor

__all__ = ["MULTIPLIERS", "PairedKernel", "PairedMMDResult", "median_sigma", "mmd2_paired", "mmd2_paired_ci",
           "mmd2_paired_clustered", "mmd2_paired_multi", "mmd2_paired_test"]

MULTIPLIERS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)


def median_sigma(x, max_samples: int = 4000, seed: int = 0) -> float:
    """Median pairwise Euclidean distance between the rows of ``x`` only (pairs i < j).

    Args:
        x: pretrained features ``[n, d]`` (n ≥ 2). max_samples: above this many rows a seeded random subset
            of this size is used (default 4000). seed: seed of that subset (default 0).

    Returns:
        σ > 0; ``ValueError`` if all rows of ``x`` coincide.
    """
    xt = to_tensor(x)
    if xt.ndim != 2 or xt.shape[0] < 2:
        raise ValueError(f"x must be [n, d] with n >= 2, got shape {tuple(xt.shape)}")
    return median_pairwise_distance(xt, max_samples, seed, "all rows of x coincide")


def _resolve_sigmas(bandwidth: BandwidthSpec, x: torch.Tensor, sigma: float | None) -> tuple[float, ...]:
    if isinstance(bandwidth, str):
        if bandwidth not in ("median", "multi"):
            raise ValueError(f"bandwidth must be 'median', 'multi', a positive float or a sequence, got {bandwidth!r}")
        med = float(sigma) if sigma is not None else median_sigma(x)
        if not (np.isfinite(med) and med > 0):  # only reachable through a bad `sigma`
            raise ValueError(f"sigma must be a positive finite float, got {sigma!r}")
        return (med,) if bandwidth == "median" else tuple(m * med for m in MULTIPLIERS)
    values = (float(bandwidth),) if np.isscalar(bandwidth) else tuple(float(b) for b in bandwidth)
    if not values or any(not np.isfinite(v) or v <= 0 for v in values):
        raise ValueError(f"bandwidth values must be positive and finite, got {bandwidth!r}")
    return values


@dataclass(frozen=True)
class PairedMMDResult:
    """Paired MMD² with its permutation p-value and (optionally) a bootstrap CI.

    Attributes:
        mmd2: observed statistic (sum over the kernels if several σ). p_value: (1 + #{T* ≥ T}) / (1 + P),
            ``None`` if no permutations were run. bandwidth: σ value(s). n_permutations: P. n: rows (pairs or
            tokens). n_groups: independent units (= n for per-image data, images for tokens). ci_low, ci_high:
            percentile CI (``None`` without bootstrap). n_boot: replicates. level: CI level.
    """

    mmd2: float
    p_value: float | None
    bandwidth: tuple[float, ...]
    n_permutations: int
    n: int
    n_groups: int
    ci_low: float | None = None
    ci_high: float | None = None
    n_boot: int = 0
    level: float | None = None

    def to_dict(self) -> dict:
        """Plain dict (tuples become lists) for metrics.json."""
        out = asdict(self)
        out["bandwidth"] = list(self.bandwidth)
        return out


class PairedKernel:
    """One blockwise kernel pass over paired rows, cached as the group matrix H_G ``[G, G]``.

    Args:
        x: pretrained features ``[n, d]``. y: fine-tuned features of the same inputs ``[n, d]``.
        bandwidth: ``"median"`` (σ = median pairwise distance of the rows of x only), ``"multi"`` (sum of
            kernels at :data:`MULTIPLIERS` × that σ), a positive float σ, or a sequence of σ (kernels summed).
        groups: optional ``[n]`` labels (image of each token); default: every row its own group.
        sigma: precomputed median σ of x, reused instead of recomputing it (for "median" / "multi").
        block_size: kernel rows per block (default 1024). device: torch device (default: x's, else CPU).
        dtype: computation dtype (default float64).

    Attributes:
        sigmas, n, n_groups, group_sizes (``[G]``), n_pairs (N² − Σ n_g²), per_sigma (statistic per σ),
        h_group (``[G, G]`` tensor, G² floats of memory: fine for images or for tokens grouped by image).
    """

    def __init__(self, x, y, bandwidth: BandwidthSpec = "median", groups=None, sigma: float | None = None,
                 block_size: int = 1024, device=None, dtype: torch.dtype = torch.float64):
        xt, yt = to_tensor(x, device, dtype), to_tensor(y, device, dtype)
        if xt.ndim != 2 or xt.shape != yt.shape or xt.shape[0] < 2:
            raise ValueError(f"x and y must be paired [n, d] arrays of one shape with n >= 2, "
                             f"got {tuple(xt.shape)} and {tuple(yt.shape)}")
        if not (torch.isfinite(xt).all() and torch.isfinite(yt).all()):
            raise ValueError("x and y must be finite (found NaN or inf)")
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        n = xt.shape[0]
        codes = np.arange(n) if groups is None else np.unique(np.asarray(groups).ravel(), return_inverse=True)[1].ravel()
        if codes.shape[0] != n:
            raise ValueError(f"groups must have one label per row ({n}), got {codes.shape[0]}")
        self.n, self.n_groups = n, int(codes.max()) + 1
        if self.n_groups < 2:
            raise ValueError("groups must contain at least 2 distinct groups")
        self.group_sizes = np.bincount(codes, minlength=self.n_groups).astype(np.float64)
        self.n_pairs = float(n) ** 2 - float((self.group_sizes**2).sum())  # ordered row pairs across groups
        self.sigmas = _resolve_sigmas(bandwidth, xt, sigma)
        self.h_group, per_sigma = self._kernel_pass(xt, yt, torch.as_tensor(codes, device=xt.device), block_size)
        self.per_sigma = tuple(float(v) / self.n_pairs for v in per_sigma)

    def _kernel_pass(self, xt, yt, codes, block_size) -> tuple[torch.Tensor, list[float]]:
        """Accumulate H_G = Eᵀ H E (diagonal 0) for the summed kernel, and 1ᵀH_G1 per σ.

        Each block of rows keeps one ``[b, n]`` distance and one kernel buffer plus ``K`` group sums
        ``[b, G]``; ``b`` is reduced so that ``b · n`` stays below 2²⁴ entries.
        """
        n, n_g, kw = self.n, self.n_groups, {"dtype": xt.dtype, "device": xt.device}
        block = max(1, min(block_size, 2**24 // n))
        x_sq, y_sq = (xt * xt).sum(1), (yt * yt).sum(1)
        h_group = torch.zeros(n_g, n_g, **kw)
        per_sigma = [0.0] * len(self.sigmas)
        gammas = [1.0 / (2.0 * s * s) for s in self.sigmas]
        for start in range(0, n, block):
            stop = min(start + block, n)
            xb, yb = xt[start:stop], yt[start:stop]
            acc = [torch.zeros(stop - start, n_g, **kw) for _ in gammas]  # row block of H E, per σ
            for sign, (a, b, b_sq) in zip((1.0, 1.0, -1.0, -1.0),
                                          ((xb, xt, x_sq), (yb, yt, y_sq), (xb, yt, y_sq), (yb, xt, x_sq))):
                d2 = _sq_dists(a, b, b_sq)  # [b, n]: k(x_i,x_j), k(y_i,y_j), k(x_i,y_j), k(y_i,x_j)
                for k, g in enumerate(gammas):
                    acc[k].index_add_(1, codes, torch.mul(d2, -g).exp_(), alpha=sign)
            own = codes[start:stop]
            rows = torch.arange(stop - start, device=xt.device)
            for k, a in enumerate(acc):
                per_sigma[k] += float(a.sum() - a[rows, own].sum())
            h_group.index_add_(0, own, sum(acc))
        h_group.fill_diagonal_(0.0)  # pairs within one group (incl. i = j) never enter
        return h_group, per_sigma

    def quad_forms(self, weights: np.ndarray) -> np.ndarray:
        """wᵀ H_G w for each column of ``weights`` ``[G, P]`` (group-level signs or counts) -> ``[P]``."""
        w = torch.as_tensor(np.asarray(weights, dtype=np.float64), dtype=self.h_group.dtype, device=self.h_group.device)
        return ((self.h_group @ w) * w).sum(0).cpu().numpy()

    def statistic(self) -> float:
        """Observed paired MMD² (summed kernel)."""
        return float(sum(self.per_sigma))

    def permutation_null(self, n_permutations: int, seed: int = 0) -> np.ndarray:
        """Statistics ``[P]`` under P random group-wise swaps (each group flipped with probability ½)."""
        if int(n_permutations) < 1:
            raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
        signs = np.random.default_rng(seed).integers(0, 2, size=(self.n_groups, int(n_permutations))) * 2.0 - 1.0
        return self.quad_forms(signs) / self.n_pairs

    def bootstrap(self, n_boot: int, seed: int = 0) -> np.ndarray:
        """Statistics ``[B]`` of B group resamples with replacement (weighted U-statistic, see module doc)."""
        if int(n_boot) < 1:
            raise ValueError(f"n_boot must be >= 1, got {n_boot}")
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, self.n_groups, size=(int(n_boot), self.n_groups))
        counts = np.stack([np.bincount(d, minlength=self.n_groups) for d in draws], axis=1).astype(np.float64)
        rows = counts * self.group_sizes[:, None]  # rows contributed by each group in each replicate
        denom = rows.sum(0) ** 2 - (rows**2).sum(0)
        return self.quad_forms(counts) / denom

    def ci(self, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float, np.ndarray]:
        """Percentile interval ``(lo, hi, replicates [B])`` of :meth:`bootstrap`."""
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level}")
        samples = self.bootstrap(n_boot, seed)
        lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2])
        return float(lo), float(hi), samples

    def test(self, n_permutations: int = 1000, seed: int = 0, n_boot: int = 0, level: float = 0.95) -> PairedMMDResult:
        """Statistic, permutation p-value and (``n_boot`` > 0) percentile CI, all from the cached H_G."""
        obs, p_value = self.statistic(), None
        if n_permutations > 0:
            null = self.permutation_null(n_permutations, seed)
            p_value = float((1 + np.sum(null >= obs - 1e-12 * max(1.0, abs(obs)))) / (1 + n_permutations))
        lo, hi = self.ci(n_boot, level, seed)[:2] if n_boot > 0 else (None, None)
        return PairedMMDResult(mmd2=obs, p_value=p_value, bandwidth=self.sigmas, n_permutations=int(n_permutations),
                               n=self.n, n_groups=self.n_groups, ci_low=lo, ci_high=hi, n_boot=int(n_boot),
                               level=float(level) if n_boot > 0 else None)


def mmd2_paired(x, y, bandwidth: BandwidthSpec = "median", sigma: float | None = None, **kw) -> float:
    """Paired MMD² U-statistic Σ_{i≠j} Hᵢⱼ / (n(n−1)) (module docstring).

    Args:
        x: pretrained features ``[n, d]``. y: fine-tuned features of the same inputs ``[n, d]``.
        bandwidth, sigma: as in :class:`PairedKernel`. kw: ``block_size``, ``device``, ``dtype``.

    Returns:
        The statistic (unbiased; can be slightly negative).
    """
    return PairedKernel(x, y, bandwidth, sigma=sigma, **kw).statistic()


def mmd2_paired_multi(x, y, multipliers: Sequence[float] = MULTIPLIERS, sigma: float | None = None, **kw) -> dict:
    """Paired MMD² at multiples of the median σ of x, from one kernel pass.

    Args:
        x: ``[n, d]``. y: ``[n, d]``. multipliers: σ = m × median σ of x (default 0.25, 0.5, 1, 2, 4).
        sigma: precomputed median σ of x. kw: as in :func:`mmd2_paired`.

    Returns:
        ``{multiplier: MMD², ..., "sum": Σ, "median_bandwidth": σ}``.
    """
    if len(multipliers) == 0 or any(m <= 0 for m in multipliers):
        raise ValueError(f"multipliers must be a non-empty sequence of positive floats, got {multipliers!r}")
    med = float(sigma) if sigma is not None else median_sigma(to_tensor(x))
    pk = PairedKernel(x, y, [m * med for m in multipliers], **kw)
    return {**{float(m): v for m, v in zip(multipliers, pk.per_sigma)}, "sum": pk.statistic(), "median_bandwidth": med}


def mmd2_paired_test(x, y, n_permutations: int = 1000, seed: int = 0, bandwidth: BandwidthSpec = "median",
                     sigma: float | None = None, n_boot: int = 0, level: float = 0.95, **kw) -> PairedMMDResult:
    """Permutation test of H0: (xᵢ, yᵢ) is exchangeable within each pair, by random swaps xᵢ ↔ yᵢ.

    Args:
        x: ``[n, d]``. y: ``[n, d]``. n_permutations: P (default 1000). seed: RNG seed (default 0).
        bandwidth, sigma: as in :class:`PairedKernel`. n_boot: optional pair-bootstrap replicates for a CI
            from the same kernel pass (default 0). level: CI level. kw: ``block_size``, ``device``, ``dtype``.

    Returns:
        :class:`PairedMMDResult`; p = (1 + #{T* ≥ T}) / (1 + P).
    """
    return PairedKernel(x, y, bandwidth, sigma=sigma, **kw).test(n_permutations, seed, n_boot, level)


def mmd2_paired_ci(x, y, n_boot: int = 1000, level: float = 0.95, seed: int = 0, bandwidth: BandwidthSpec = "median",
                   sigma: float | None = None, **kw) -> tuple[float, float, np.ndarray]:
    """Percentile CI of the paired MMD² by resampling pairs (kernel computed once).

    Args:
        x: ``[n, d]``. y: ``[n, d]``. n_boot: replicates (default 1000). level: in (0, 1). seed: RNG seed.
        bandwidth, sigma, kw: as in :func:`mmd2_paired_test`.

    Returns:
        ``(lo, hi, samples [n_boot])``.
    """
    return PairedKernel(x, y, bandwidth, sigma=sigma, **kw).ci(n_boot, level, seed)


def mmd2_paired_clustered(x, y, groups, n_permutations: int = 1000, n_boot: int = 1000, level: float = 0.95,
                          seed: int = 0, bandwidth: BandwidthSpec = "median", **kw) -> PairedMMDResult:
    """Token/voxel-level paired MMD²: pairs of tokens from different images, images flipped and resampled.

    Args:
        x: pretrained token features ``[N, d]``. y: fine-tuned features of the same tokens ``[N, d]``.
        groups: image of each token ``[N]`` (≥ 2 images). n_permutations: image-wise swaps (default 1000).
        n_boot: image resamples for the CI (default 1000; 0 = none). level, seed, bandwidth: as in
            :func:`mmd2_paired_test` (σ "median" is over the tokens of x, subset to 4000 rows).
        kw: ``sigma`` (a precomputed median σ of x), ``block_size``, ``device``, ``dtype``
            (see :class:`PairedKernel`).

    Returns:
        :class:`PairedMMDResult` with ``n`` = tokens and ``n_groups`` = images.
    """
    return PairedKernel(x, y, bandwidth, groups=groups, **kw).test(n_permutations, seed, n_boot, level)
