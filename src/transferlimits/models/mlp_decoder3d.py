"""An all-MLP dense decoder for a 4-stage volume encoder: SegFormer's decoder (Xie et al. 2021), made 3D.

ProFound's published dense head is a 3D UperNet (:mod:`transferlimits.models.upernet3d`): a PPM on the last stage,
a top-down FPN and three 3x3x3 conv modules, trained from random weights at every fine-tuning. At the ``cpu``
profile's budget (96 optimiser steps per run) that head never learns to read its encoder: with the positive-control
encoder (one already trained on the task) a fresh UperNet head scored what a scratch network did on
super-resolution (31.12 vs 31.17 dB), and its zero-padded convolutions gave the encoder-ablated model a position
prior that beat every network on modality translation (``benchmarks/head_budget.py``; the committed run's design
check). This decoder is what SegFormer uses on a hierarchical encoder, in 3D::

    maps_i [B, C_i, D/s_i, H/s_i, W/s_i]  --LayerNorm_i-->  trilinear to stride 4 (fixed)  --concat-->
    [B, sum C_i, D/4, H/4, W/4]  --1x1x1 conv, GELU-->  [B, width, D/4, H/4, W/4]  --> output

SegFormer's per-stage linear layers, up-sampling and fusing linear layer compose into the one 1x1x1 conv on the
concatenated maps (linear maps commute with linear resampling), so one layer stands for them. The output is

* dense regression / segmentation: a learned sub-pixel layer to the full-resolution grid
  (:class:`~transferlimits.models.fullres.SubPixelOutput`), plus the parameter-free identity residual for
  same-modality restoration (``residual``);
* a warp (``warp_axis``, distortion correction): a 1x1x1 conv predicts the displacement (and with ``warp_blur`` its
  SD) at stride 4, trilinearly up-sampled, and the input is resampled by it (:func:`~transferlimits.models.warp.
  warp_by_field`).

Every learnable path to the output goes through the encoder (STUDY §5.1), and no convolution pads: an
encoder-ablated model (:class:`~transferlimits.models.ablation.ZeroedEncoder`) sees spatially constant features
and can only output a constant (a warp: one constant shift), the sub-pixel layer's period-4 pattern aside.
The last layer starts at zero for a residual or warp output, so such a model starts at the identity baseline.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from transferlimits.models.convnext3d import STAGE_STRIDES, LayerNormCF
from transferlimits.models.fullres import SubPixelOutput, resize_to, residual_source, start_output_at
from transferlimits.models.warp import warp_by_field

__all__ = ["MLPDecoder3D"]


class MLPDecoder3D(nn.Module):
    """Encoder + per-stage LayerNorm + an all-MLP decoder at stride 4 + a full-resolution (or warp) output.

    Args:
        encoder: a volume encoder (``forward_features(x) -> EncoderOutput`` with ``maps`` and ``map_dims``), e.g.
            :class:`~transferlimits.models.convnext3d.ConvNeXtV2_3D`; its first map is at stride 4.
        out_channels: output channels (1 for binary segmentation and for regression).
        width: channels of the hidden layer (default 64).
        residual: add the input (channel sum, in target units) without parameters (same-modality restoration).
        warp_axis: None, or the warped axis (0, 1, 2 of D, H, W) of a displacement-field output (needs
            ``out_channels`` 1; ``residual`` is then unused).
        warp_jacobian: multiply the resampled input by the Jacobian factor (default True).
        warp_blur: also predict the displacement's SD and output the expected warp (default False).

    ``forward(x [B, C_in, D, H, W], pos=None)`` -> [B, out_channels, D, H, W], in training and in evaluation.

    Raises:
        ValueError: ``out_channels`` or ``width`` < 1; an encoder without maps; a bad ``warp_axis``.
    """

    def __init__(self, encoder: nn.Module, out_channels: int, width: int = 64, residual: bool = False,
                 warp_axis: int | None = None, warp_jacobian: bool = True, warp_blur: bool = False) -> None:
        super().__init__()
        if out_channels < 1 or width < 1:
            raise ValueError(f"MLPDecoder3D needs out_channels >= 1 and width >= 1, got out_channels={out_channels}, "
                             f"width={width}")
        if warp_axis is not None and (warp_axis not in (0, 1, 2) or out_channels != 1):
            raise ValueError(f"warp_axis must be None or 0, 1, 2 (D, H, W) with out_channels=1, got "
                             f"warp_axis={warp_axis}, out_channels={out_channels}")
        dims = [int(d) for d in getattr(encoder, "map_dims", ())]
        if not dims:
            raise ValueError("MLPDecoder3D needs an encoder with feature maps (map_dims is empty or missing)")
        self.encoder = encoder
        self.hidden_norm = nn.ModuleList(LayerNormCF(d) for d in dims)
        self.fuse = nn.Sequential(nn.Conv3d(sum(dims), int(width), 1), nn.GELU())
        self.warp_axis, self.warp_jacobian, self.warp_blur = warp_axis, bool(warp_jacobian), bool(warp_blur)
        if warp_axis is not None:
            self.field = nn.Conv3d(int(width), 2 if warp_blur else 1, 1)
            self.full_res = None
        else:
            self.field = None
            self.full_res = SubPixelOutput(int(width), out_channels, STAGE_STRIDES[0])
        self.residual = bool(residual) or warp_axis is not None
        if self.residual:  # start at the identity baseline: the correction (or the field) begins at zero
            start_output_at(self.output_layer(), 0.0)

    def output_layer(self) -> nn.Conv3d:
        """The last learnable layer (its bias sets a start value: ``finetune_setup.start_at_train_median``)."""
        return self.field if self.field is not None else self.full_res.last_layer()

    def features(self, x: Tensor) -> Tensor:
        """x [B, C_in, D, H, W] -> the decoder's hidden features [B, width, D/4, H/4, W/4]."""
        maps = [norm(m) for norm, m in zip(self.hidden_norm, self.encoder.forward_features(x).maps)]
        size = tuple(maps[0].shape[2:])
        return self.fuse(torch.cat([resize_to(m, size) for m in maps], dim=1))

    def forward(self, x: Tensor, pos: Tensor | None = None) -> Tensor:
        hidden = self.features(x)
        size = tuple(x.shape[2:])
        if self.field is not None:
            src = residual_source(x.sum(dim=1))  # [B, D, H, W], parameter-free
            return warp_by_field(src, resize_to(self.field(hidden), size), int(self.warp_axis), self.warp_jacobian,
                                 self.warp_blur)
        out = self.full_res(hidden, size)
        return out + residual_source(x.sum(dim=1))[:, None] if self.residual else out
