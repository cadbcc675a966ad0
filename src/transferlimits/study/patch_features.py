"""Token/voxel feature rows of a frozen encoder with the cell each row covers on the target grid (pre-hoc, dense).

:func:`patch_rows` encodes every item of a map-style task dataset and keeps, per item, up to
``max_rows // n_items`` positions of the encoder's deepest feature map (``map_names[-1]``: ProFound's last stage,
ProViCNet's last block after the final norm), drawn without replacement from ``numpy.random.default_rng(seed)``;
the draws depend only on the map shapes (and, for a rare target, on which cells touch it: ``enrich``), so every
encoder of one architecture is read at the same positions.
Each row comes with its **cell**, the box of the target grid ``y`` [D, H, W] it stands for:

* volume encoders (map ``[C, d, h, w]`` over the whole crop): the map position (a, b, c) covers the target voxels
  ``[edge_D(a), edge_D(a+1)) x [edge_H(b), ...) x [edge_W(c), ...)`` with ``edge_N(i) = floor(i N / n)``;
* slice encoders (stack k of ``x`` [D', 3, S, S], token grid ``[gh, gw]`` over the resized slice, which keeps the
  field of view): token (k, b, c) covers the stack's centre slice (``data.views.slice_centres``; the dataset's
  ``slice_step``, default 1) and the in-plane box ``edge_H(b) ...``, ``edge_W(c) ...``.

The task kind turns the cells into targets (``TaskKind.patch_targets``); ``groups`` gives each row's image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from transferlimits.data.views import slice_centres

__all__ = ["PatchRows", "patch_rows", "cell_edges", "MAX_PATCH_ROWS"]

#: at most this many patch rows enter LogME and the linear probe (their cost grows with the rows)
MAX_PATCH_ROWS = 4096

#: ``(item index, boxes [n_cells, 6]) -> bool [n_cells]``: the cells a draw is enriched with (:func:`patch_rows`)
EnrichFn = Callable[[int, np.ndarray], np.ndarray]


@dataclass
class PatchRows:
    """``features`` float32 [n, C]; ``groups`` int [n] (item index); ``boxes`` int [n, 6] (z0, z1, y0, y1, x0, x1),
    half-open on the target grid; ``layer`` the map's name; ``cells`` the map positions per item."""

    features: np.ndarray
    groups: np.ndarray
    boxes: np.ndarray
    layer: str
    cells: int


def cell_edges(size: int, n: int) -> np.ndarray:
    """``[n + 1]`` int boundaries ``floor(i size / n)`` of n cells over ``size`` voxels (a cell is widened to one
    voxel where n > size, by the box makers).

    Raises:
        ValueError: ``size`` or ``n`` < 1.
    """
    if size < 1 or n < 1:
        raise ValueError(f"size and n must be >= 1, got size={size}, n={n}")
    return (np.arange(n + 1) * size) // n


def _boxes(z0: np.ndarray, z1: np.ndarray, b: np.ndarray, c: np.ndarray, hw: tuple[int, int],
           grid: tuple[int, int]) -> np.ndarray:
    ey, ex = cell_edges(hw[0], grid[0]), cell_edges(hw[1], grid[1])
    y0, y1 = ey[b], np.maximum(ey[b + 1], ey[b] + 1)
    x0, x1 = ex[c], np.maximum(ex[c + 1], ex[c] + 1)
    return np.stack([z0, z1, np.minimum(y0, hw[0] - 1), np.minimum(y1, hw[0]),
                     np.minimum(x0, hw[1] - 1), np.minimum(x1, hw[1])], axis=1).astype(np.int64)


