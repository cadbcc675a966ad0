"""Blockwise Gaussian-kernel sums for the unbiased MMD² (the engine of :mod:`.mmd` and :mod:`.mmd_paired`).

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

import numpy as np
import torch

__all__ = ["BandwidthSpec", "to_tensor", "median_bandwidth", "median_pairwise_distance", "blockwise_mmd2"]

BandwidthSpec = str | float | Sequence[float]


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
