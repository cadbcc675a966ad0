"""Task models: an encoder plus the head of one task kind (STUDY §4).

=================  ===============================  ===========================================
task kind          ``profound`` (3D volume)         ``provicnet`` (2.5D slice stacks)
=================  ===============================  ===========================================
classification     :class:`Classifier` (ProFound    :class:`Classifier` on the per-slice CLS,
                   layout ``head.0..3``)             mean over the D slices of a volume
segmentation       :class:`UperNet3D`, 1 channel    :class:`SliceDenseModel` (ProViCNet conv head
regression         :class:`UperNet3D`, 1 channel,   per slice, re-stacked into [B, C, D, H, W])
                   linear output                    same, 1 channel, linear output
scalar_regression  :class:`ScalarRegressor`         :class:`ScalarRegressor`
=================  ===============================  ===========================================

Inputs: ``profound`` takes ``x`` [B, 3, D, H, W]; ``provicnet`` takes ``x`` [B, D, 3, S, S] with
``pos`` [B, D, 2] (slice index, slice count). Every model is called ``model(x, pos=None)``.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transferlimits.models.provicnet_heads import SegmentationConvHead
from transferlimits.models.upernet3d import UperNet3D

__all__ = [
    "encode_pooled",
    "Classifier",
    "ScalarRegressor",
    "SliceDenseModel",
    "UperNet3D",
    "build_task_model",
    "TASK_KINDS",
]

TASK_KINDS = ("classification", "segmentation", "regression", "scalar_regression")


def _is_slices(encoder: nn.Module) -> bool:
    return getattr(encoder, "input_kind", "volume") == "slices"


def _flatten_slices(x: Tensor, pos: Tensor | None) -> tuple[Tensor, Tensor]:
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
        encoder: a ``profound`` or ``provicnet`` encoder.
        x: [B, 3, D, H, W] (volume) or [B, D, 3, S, S] (slices).
        pos: [B, D, 2] for slice encoders; ignored otherwise. Default None.
    """
    if not _is_slices(encoder):
        return encoder.forward_features(x).pooled
    b, d = x.shape[:2]
    xs, ps = _flatten_slices(x, pos)
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


