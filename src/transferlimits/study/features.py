"""Encoder features for the transfer measurements (MMD, CKA, LogME): pooled and per-layer, per volume.

:func:`extract_features` streams a dataset (or a DataLoader) through an encoder under ``torch.no_grad``
in eval mode and returns numpy arrays, one row per item (volume):

* ``profound`` (input kind ``"volume"``, item ``x`` [3, D, H, W]): ``pooled`` = LN(GAP(stage 4));
  layers ``"pooled"`` and ``"stage1".."stage4"`` = global average pool of each stage map.
* ``provicnet`` (input kind ``"slices"``, item ``x`` [D, 3, S, S] and ``pos`` [D, 2], or a single slice
  ``x`` [3, S, S] and ``pos`` [2]): each slice is encoded; a volume's feature is the **mean over its
  slices** of the per-slice feature. Layers ``"final_cls"`` (final-norm CLS token; also ``pooled``),
  ``"final_mean_patch"`` (mean of the final-norm patch tokens) and ``"block0".."block{L-1}"`` (mean patch
  token after each block; the last one is after the final norm).

Token-level samples (``token_samples > 0``): for every map layer, ``token_samples`` feature vectors in
total, ``ceil(token_samples / n_items)`` per item at random voxel (profound) or (slice, token) (provicnet)
positions. Positions come from ``numpy.random.default_rng(seed)`` and depend only on the map shapes, so
two encoders with the same architecture (pre-trained vs fine-tuned) are sampled at the same positions.
``token_groups[name]`` gives the item (image) of every token row, for tests clustered by image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from torch import nn

__all__ = ["FeatureSet", "extract_features", "iter_items"]


@dataclass
class FeatureSet:
    """Features of ``n`` items: ``pooled`` [n, C]; ``layers[name]`` [n, C_l]; ``tokens[name]`` [m, C_l];
    ``token_groups[name]`` [m] int, the item index of each token row."""

    pooled: np.ndarray
    layers: dict[str, np.ndarray] = field(default_factory=dict)
    tokens: dict[str, np.ndarray] = field(default_factory=dict)
    case_ids: list[str] = field(default_factory=list)
    token_groups: dict[str, np.ndarray] = field(default_factory=dict)


def iter_items(loader_or_dataset: Iterable[Any]) -> Iterator[dict[str, Any]]:
    """Yield single items from a map-style dataset (``len`` + ``[]``) or from a DataLoader's collated
    batches (a ``torch.utils.data.DataLoader``, split back along the batch axis)."""
    if isinstance(loader_or_dataset, torch.utils.data.DataLoader):
        for batch in loader_or_dataset:
            n = len(batch["x"])
            for i in range(n):
                yield {k: (v[i] if isinstance(v, (torch.Tensor, list, tuple)) and len(v) == n else v)
                       for k, v in batch.items()}
    else:
        for i in range(len(loader_or_dataset)):  # type: ignore[arg-type]
            yield loader_or_dataset[i]  # type: ignore[index]


def _num_items(loader_or_dataset: Any) -> int:
    ds = getattr(loader_or_dataset, "dataset", loader_or_dataset) if isinstance(
        loader_or_dataset, torch.utils.data.DataLoader) else loader_or_dataset
    return len(ds)


class _Sampler:
    """Seeded token-position sampler and per-layer accumulator."""

    def __init__(self, per_item: int, seed: int) -> None:
        self.per_item, self.rng = per_item, np.random.default_rng(seed)
        self.samples: dict[str, list[np.ndarray]] = {}

    def draw(self, n_positions: int) -> np.ndarray:
        """``per_item`` position indices in [0, n_positions) (with replacement only if too few)."""
        return self.rng.choice(n_positions, size=self.per_item, replace=self.per_item > n_positions)

    def add(self, name: str, feats: torch.Tensor) -> None:
        self.samples.setdefault(name, []).append(feats.float().cpu().numpy())


def _as_tensor(v: Any) -> torch.Tensor:
    return v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v))


def _volume_batches(items: list[dict[str, Any]], encoder: nn.Module, device, sampler: _Sampler) -> list[dict[str, np.ndarray]]:
    """Encode a batch of same-shape volumes; one row per volume."""
    x = torch.stack([_as_tensor(it["x"]).float() for it in items]).to(device)
    out = encoder.forward_features(x)
    rows = []
    for b in range(x.shape[0]):
        row = {"pooled": out.pooled[b]}
        for name, m in zip(encoder.map_names, out.maps):
            flat = m[b].flatten(1)  # [C, voxels]
            row[name] = flat.mean(dim=1)
            if sampler.per_item > 0:
                idx = torch.as_tensor(sampler.draw(flat.shape[1]), device=flat.device)
                sampler.add(name, flat[:, idx].t())
        rows.append({k: v.float().cpu().numpy() for k, v in row.items()})
    return rows


def _slice_volume(item: dict[str, Any], encoder: nn.Module, device, batch_size: int, sampler: _Sampler) -> dict[str, np.ndarray]:
    """Encode the slices of one volume in chunks; the row is the mean over slices."""
    x, pos = _as_tensor(item["x"]).float(), _as_tensor(item["pos"]).float()
    if x.ndim == 3:
        x, pos = x[None], pos.reshape(1, 2)
    n_slices = x.shape[0]
    sums: dict[str, torch.Tensor] = {}
    picks: dict[str, np.ndarray] = {}  # sampled flat (slice, token) positions per layer
    got: dict[str, list[torch.Tensor]] = {n: [] for n in encoder.map_names}
    for start in range(0, n_slices, batch_size):
        out = encoder.forward_features(x[start : start + batch_size].to(device), pos[start : start + batch_size].to(device))
        per = {"final_cls": out.pooled, "final_mean_patch": out.tokens.mean(dim=1)}
        for name, m in zip(encoder.map_names, out.maps):
            per[name] = m.mean(dim=(-2, -1))
            if sampler.per_item > 0:
                n_tok = m.shape[-2] * m.shape[-1]
                if name not in picks:
                    picks[name] = sampler.draw(n_slices * n_tok)
                local = picks[name] - start * n_tok
                local = local[(local >= 0) & (local < m.shape[0] * n_tok)]
                flat = m.flatten(2).transpose(1, 2).reshape(-1, m.shape[1])  # [(slice, token), C]
                got[name].append(flat[torch.as_tensor(local, device=flat.device)])
        for k, v in per.items():
            sums[k] = sums.get(k, 0) + v.sum(dim=0)
    for name, chunks in got.items():
        if chunks:
            sampler.add(name, torch.cat(chunks))
    row = {k: (v / n_slices).float().cpu().numpy() for k, v in sums.items()}
    row["pooled"] = row["final_cls"]
    return row


def _encode_all(loader_or_dataset: Iterable[Any], encoder: nn.Module, device, batch_size: int,
                sampler: _Sampler) -> tuple[list[dict[str, np.ndarray]], list[str]]:
    """One feature row and one id per item, in order: slices volume by volume, volumes in same-shape batches."""
    rows: list[dict[str, np.ndarray]] = []
    ids: list[str] = []
    pending: list[dict[str, Any]] = []
    for item in iter_items(loader_or_dataset):
        ids.append(str(item.get("case_id", len(ids))))
        if encoder.input_kind == "slices":
            rows.append(_slice_volume(item, encoder, device, batch_size, sampler))
            continue
        if pending and _as_tensor(item["x"]).shape != _as_tensor(pending[0]["x"]).shape:
            rows += _volume_batches(pending, encoder, device, sampler)
            pending = []
        pending.append(item)
        if len(pending) == batch_size:
            rows += _volume_batches(pending, encoder, device, sampler)
            pending = []
    if pending:
        rows += _volume_batches(pending, encoder, device, sampler)
    return rows, ids


@torch.no_grad()
def extract_features(
    encoder: nn.Module,
    loader_or_dataset: Iterable[Any],
    device: torch.device | str,
    batch_size: int = 2,
    token_samples: int = 0,
    seed: int = 0,
) -> FeatureSet:
    """Encode every item and collect pooled, per-layer and (optionally) token-level features.

    Args:
        encoder: a ``profound`` or ``provicnet`` encoder (``input_kind``, ``map_names``,
            ``forward_features``). It is moved to ``device`` and put in eval mode (its previous
            train/eval mode is restored afterwards).
        loader_or_dataset: map-style dataset of dicts with ``"x"`` (+ ``"pos"`` for slices, optional
            ``"case_id"``), or a DataLoader over such a dataset.
        device: where to run.
        batch_size: volumes (profound) or slices (provicnet) per forward pass. Default 2.
        token_samples: total token/voxel samples per map layer; 0 disables. Default 0.
        seed: seed of the token-position sampler. Default 0.

    Returns:
        :class:`FeatureSet` with rows in dataset order.

    Raises:
        ValueError: ``batch_size`` < 1, ``token_samples`` < 0, an unknown ``input_kind``, or no items.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if token_samples < 0:
        raise ValueError(f"token_samples must be >= 0, got {token_samples}")
    kind = getattr(encoder, "input_kind", None)
    if kind not in ("volume", "slices"):
        raise ValueError(f"encoder.input_kind must be 'volume' or 'slices', got {kind!r}")
    n_items = _num_items(loader_or_dataset)
    if n_items == 0:
        raise ValueError("the dataset is empty")
    sampler = _Sampler(math.ceil(token_samples / n_items) if token_samples else 0, seed)
    was_training = encoder.training
    encoder.to(device).eval()
    try:
        rows, ids = _encode_all(loader_or_dataset, encoder, device, batch_size, sampler)
    finally:
        encoder.train(was_training)
    layers = {k: np.stack([r[k] for r in rows]) for k in rows[0] if k != "pooled" or kind == "volume"}
    tokens = {k: np.concatenate(v)[:token_samples] for k, v in sampler.samples.items()}
    # every item adds exactly ``per_item`` rows per layer, in item order
    groups = {k: (np.arange(v.shape[0]) // max(sampler.per_item, 1)).astype(np.int64) for k, v in tokens.items()}
    return FeatureSet(pooled=np.stack([r["pooled"] for r in rows]), layers=layers, tokens=tokens, case_ids=ids,
                      token_groups=groups)
