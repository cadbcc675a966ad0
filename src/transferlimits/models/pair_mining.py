"""Label-guided patch-pair mining and the margin-cosine pair loss (ProViCNet's contrastive term).

The label map is cut into cells aligned with the encoder's token grid (ViT: 8 x 8 label pixels
per token at 256 px labels / 32 x 32 tokens; ConvNeXt: the stage-4 cell, e.g. 16^3 voxels).
Per cell we count cancer voxels (classes 2 and 3). Rules (``reference/models.md`` §2.3), with the
thresholds written as fractions of the cell so they scale with its size (62/64 and 2/64 upstream):

- anchor: a cell with >= ``anchor_frac`` cancer;
- positive: a neighbour in the 3^k window (k = 2 or 3 spatial axes) that is also >= ``anchor_frac``;
- negative (``distant_negative=True``): a cell two steps away along each offset axis
  (offsets in {-2, 0, 2}^k) with <= ``neg_frac`` cancer, kept only if the adjacent cell in that
  direction (offset / 2) is also <= ``neg_frac``; with ``distant_negative=False`` the negatives are
  the <= ``neg_frac`` cells of the 3^k window instead.

Pairs are directed (anchor, other); a pair of two anchors appears once from each side, as upstream.
Positives and negatives are each shuffled with the given generator and cut to
``min(#pos, #neg, max_pairs)`` so the two kinds stay balanced.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["cancer_cell_counts", "candidate_pairs", "mine_pairs", "balanced_pair_count", "patch_pair_loss",
           "CANCER_CLASSES"]

#: 4-class label convention: 0 background, 1 normal gland, 2 indolent cancer, 3 csPCa.
CANCER_CLASSES: tuple[int, int] = (2, 3)


def cancer_cell_counts(labels: torch.Tensor, cell: int | tuple[int, ...]) -> torch.Tensor:
    """Count cancer voxels (classes 2 and 3) per cell.

    Args:
        labels: integer label map [H, W] or [D, H, W]; with a tuple ``cell`` of k entries any
            leading dimensions before the last k are kept as batch dimensions.
        cell: cell size, an int (same on every spatial axis; spatial axes = ``labels.ndim``) or a
            tuple per spatial axis. Each spatial size must be a multiple of its cell size.

    Returns:
        int64 counts [..., H/ch, W/cw] (or [..., D/cd, H/ch, W/cw]).
    """
    if isinstance(cell, int):
        cell = (cell,) * labels.ndim
    cell = tuple(int(c) for c in cell)
    k = len(cell)
    if k not in (2, 3) or labels.ndim < k or min(cell) <= 0:
        raise ValueError(
            f"cell={cell} must have 2 or 3 positive entries and labels (shape {tuple(labels.shape)}) "
            "at least that many dimensions"
        )
    spatial = labels.shape[-k:]
    if any(s % c for s, c in zip(spatial, cell)):
        raise ValueError(f"label size {tuple(spatial)} is not a multiple of the cell size {cell}")
    lead = labels.shape[:-k]
    cancer = ((labels == CANCER_CLASSES[0]) | (labels == CANCER_CLASSES[1])).to(torch.int64)
    shape = list(lead)
    for s, c in zip(spatial, cell):
        shape += [s // c, c]
    cancer = cancer.reshape(shape)
    n_lead = len(lead)
    return cancer.sum(dim=tuple(n_lead + 2 * i + 1 for i in range(k)))


def _rows(anchors: np.ndarray, offset_number: int, flat_offset: int) -> np.ndarray:
    """[n, 3] rows (anchor, offset number, other) for anchors sharing one offset."""
    return np.stack([anchors, np.full_like(anchors, offset_number), anchors + flat_offset], axis=1)


def _pair_tensor(rows: list[np.ndarray]) -> torch.Tensor:
    """Concatenate rows, order them anchor-major then by offset, keep (anchor, other)."""
    rows = np.concatenate(rows, axis=0)
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    return torch.from_numpy(np.ascontiguousarray(rows[:, [0, 2]])).to(torch.int64)


def _offsets(k: int, step: int) -> list[tuple[int, ...]]:
    return [o for o in itertools.product((-step, 0, step), repeat=k) if any(o)]


def candidate_pairs(
    counts: torch.Tensor,
    cell_voxels: int,
    anchor_frac: float = 62 / 64,
    neg_frac: float = 2 / 64,
    distant_negative: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """All positive and negative (anchor, other) pairs of one count map, before balancing.

    Args:
        counts: cancer voxels per cell, [h, w] or [d, h, w] (from :func:`cancer_cell_counts`).
        cell_voxels: voxels per cell (64 for 8 x 8).
        anchor_frac: minimum cancer fraction of anchors and positives (default 62/64).
        neg_frac: maximum cancer fraction of negatives (default 2/64).
        distant_negative: negatives at distance 2 with a clean adjacent cell (default True) or in
            the 3^k window.

    Returns:
        ``(positives, negatives)``, int64 [P, 2] and [Q, 2] of flat (row-major) cell indices, in
        anchor order (row-major) then offset order.
    """
    if counts.ndim not in (2, 3):
        raise ValueError(f"counts must be [h, w] or [d, h, w], got shape {tuple(counts.shape)}")
    if cell_voxels <= 0 or not (0.0 <= neg_frac < anchor_frac <= 1.0):
        raise ValueError(
            f"need cell_voxels > 0 (got {cell_voxels}) and 0 <= neg_frac < anchor_frac <= 1 "
            f"(got neg_frac={neg_frac}, anchor_frac={anchor_frac})"
        )
    counts = counts.detach().to("cpu", torch.float64).numpy()
    shape = counts.shape
    k = counts.ndim
    # pad by 2 with False so that every shifted view below stays in bounds (outside = neither kind)
    is_anchor = np.pad(counts >= anchor_frac * cell_voxels - 1e-9, 2)
    is_clean = np.pad(counts <= neg_frac * cell_voxels + 1e-9, 2)

    def shifted(arr: np.ndarray, off: tuple[int, ...]) -> np.ndarray:
        return arr[tuple(slice(2 + o, 2 + o + n) for o, n in zip(off, shape))]

    anchor = shifted(is_anchor, (0,) * k)
    flat_ids = np.arange(counts.size).reshape(shape)
    strides = np.array([int(np.prod(shape[i + 1:])) for i in range(k)])
    pos, neg = [], []  # rows (anchor, offset number, other)
    near = _offsets(k, 1)
    for j, off in enumerate(near):
        hit = anchor & shifted(is_anchor, off)
        pos.append(_rows(flat_ids[hit], j, int(np.dot(off, strides))))
        if not distant_negative:
            hit = anchor & shifted(is_clean, off)
            neg.append(_rows(flat_ids[hit], j, int(np.dot(off, strides))))
    if distant_negative:
        for j, off in enumerate(_offsets(k, 2)):
            mid = tuple(o // 2 for o in off)
            hit = anchor & shifted(is_clean, off) & shifted(is_clean, mid)
            neg.append(_rows(flat_ids[hit], j, int(np.dot(off, strides))))
    return _pair_tensor(pos), _pair_tensor(neg)


def mine_pairs(
    counts: torch.Tensor,
    cell_voxels: int,
    anchor_frac: float = 62 / 64,
    neg_frac: float = 2 / 64,
    max_pairs: int = 30,
    distant_negative: bool = True,
    rng: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mine balanced positive and negative cell pairs from one map of cancer counts.

    Args:
        counts, cell_voxels, anchor_frac, neg_frac, distant_negative: as :func:`candidate_pairs`.
        max_pairs: cap on each kind (default 30).
        rng: generator for the shuffles (default: a fresh one seeded 0, i.e. deterministic).

    Returns:
        ``pairs`` int64 [P, 2] of flat (row-major) cell indices (anchor, other), positives first,
        and ``is_positive`` bool [P]; P = 2 * min(#pos, #neg, max_pairs).
    """
    if max_pairs < 0:
        raise ValueError(f"max_pairs must be >= 0, got {max_pairs}")
    pos, neg = candidate_pairs(counts, cell_voxels, anchor_frac, neg_frac, distant_negative)
    n = min(len(pos), len(neg), max_pairs)
    if n == 0:
        return torch.zeros((0, 2), dtype=torch.int64), torch.zeros(0, dtype=torch.bool)
    if rng is None:
        rng = torch.Generator().manual_seed(0)
    pos = pos[torch.randperm(len(pos), generator=rng)[:n]]
    neg = neg[torch.randperm(len(neg), generator=rng)[:n]]
    is_positive = torch.cat([torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)])
    return torch.cat([pos, neg]), is_positive