class SliceDenseModel(nn.Module):
    """ProViCNet's per-slice conv head on the final patch tokens, re-stacked into a volume.

    Args:
        encoder: a slice encoder (``input_kind == "slices"``, ``out_dim``).
        out_channels: output channels (1 for binary segmentation and for regression).
        mid: widths of the head's two hidden convs (default (128, 64), upstream).
        out_size: (H, W) of the target grid; each slice's [8h, 8w] output is resized to it bilinearly.
            Default None keeps 8h x 8w.
        out_depth: D of the target grid when the stacks are centred on every ``slice_step``-th slice
            (``data.views.slice_centres``): the D' slice outputs are interpolated linearly along z onto the
            D slices. Default None: one output slice per stack.
        slice_step: the step of the stack centres (default 1).

    ``forward(x [B, D', 3, S, S], pos [B, D', 2])`` -> [B, out_channels, D, H, W].
    """

    def __init__(self, encoder: nn.Module, out_channels: int, mid: tuple[int, int] = (128, 64),
                 out_size: Sequence[int] | None = None, out_depth: int | None = None, slice_step: int = 1) -> None:
        super().__init__()
        if not _is_slices(encoder):
            raise ValueError("SliceDenseModel needs a slice encoder (input_kind == 'slices')")
        self.encoder = encoder
        self.head = SegmentationConvHead(encoder.out_dim, out_channels, mid=tuple(mid))
        self.out_size = None if out_size is None else tuple(int(s) for s in out_size)
        self.out_depth, self.slice_step = (None if out_depth is None else int(out_depth)), int(slice_step)

    def forward(self, x: Tensor, pos: Tensor | None = None) -> Tensor:
        b, d = x.shape[:2]
        xs, ps = _flatten_slices(x, pos)
        tokens = self.encoder.forward_features(xs, ps).tokens
        grid = (xs.shape[-2] // self.encoder.patch_size, xs.shape[-1] // self.encoder.patch_size)
        out = self.head(tokens, grid)  # [B*D, C, 8h, 8w]
        if self.out_size is not None and tuple(out.shape[-2:]) != self.out_size:
            out = F.interpolate(out, size=self.out_size, mode="bilinear", align_corners=False)
        out = out.reshape(b, d, *out.shape[1:]).transpose(1, 2)  # [B, C, D', H, W]
        if self.out_depth is not None and self.out_depth != d:
            out = slices_to_grid(out, self.out_depth, self.slice_step)
        return out.contiguous()


def slices_to_grid(out: Tensor, depth: int, step: int) -> Tensor:
    """Linear interpolation along z of per-stack outputs [B, C, D', H, W] centred on slices
    ``step // 2 + k * step`` onto all ``depth`` slices (constant beyond the first and last centre)."""
    n = out.shape[2]
    z = torch.arange(depth, dtype=torch.float32, device=out.device)
    u = ((z - min(step // 2, depth - 1)) / step).clamp(0, n - 1)
    lo = u.floor().long().clamp(max=n - 1)
    hi = (lo + 1).clamp(max=n - 1)
    w = (u - lo.float()).view(1, 1, -1, 1, 1).to(out.dtype)
    return out[:, :, lo] * (1 - w) + out[:, :, hi] * w


def build_task_model(model_name: str, encoder: nn.Module, task_spec: Any, width: int | None = None,
                     out_size: Sequence[int] | None = None, slice_step: int = 1) -> nn.Module:
    """The task model for one (encoder, task).

    Args:
        model_name: ``"profound"`` or ``"provicnet"``.
        encoder: the encoder instance (it becomes ``model.encoder``).
        task_spec: a :class:`~transferlimits.data.tasks.TaskSpec` (uses ``kind``, ``out_channels``). Binary
            segmentation (``out_channels`` 1 or 2) gets ONE sigmoid logit channel.
        width: decoder width; None = the published widths (UperNet 512 / aux 256; slice head (128, 64)).
            Smaller values (e.g. 32) for smoke runs: UperNet ``width`` / aux ``width // 2``, slice head
            ``(width, width // 2)``.
        out_size: (D, H, W) target grid for dense tasks (the slice model resizes each slice to (H, W));
            the UperNet always returns the input size. Default None.
        slice_step: provicnet only: the step of the 2.5D stack centres (``Profile.provicnet_slice_step``);
            with ``out_size`` the slice outputs are interpolated back onto the D slices. Default 1.

    Raises:
        ValueError: unknown model name or task kind (the message lists the valid ones).
    """
    if model_name not in ("profound", "provicnet"):
        raise ValueError(f"unknown model {model_name!r}; valid: ['profound', 'provicnet']")
    kind = task_spec.kind
    if kind not in TASK_KINDS:
        raise ValueError(f"unknown task kind {kind!r}; valid: {list(TASK_KINDS)}")
    if kind == "classification":
        return Classifier(encoder, int(task_spec.out_channels))
    if kind == "scalar_regression":
        return ScalarRegressor(encoder)
    out_ch = int(task_spec.out_channels)
    if kind == "segmentation":
        if out_ch > 2:
            raise ValueError(f"only binary segmentation is supported (out_channels 1 or 2), got {out_ch}")
        out_ch = 1  # binary lesion mask: one sigmoid logit (ProFound's lesion model), DiceCELoss(sigmoid=True)
    if model_name == "profound":
        if width is None:
            return UperNet3D(encoder, out_ch)
        return UperNet3D(encoder, out_ch, width=int(width), aux_channels=max(int(width) // 2, 1))
    mid = (128, 64) if width is None else (int(width), max(int(width) // 2, 1))
    hw = None if out_size is None else tuple(out_size)[-2:]
    depth = None if out_size is None or slice_step == 1 else int(tuple(out_size)[0])
    return SliceDenseModel(encoder, out_ch, mid=mid, out_size=hw, out_depth=depth, slice_step=slice_step)
