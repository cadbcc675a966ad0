"""Heads on the pooled embedding, shared by every model: the classifier and the scalar regressor.

Volume encoders take ``x`` [B, 3, D, H, W]; slice encoders take ``x`` [B, D, 3, S, S] with ``pos`` [B, D, 2],
and their per-slice embeddings are averaged over the D slices (:func:`encode_pooled`). The model adapters'
default ``classification_head`` / ``scalar_head`` build these (``models/adapters/base.py``); the dense heads and
``build_task_model`` live in :mod:`transferlimits.models.heads`, which re-exports these names.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["is_slice_encoder", "flatten_slices", "encode_pooled", "Classifier", "ScalarRegressor"]


def is_slice_encoder(encoder: nn.Module) -> bool:
    """True for a 2.5D slice encoder (``input_kind == "slices"``), False for a volume encoder."""
    return getattr(encoder, "input_kind", "volume") == "slices"


def flatten_slices(x: Tensor, pos: Tensor | None) -> tuple[Tensor, Tensor]:
    """``x`` [B, D, 3, S, S], ``pos`` [B, D, 2] -> [B*D, 3, S, S], [B*D, 2] (ValueError naming a bad shape)."""
    if x.ndim != 5 or x.shape[2] != 3:
        raise ValueError(f"slice encoders take x [B, D, 3, S, S], got shape {tuple(x.shape)}")
    b, d = x.shape[:2]
    if pos is None or tuple(pos.shape) != (b, d, 2):
        got = None if pos is None else tuple(pos.shape)
        raise ValueError(f"slice encoders need pos [B, D, 2] = [{b}, {d}, 2], got {got}")
    return x.reshape(b * d, *x.shape[2:]), pos.reshape(b * d, 2)


def encode_pooled(encoder: nn.Module, x: Tensor, pos: Tensor | None = None) -> Tensor:
    """Per-volume embedding [B, C].

    Volume encoders: ``forward_features(x).pooled``. Slice encoders: the per-slice pooled CLS of the D
    slices of each volume, averaged over the slices.

    Args:
        encoder: a volume or slice encoder (``input_kind``).
        x: [B, 3, D, H, W] (volume) or [B, D, 3, S, S] (slices).
        pos: [B, D, 2] for slice encoders; ignored otherwise. Default None.
    """
    if not is_slice_encoder(encoder):
        return encoder.forward_features(x).pooled
    b, d = x.shape[:2]
    xs, ps = flatten_slices(x, pos)
    return encoder.forward_features(xs, ps).pooled.reshape(b, d, -1).mean(dim=1)


class Classifier(nn.Module):
    """ProFound's ``Classifier``: ``head = Linear(C, bottleneck) -> BatchNorm1d -> ReLU -> Linear``.

    Args:
        encoder: the backbone (keys ``encoder.*``); its ``out_dim`` is C.
        n_classes: number of logits.
        bottleneck: hidden width (default 256).

    ``forward(x, pos=None)`` -> logits [B, n_classes].
    """

    def __init__(self, encoder: nn.Module, n_classes: int, bottleneck: int = 256) -> None:
        super().__init__()
        if n_classes < 1 or bottleneck < 1:
            raise ValueError(f"n_classes and bottleneck must be >= 1, got {n_classes}, {bottleneck}")
        self.encoder = encoder
        self.head = nn.Sequential(
            nn.Linear(encoder.out_dim, bottleneck), nn.BatchNorm1d(bottleneck), nn.ReLU(), nn.Linear(bottleneck, n_classes)
        )

    def forward(self, x: Tensor, pos: Tensor | None = None) -> Tensor:
        return self.head(encode_pooled(self.encoder, x, pos))


class ScalarRegressor(nn.Module):
    """Pooled embedding -> ``Linear -> GELU -> Linear(1)``: one float per volume.

    Args:
        encoder: the backbone. hidden: MLP width (default 256).

    ``forward(x, pos=None)`` -> predictions [B].
    """

    def __init__(self, encoder: nn.Module, hidden: int = 256) -> None:
        super().__init__()
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        self.encoder = encoder
        self.head = nn.Sequential(nn.Linear(encoder.out_dim, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, x: Tensor, pos: Tensor | None = None) -> Tensor:
        return self.head(encode_pooled(self.encoder, x, pos)).squeeze(-1)