def balanced_pair_count(counts: torch.Tensor, cell_voxels: int, anchor_frac: float = 62 / 64, neg_frac: float = 2 / 64,
                        max_pairs: int = 30, distant_negative: bool = True) -> int:
    """Positive pairs :func:`mine_pairs` keeps for one count map: ``min(#pos, #neg, max_pairs)`` (no shuffling).

    A pre-training step's contrastive term is active when some sample of its batch has a count > 0 (the
    quantity ``contrastive_active_fraction`` reports); sizing a profile uses this without running a model.

    Args:
        counts, cell_voxels, anchor_frac, neg_frac, max_pairs, distant_negative: as :func:`mine_pairs`.
    """
    if max_pairs < 0:
        raise ValueError(f"max_pairs must be >= 0, got {max_pairs}")
    pos, neg = candidate_pairs(counts, cell_voxels, anchor_frac, neg_frac, distant_negative)
    return int(min(len(pos), len(neg), max_pairs))


def patch_pair_loss(
    features_a: torch.Tensor, features_b: torch.Tensor, is_positive: torch.Tensor, margin: float = 0.5
) -> torch.Tensor:
    """Margin-cosine pair loss: mean of ``1 - cos`` (positives) and ``max(0, cos - margin)`` (negatives).

    Args:
        features_a: [P, F] features of the first cell of each pair.
        features_b: [P, F] features of the second cell.
        is_positive: bool [P].
        margin: negative margin (default 0.5).

    Returns:
        scalar loss; a differentiable zero when P == 0.
    """
    if features_a.shape != features_b.shape or features_a.ndim != 2 or is_positive.shape != features_a.shape[:1]:
        raise ValueError(
            f"need features_a, features_b [P, F] and is_positive [P]; got {tuple(features_a.shape)}, "
            f"{tuple(features_b.shape)}, {tuple(is_positive.shape)}"
        )
    if features_a.shape[0] == 0:
        return (features_a.sum() + features_b.sum()) * 0.0 + 0.0
    cos = F.cosine_similarity(features_a.float(), features_b.float(), dim=-1)
    per_pair = torch.where(is_positive.to(cos.device), 1.0 - cos, torch.clamp(cos - margin, min=0.0))
    return per_pair.mean()
