"""Task models: an encoder plus the head of one task kind (STUDY §4); the model adapter supplies the heads.

=================  ===============================  ===========================================
task kind          ProFound (3D volume)             ProViCNet (2.5D slice stacks)
=================  ===============================  ===========================================
classification     :class:`Classifier` (ProFound    :class:`Classifier` on the per-slice CLS,
                   layout ``head.0..3``)             mean over the D slices of a volume
segmentation       :class:`UperNet3D`, 1 channel    :class:`SliceDenseModel` (ProViCNet conv head
regression         :class:`UperNet3D`, 1 channel,   per slice, re-stacked into [B, C, D, H, W])
                   linear output                    same, 1 channel, linear output
scalar_regression  :class:`ScalarRegressor`         :class:`ScalarRegressor`
=================  ===============================  ===========================================

Inputs: volume encoders take ``x`` [B, 3, D, H, W]; slice encoders take ``x`` [B, D, 3, S, S] with
``pos`` [B, D, 2] (slice index, slice count). Every model is called ``model(x, pos=None)``.

Dense heads take two opt-in switches (``FinetuneRecipe.full_res_skip`` / ``residual``, on in the ``cpu``
profile): a full-resolution skip from the input into a small refinement decoder, and a residual output
``gain * input + bias + correction`` for restoration (:mod:`transferlimits.models.fullres`). Both are
deviations from the published heads, which never see the input at full resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transferlimits.data.views import centre_channels
from transferlimits.models.fullres import FullResRefine, from_view_size, residual_source
from transferlimits.models.pooled_heads import (
    Classifier,
    ScalarRegressor,
    encode_pooled,
    flatten_slices,
    is_slice_encoder,
)
from transferlimits.models.provicnet_heads import SegmentationConvHead
from transferlimits.models.registry import get_model
from transferlimits.models.upernet3d import UperNet3D
from transferlimits.tasks.kinds import get_kind

__all__ = [
    "encode_pooled",
    "Classifier",
    "ScalarRegressor",
    "SliceDenseModel",
    "SliceRefine",
    "UperNet3D",
    "build_task_model",
]


@dataclass(frozen=True)
class SliceRefine:
    """The opt-in full-resolution parts of :class:`SliceDenseModel` (deviations from the published head).

    Attributes:
        full_res: refine each slice's output at the (H, W) output size from the input stack resized to it (a
            full-resolution skip, :class:`~transferlimits.models.fullres.FullResRefine`; default False).
        residual: also add ``gain * src + bias``, ``src`` the centre slices in target units (needs ``full_res``).
        full_res_width: hidden width of the full-resolution convs (default 8).
    """

    full_res: bool = False
    residual: bool = False
    full_res_width: int = 8


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
        refine: :class:`SliceRefine` (``full_res``, ``residual``, ``full_res_width``); default: off.
        **keywords: fields of :class:`SliceRefine` (override ``refine``).

    Raises:
        ValueError: not a slice encoder, or ``residual`` without ``full_res``.
        TypeError: a keyword that is no field of :class:`SliceRefine`.

    ``forward(x [B, D', 3, S, S], pos [B, D', 2])`` -> [B, out_channels, D, H, W].
    """

    def __init__(self, encoder: nn.Module, out_channels: int, mid: tuple[int, int] = (128, 64),
                 out_size: Sequence[int] | None = None, out_depth: int | None = None, slice_step: int = 1,
                 refine: SliceRefine | None = None, **keywords: Any) -> None:
        refine = replace(refine if refine is not None else SliceRefine(), **keywords)
        full_res, residual = refine.full_res, refine.residual
        super().__init__()
        if not is_slice_encoder(encoder):
            raise ValueError("SliceDenseModel needs a slice encoder (input_kind == 'slices')")
        self.encoder = encoder
        self.head = SegmentationConvHead(encoder.out_dim, out_channels, mid=tuple(mid))
        self.out_size = None if out_size is None else tuple(int(s) for s in out_size)
        self.out_depth, self.slice_step = (None if out_depth is None else int(out_depth)), int(slice_step)
        if residual and not full_res:
            raise ValueError("SliceDenseModel: residual=True needs full_res=True")
        self.full_res = FullResRefine(3, out_channels, out_channels, refine.full_res_width, 2, residual) if full_res else None
        if residual:  # start from gain * input + bias: the head's correction begins at zero
            nn.init.zeros_(self.head.segmentation_conv[-1].weight)
            nn.init.zeros_(self.head.segmentation_conv[-1].bias)

    def forward(self, x: Tensor, pos: Tensor | None = None) -> Tensor:
        b, d = x.shape[:2]
        xs, ps = flatten_slices(x, pos)
        tokens = self.encoder.forward_features(xs, ps).tokens
        grid = (xs.shape[-2] // self.encoder.patch_size, xs.shape[-1] // self.encoder.patch_size)
        out = self.head(tokens, grid)  # [B*D, C, 8h, 8w]
        if self.out_size is not None and tuple(out.shape[-2:]) != self.out_size:
            out = F.interpolate(out, size=self.out_size, mode="bilinear", align_corners=False)
        if self.full_res is not None:
            skip = from_view_size(xs, tuple(out.shape[-2:]))  # [B*D', 3, H, W]: the grid's own voxels
            src = None
            if self.full_res.residual:  # each stack's own centre slice (the edge stacks hold it off-centre)
                depth = self.out_depth if self.out_depth is not None else d
                own = torch.as_tensor(np.tile(centre_channels(depth, self.slice_step), b), device=skip.device)
                if own.numel() != b * d:
                    raise ValueError(f"SliceDenseModel: {d} stacks per case, but a {depth}-slice grid at step "
                                     f"{self.slice_step} has {own.numel() // b}")
                src = residual_source(skip[torch.arange(b * d, device=skip.device), own])[:, None]
            out = self.full_res(out, skip, src)
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
                     out_size: Sequence[int] | None = None, slice_step: int = 1, full_res: bool = False,
                     residual: bool = False) -> nn.Module:
    """The task model for one (encoder, task): the kind picks the head, the model adapter builds it.

    Args:
        model_name: a registered model (``transferlimits.models.get_model``).
        encoder: the encoder instance (it becomes ``model.encoder``).
        task_spec: a :class:`~transferlimits.tasks.registry.TaskSpec` (uses ``kind``, ``out_channels``). Binary
            segmentation (``out_channels`` 1 or 2) gets ONE sigmoid logit channel.
        width: decoder width; None = the published widths (UperNet 512 / aux 256; slice head (128, 64)).
            Smaller values (e.g. 32) for smoke runs: UperNet ``width`` / aux ``width // 2``, slice head
            ``(width, width // 2)``.
        out_size: (D, H, W) target grid for dense tasks (the slice model resizes each slice to (H, W));
            the UperNet always returns the input size. Default None.
        slice_step: the step of 2.5D stack centres (``Profile.provicnet_slice_step``); with ``out_size`` the
            slice outputs are interpolated back onto the D slices. Default 1.
        full_res: dense heads get the full-resolution skip (:mod:`transferlimits.models.fullres`). Default False.
        residual: dense heads of the regression kinds add the input in target units (needs ``full_res``; ignored
            for segmentation). Default False.

    Raises:
        ValueError: unknown model name or task kind (the message lists the valid ones).
    """
    adapter = get_model(model_name)
    kind = get_kind(task_spec.kind)  # ValueError listing the kinds; the kind picks head and channels
    out_ch = kind.head_channels(task_spec)
    if kind.head == "classifier":
        return adapter.classification_head(encoder, out_ch)
    if kind.head == "scalar":
        return adapter.scalar_head(encoder)
    extra: dict[str, bool] = {}
    if full_res:  # passed only when on, so adapters without the switches keep working
        extra = {"full_res": True, "residual": bool(residual and kind.regression)}
    return adapter.dense_head(encoder, out_ch, width=width, out_size=out_size, slice_step=slice_step, **extra)
