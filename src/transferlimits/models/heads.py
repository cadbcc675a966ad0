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

With ``FinetuneRecipe.light_decoder`` (the ``cpu`` profile) the dense heads are each adapter's light decoder instead:
ProFound's all-MLP decoder (:class:`~transferlimits.models.mlp_decoder3d.MLPDecoder3D`) and ProViCNet's per-token
MLP head (:class:`~transferlimits.models.token_mlp_head.TokenMLPHead`, inside :class:`SliceDenseModel`).

Inputs: volume encoders take ``x`` [B, 3, D, H, W]; slice encoders take ``x`` [B, D, 3, S, S] with
``pos`` [B, D, 2] (slice index, slice count). Every model is called ``model(x, pos=None)``.

Dense heads take two opt-in switches (``FinetuneRecipe.full_res_skip`` / ``residual``, on in the ``cpu``
profile): a learned full-resolution output from the decoder's features (volume model), and a parameter-free
identity residual ``input + f(encoder features)`` for same-modality restoration (:mod:`transferlimits.models.fullres`).
A task whose kind asks for a warp output (``TaskKind.warp_output``, distortion correction) gets, with ``residual``
on, a displacement field from the head instead of an additive correction, applied to the input by fixed
resampling (:mod:`transferlimits.models.warp`). Every learnable path goes through the encoder (STUDY §5.1): zeroing
the encoder's output (:class:`~transferlimits.models.ablation.ZeroedEncoder`) leaves the head nothing but biases.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transferlimits.data.views import centre_channels, in_input_units
from transferlimits.models.fullres import from_view_size, residual_source, start_output_at
from transferlimits.models.pooled_heads import (
    Classifier,
    ScalarRegressor,
    encode_pooled,
    flatten_slices,
    is_slice_encoder,
)
from transferlimits.models.provicnet_heads import SegmentationConvHead
from transferlimits.models.registry import get_model
from transferlimits.models.token_mlp_head import TokenMLPHead
from transferlimits.models.upernet3d import UperNet3D
from transferlimits.models.warp import apply_warp, expected_warp, replicate_padding
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
    """The opt-in output parts of :class:`SliceDenseModel` (deviations from the published head).

    Attributes:
        full_res: accepted for the adapters' common signature; changes nothing here (the conv head already
            outputs at 8x the token grid, resized to the target grid by fixed bilinear resampling).
        residual: add ``src``, the centre slices in target units, without parameters (same-modality restoration);
            the head's last conv starts at zero, so the model starts at the identity baseline.
        warp_axis: None (default), or 1 / 2 (H / W of the volume): the head's output is a displacement field along
            that in-plane axis (voxels of the target grid), and the model outputs the centre slices resampled by
            it (:func:`~transferlimits.models.warp.apply_warp`; ``residual`` is then unused). The last conv
            starts at zero and the head's convs pad by edge replication (an ablated model's field is one
            constant).
        warp_jacobian: multiply the resampled slices by the Jacobian factor (default True).
        warp_blur: the head predicts a second channel, the displacement's SD, and the model outputs the expected
            warp (:func:`~transferlimits.models.warp.expected_warp`; default False).
        light_width: None (default): the published conv head; an int: the light per-token head
            (:class:`~transferlimits.models.token_mlp_head.TokenMLPHead`) with a hidden layer that wide
            (``FinetuneRecipe.light_decoder``): an 8 x 8 pixel tile per token, or for a warp one displacement (and
            SD) per token, bilinearly up-sampled, so an ablated model's field is one constant.
    """

    full_res: bool = False
    residual: bool = False
    warp_axis: int | None = None
    warp_jacobian: bool = True
    warp_blur: bool = False
    light_width: int | None = None


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
        refine: :class:`SliceRefine` (``full_res``, ``residual``); default: off.
        **keywords: fields of :class:`SliceRefine` (override ``refine``).

    Raises:
        ValueError: not a slice encoder.
        TypeError: a keyword that is no field of :class:`SliceRefine`.

    ``forward(x [B, D', 3, S, S], pos [B, D', 2])`` -> [B, out_channels, D, H, W].
    """

    def __init__(self, encoder: nn.Module, out_channels: int, mid: tuple[int, int] = (128, 64),
                 out_size: Sequence[int] | None = None, out_depth: int | None = None, slice_step: int = 1,
                 refine: SliceRefine | None = None, **keywords: Any) -> None:
        refine = replace(refine if refine is not None else SliceRefine(), **keywords)
        super().__init__()
        if not is_slice_encoder(encoder):
            raise ValueError("SliceDenseModel needs a slice encoder (input_kind == 'slices')")
        if refine.warp_axis is not None and (refine.warp_axis not in (1, 2) or out_channels != 1):
            raise ValueError(f"warp_axis must be None, 1 or 2 (H or W: within a slice) with out_channels=1, got "
                             f"warp_axis={refine.warp_axis}, out_channels={out_channels}")
        self.encoder = encoder
        self.warp_blur = refine.warp_axis is not None and bool(refine.warp_blur)
        head_ch = 2 if self.warp_blur else out_channels  # warp: field (+ its SD)
        if refine.light_width is not None:  # a warp field is one value per token, then fixed bilinear resampling
            scale = 1 if refine.warp_axis is not None else SegmentationConvHead.SCALE
            self.head: nn.Module = TokenMLPHead(encoder.out_dim, head_ch, width=int(refine.light_width), scale=scale)
        else:
            self.head = SegmentationConvHead(encoder.out_dim, head_ch, mid=tuple(mid))
        self.out_size = None if out_size is None else tuple(int(s) for s in out_size)
        self.out_depth, self.slice_step = (None if out_depth is None else int(out_depth)), int(slice_step)
        self.warp_axis, self.warp_jacobian = refine.warp_axis, bool(refine.warp_jacobian)
        self.residual = bool(refine.residual) or self.warp_axis is not None
        if self.residual:  # start at the identity baseline: the head's correction (or field) begins at zero
            start_output_at(self.output_layer(), 0.0)
        if self.warp_axis is not None:  # constant tokens -> a constant field (the ablated model)
            replicate_padding(self.head)

    def output_layer(self) -> nn.Module:
        """The head's last layer (its bias sets a start value)."""
        return self.head.output_layer()

    def forward(self, x: Tensor, pos: Tensor | None = None) -> Tensor:
        b, d = x.shape[:2]
        xs, ps = flatten_slices(x, pos)
        tokens = self.encoder.forward_features(xs, ps).tokens
        grid = (xs.shape[-2] // self.encoder.patch_size, xs.shape[-1] // self.encoder.patch_size)
        out = self.head(tokens, grid)  # [B*D, C, 8h, 8w] (a light head's warp field: [B*D, C, h, w])
        size = self.out_size if self.out_size is not None else tuple(SegmentationConvHead.SCALE * g for g in grid)
        if tuple(out.shape[-2:]) != size:
            out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
        if self.residual:  # each stack's own centre slice (the edge stacks hold it off-centre), no parameters
            skip = from_view_size(xs, tuple(out.shape[-2:]))  # [B*D', 3, H, W]: the grid's own voxels
            depth = self.out_depth if self.out_depth is not None else d
            own = torch.as_tensor(np.tile(centre_channels(depth, self.slice_step), b), device=skip.device)
            if own.numel() != b * d:
                raise ValueError(f"SliceDenseModel: {d} stacks per case, but a {depth}-slice grid at step "
                                 f"{self.slice_step} has {own.numel() // b}")
            src = residual_source(skip[torch.arange(b * d, device=skip.device), own])  # [B*D', H, W]
            if self.warp_axis is None:
                out = out + src[:, None]
            elif self.warp_blur:  # out: the field along H (axis -2) or W (-1) of each slice, and its SD
                out = expected_warp(src, out[:, 0], out[:, 1], self.warp_axis - 3, self.warp_jacobian)[:, None]
            else:  # out: the field along H (axis -2) or W (-1) of each slice
                out = apply_warp(src, out[:, 0], self.warp_axis - 3, self.warp_jacobian)[:, None]
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
                     residual: bool = False, light: bool = False) -> nn.Module:
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
        full_res: dense heads get the learned full-resolution output (:mod:`transferlimits.models.fullres`).
            Default False.
        residual: dense heads of same-modality restoration tasks (regression kinds whose target is in its input's
            units, ``data.views.in_input_units``) add the input without parameters; ignored otherwise. Default False.
            With ``residual`` on, a kind's warp output (``TaskKind.warp_output(task_spec)`` = ``(axis, jacobian,
            blur)``) is passed to the adapter as ``warp_axis`` / ``warp_jacobian`` / ``warp_blur`` (the head
            predicts a displacement field, and with ``blur`` its SD).
        light: with ``full_res``, dense heads get the adapter's light decoder where it has one
            (``FinetuneRecipe.light_decoder``; passed as ``light=True`` only when on and only to an adapter whose
            ``has_light_decoder`` is True; the others keep their head). Default False.

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
        extra = {"full_res": True, "residual": bool(residual and kind.regression and in_input_units(task_spec))}
        warp = kind.warp_output(task_spec)
        if extra["residual"] and warp is not None:  # passed only when asked for (adapters without a warp output)
            extra.update(warp_axis=int(warp[0]), warp_jacobian=bool(warp[1]), warp_blur=bool(warp[2]))
        if light and adapter.has_light_decoder:  # passed only when on, and only to an adapter that has one
            extra["light"] = True
    return adapter.dense_head(encoder, out_ch, width=width, out_size=out_size, slice_step=slice_step, **extra)