def _draw(rng: np.random.Generator, n_cells: int, per_item: int, enriched: np.ndarray | None = None) -> np.ndarray:
    """``per_item`` cells without replacement; with ``enriched`` (bool [n_cells]) up to half of them from its
    cells, the rest from the others."""
    k = min(per_item, n_cells)
    if enriched is None:
        return np.sort(rng.choice(n_cells, size=k, replace=False))
    hot, cold = np.flatnonzero(enriched), np.flatnonzero(~enriched)
    n_hot = min(len(hot), k // 2) if len(cold) else min(len(hot), k)
    n_cold = min(len(cold), k - n_hot)
    n_hot = min(len(hot), k - n_cold)
    return np.sort(np.concatenate([rng.choice(hot, size=n_hot, replace=False),
                                   rng.choice(cold, size=n_cold, replace=False)]).astype(np.int64))


def _volume_boxes(idx: np.ndarray, grid: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    a, b, c = np.unravel_index(idx, grid)
    ez = cell_edges(shape[0], grid[0])
    z0 = np.minimum(ez[a], shape[0] - 1)
    return _boxes(z0, np.maximum(ez[a + 1], z0 + 1), b, c, shape[1:], grid[1:])


def _enriched(enrich: EnrichFn | None, i: int, boxes_of, n_cells: int) -> np.ndarray | None:
    if enrich is None:
        return None
    hot = np.asarray(enrich(i, boxes_of(np.arange(n_cells))), bool)
    if hot.shape != (n_cells,):
        raise ValueError(f"item {i}: the enrichment gave {hot.shape} flags for {n_cells} cells")
    return hot


def _volume_rows(item, encoder, device, layer: int, rng, per_item: int, i: int = 0, enrich: EnrichFn | None = None):
    shape = tuple(int(v) for v in np.shape(item["y"]))
    m = encoder.forward_features(torch.as_tensor(item["x"]).float()[None].to(device)).maps[layer][0]
    grid = tuple(int(v) for v in m.shape[1:])
    n_cells = int(np.prod(grid))
    idx = _draw(rng, n_cells, per_item, _enriched(enrich, i, lambda j: _volume_boxes(j, grid, shape), n_cells))
    feats = m.flatten(1)[:, torch.as_tensor(idx, device=m.device)].t().float().cpu().numpy()
    return feats, _volume_boxes(idx, grid, shape), n_cells


def _slice_boxes(idx: np.ndarray, n_stacks: int, grid: tuple[int, int], centres: np.ndarray,
                 shape: tuple[int, ...]) -> np.ndarray:
    k, b, c = np.unravel_index(idx, (n_stacks,) + grid)
    z0 = centres[k].astype(np.int64)
    return _boxes(z0, z0 + 1, b, c, shape[1:], grid)


def _slice_rows(item, encoder, device, layer: int, rng, per_item: int, step: int, batch_size: int, i: int = 0,
                enrich: EnrichFn | None = None):
    shape = tuple(int(v) for v in np.shape(item["y"]))
    x, pos = torch.as_tensor(item["x"]).float(), torch.as_tensor(item["pos"]).float()
    centres = slice_centres(shape[0], step)
    if len(centres) != x.shape[0]:
        raise ValueError(f"{x.shape[0]} stacks do not match {len(centres)} centre slices of depth {shape[0]} at "
                         f"slice_step {step}")
    idx, got, grid = None, [], (0, 0)
    for start in range(0, x.shape[0], batch_size):
        m = encoder.forward_features(x[start:start + batch_size].to(device), pos[start:start + batch_size].to(device)
                                     ).maps[layer]  # [b, C, gh, gw]
        grid, n_tok = (int(m.shape[-2]), int(m.shape[-1])), int(m.shape[-2] * m.shape[-1])
        if idx is None:
            n_cells, g = x.shape[0] * n_tok, grid
            hot = _enriched(enrich, i, lambda j: _slice_boxes(j, x.shape[0], g, centres, shape), n_cells)
            idx = _draw(rng, n_cells, per_item, hot)
        local = idx[(idx >= start * n_tok) & (idx < (start + m.shape[0]) * n_tok)] - start * n_tok
        flat = m.flatten(2).transpose(1, 2).reshape(-1, m.shape[1])  # [(slice, token), C]
        got.append(flat[torch.as_tensor(local, device=flat.device)].float().cpu().numpy())
    return (np.concatenate(got), _slice_boxes(idx, x.shape[0], grid, centres, shape),
            x.shape[0] * grid[0] * grid[1])


@torch.no_grad()
def patch_rows(encoder: nn.Module, dataset, device: torch.device | str, max_rows: int = MAX_PATCH_ROWS,
               seed: int = 0, batch_size: int = 2, enrich: EnrichFn | None = None) -> PatchRows:
    """Feature rows at sampled positions of the deepest map, each with its cell on the target grid.

    Args:
        encoder: ``input_kind`` ``"volume"`` (items ``x`` [3, D, H, W]) or ``"slices"`` (``x`` [D', 3, S, S],
            ``pos`` [D', 2]); ``map_names`` and ``forward_features``. Put in eval mode (its mode is restored).
        dataset: map-style dataset whose items hold ``x`` (+ ``pos``) and a dense target ``y`` [D, H, W]; a
            ``slice_step`` attribute gives the stack step (default 1).
        device: where to run.
        max_rows: rows in all, at most (``max_rows // n_items`` per item, at least 1; default
            :data:`MAX_PATCH_ROWS`). seed: position sampler seed (default 0). batch_size: slices per forward pass.
        enrich: ``(item index, boxes [n_cells, 6]) -> bool [n_cells]``, the cells of a rare target (e.g. those
            touching a lesion): up to half of each item's rows are drawn from them, the rest from the other cells
            (default None: uniform draws). The flags come from the target, so every encoder of one architecture
            is still read at the same positions.

    Returns:
        :class:`PatchRows`, rows in item order.

    Raises:
        ValueError: ``max_rows`` or ``batch_size`` < 1, an empty dataset, a target that is not [D, H, W], an
            unknown ``input_kind``, or stacks that do not match the target's depth.
    """
    if max_rows < 1 or batch_size < 1:
        raise ValueError(f"max_rows and batch_size must be >= 1, got max_rows={max_rows}, batch_size={batch_size}")
    kind = getattr(encoder, "input_kind", None)
    if kind not in ("volume", "slices"):
        raise ValueError(f"encoder.input_kind must be 'volume' or 'slices', got {kind!r}")
    n_items = len(dataset)
    if n_items == 0:
        raise ValueError("the dataset is empty")
    per_item, layer = max(1, max_rows // n_items), len(encoder.map_names) - 1
    rng, step = np.random.default_rng(seed), int(getattr(dataset, "slice_step", 1))
    feats, boxes, groups, cells = [], [], [], 0
    was_training = encoder.training
    encoder.to(device).eval()
    try:
        for i in range(n_items):
            item = dataset[i]
            if np.ndim(item["y"]) != 3:
                raise ValueError(f"item {i}: patch rows need a dense target y [D, H, W], got shape "
                                 f"{np.shape(item['y'])}")
            f, b, cells = (_volume_rows(item, encoder, device, layer, rng, per_item, i, enrich) if kind == "volume"
                           else _slice_rows(item, encoder, device, layer, rng, per_item, step, batch_size, i, enrich))
            feats.append(f)
            boxes.append(b)
            groups.append(np.full(len(f), i, np.int64))
    finally:
        encoder.train(was_training)
    return PatchRows(np.concatenate(feats), np.concatenate(groups), np.concatenate(boxes),
                     str(encoder.map_names[layer]), int(cells))
