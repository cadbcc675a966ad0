"""A 3D UperNet decoder in ProFound's key layout, for the ``profound`` dense tasks.

The parameter names follow ProFound's ``UperNet`` (itself the Hugging Face ``UperNetHead`` /
``UperNetFCNHead`` naming, made 3D), so a state dict of ProFound's demo segmentation model maps onto it::

    encoder.*                                   the ConvNeXt-V2 3D backbone
    hidden_norm.{0..3}.{weight,bias}            channels-first LayerNorm per stage output
    decode_head.psp_modules.{i}.1.conv.weight   PPM branch i: [0 adaptive pool (no params), 1 conv module]
    decode_head.psp_modules.{i}.1.batch_norm.*  (a LayerNorm despite the name, as upstream)
    decode_head.bottleneck.*                    3x3 conv module on [stage4, PPM branches]
    decode_head.lateral_convs.{0..2}.*          1x1 conv modules on stages 1-3
    decode_head.fpn_convs.{0..2}.*              3x3 conv modules after the top-down sum
    decode_head.fpn_bottleneck.*                3x3 conv module on the 4 concatenated FPN levels
    decode_head.classifier.{weight,bias}        1x1 Conv3d -> out_channels
    auxiliary_head.convs.0.*                    3x3 conv module on stage 3 (training only)
    auxiliary_head.classifier.{weight,bias}     1x1 Conv3d -> out_channels

Every conv module is ``Conv3d(bias=False)`` -> channels-first LayerNorm -> GELU.

With ``full_res=True`` (the ``cpu`` profile) the fused stride-4 features are mapped to the full-resolution grid by a
learned sub-pixel layer (``full_res.proj.*``, :class:`~transferlimits.models.fullres.SubPixelOutput`) instead of
the classifier + trilinear upsampling, and with ``residual=True`` the input (in target units) is added without
parameters: deviations from ProFound's head, which predicts at stride 4. Every learnable path goes through the
encoder (STUDY §5.1). With ``warp_axis`` (distortion correction) the classifier at stride 4 predicts a displacement
field instead, trilinearly up-sampled, and the output is the input resampled by it
(:mod:`transferlimits.models.warp`).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transferlimits.models.convnext3d import STAGE_STRIDES, LayerNormCF
from transferlimits.models.fullres import SubPixelOutput, residual_source, start_output_at
from transferlimits.models.warp import replicate_padding, warp_by_field

__all__ = ["ConvModule3D", "UperNetHead3D", "FCNAuxHead3D", "UperNet3D"]


class ConvModule3D(nn.Module):
    """``Conv3d(bias=False)`` -> channels-first LayerNorm (attribute ``batch_norm``) -> GELU.

    Args:
        in_ch: input channels. out_ch: output channels.
        kernel_size: cubic kernel size (padding keeps the size). Default 3.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=False)
        self.batch_norm = LayerNormCF(out_ch)
        self.activation = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.batch_norm(self.conv(x)))


def _resize(x: Tensor, size: Sequence[int]) -> Tensor:
    if tuple(x.shape[2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="trilinear", align_corners=False)


class UperNetHead3D(nn.Module):
    """PPM on the last map + FPN over all four; output at the first map's resolution.

    Args:
        in_dims: channels of the four encoder maps.
        out_channels: output channels.
        width: hidden width of every conv module (default 512, ProFound).
        pool_scales: adaptive-pool output sizes of the PPM (default (1, 2, 3, 6)).
    """

    def __init__(self, in_dims: Sequence[int], out_channels: int, width: int = 512,
                 pool_scales: Sequence[int] = (1, 2, 3, 6)) -> None:
        super().__init__()
        if len(in_dims) != 4:
            raise ValueError(f"UperNetHead3D needs 4 encoder maps, got in_dims={list(in_dims)}")
        self.psp_modules = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool3d(int(s)), ConvModule3D(in_dims[-1], width, 1)) for s in pool_scales
        )
        self.bottleneck = ConvModule3D(in_dims[-1] + len(pool_scales) * width, width, 3)
        self.lateral_convs = nn.ModuleList(ConvModule3D(d, width, 1) for d in in_dims[:-1])
        self.fpn_convs = nn.ModuleList(ConvModule3D(width, width, 3) for _ in in_dims[:-1])
        self.fpn_bottleneck = ConvModule3D(len(in_dims) * width, width, 3)
        self.classifier = nn.Conv3d(width, out_channels, 1)

    def forward(self, maps: Sequence[Tensor]) -> Tensor:
        """maps: four [B, C_i, D_i, H_i, W_i] -> logits [B, out_channels, D_1, H_1, W_1]."""
        return self.classifier(self.features(maps))

    def features(self, maps: Sequence[Tensor]) -> Tensor:
        """maps: four [B, C_i, D_i, H_i, W_i] -> fused features [B, width, D_1, H_1, W_1] (before the classifier)."""
        top = maps[-1]
        psp = [top] + [_resize(branch(top), top.shape[2:]) for branch in self.psp_modules]
        laterals = [conv(m) for conv, m in zip(self.lateral_convs, maps[:-1])]
        laterals.append(self.bottleneck(torch.cat(psp, dim=1)))
        for i in range(len(laterals) - 1, 0, -1):  # top-down pathway
            laterals[i - 1] = laterals[i - 1] + _resize(laterals[i], laterals[i - 1].shape[2:])
        outs = [conv(lat) for conv, lat in zip(self.fpn_convs, laterals[:-1])] + [laterals[-1]]
        size = outs[0].shape[2:]
        return self.fpn_bottleneck(torch.cat([_resize(o, size) for o in outs], dim=1))


class FCNAuxHead3D(nn.Module):
    """Auxiliary FCN head: one 3x3 conv module then a 1x1 classifier (ProFound: on stage 3, 256 wide)."""

    def __init__(self, in_ch: int, out_channels: int, width: int = 256) -> None:
        super().__init__()
        self.convs = nn.Sequential(ConvModule3D(in_ch, width, 3))
        self.classifier = nn.Conv3d(width, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.convs(x))


class UperNet3D(nn.Module):
    """Encoder + per-stage LayerNorm + UperNet head (+ auxiliary head in training).

    Args:
        encoder: a volume encoder (``forward_features(x) -> EncoderOutput`` with 4 ``maps``,
            ``map_dims``), e.g. :class:`~transferlimits.models.convnext3d.ConvNeXtV2_3D`.
        out_channels: output channels (1 for binary segmentation and for regression).
        width: hidden width of the decoder (default 512; smaller for smoke runs).
        pool_scales: PPM scales (default (1, 2, 3, 6)); scales larger than the map are fine.
        aux_channels: width of the auxiliary head (default 256); 0 disables it.
        full_res: a learned sub-pixel output at the input resolution from the fused features
            (:class:`~transferlimits.models.fullres.SubPixelOutput`; default False = ProFound's classifier at
            stride 4 + trilinear upsampling).
        residual: add the input (channel sum, in target units) without parameters: same-modality restoration
            (default False); the last layer starts at zero, so the model starts at the identity baseline.
        warp_axis: None (default) or the axis (0, 1, 2 of D, H, W) of a warp output: ``decode_head.classifier``
            (and the auxiliary head's) predicts a displacement in voxels along it at stride 4, up-sampled
            trilinearly, and the output is the input (channel sum) resampled by it
            (:func:`~transferlimits.models.warp.apply_warp`; ``full_res`` and ``residual`` are then unused).
            The classifiers start at zero (the identity baseline); the decoder's convs pad by edge replication,
            so an encoder-ablated model's field is one constant.
        warp_jacobian: multiply the resampled input by the Jacobian factor (default True).
        warp_blur: the classifiers predict a second channel, the displacement's SD, and the output is the expected
            warp (:func:`~transferlimits.models.warp.expected_warp`; default False).

    ``forward(x [B, 3, D, H, W], pos=None)`` returns logits [B, out_channels, D, H, W] (trilinear
    upsampling from stage-1 resolution); in training mode ``(main, aux)`` with ``aux`` at the input size.
    """

    def __init__(self, encoder: nn.Module, out_channels: int, width: int = 512,
                 pool_scales: Sequence[int] = (1, 2, 3, 6), aux_channels: int = 256, full_res: bool = False,
                 residual: bool = False, warp_axis: int | None = None, warp_jacobian: bool = True,
                 warp_blur: bool = False) -> None:
        super().__init__()
        if out_channels < 1 or width < 1 or aux_channels < 0 or not pool_scales or min(pool_scales) < 1:
            raise ValueError(
                f"need out_channels >= 1, width >= 1, aux_channels >= 0 and positive pool_scales; got "
                f"out_channels={out_channels}, width={width}, aux_channels={aux_channels}, pool_scales={pool_scales}"
            )
        if warp_axis is not None and (warp_axis not in (0, 1, 2) or out_channels != 1):
            raise ValueError(f"warp_axis must be None or 0, 1, 2 (D, H, W) with out_channels=1, got "
                             f"warp_axis={warp_axis}, out_channels={out_channels}")
        dims = list(encoder.map_dims)
        if len(dims) != 4:
            raise ValueError(f"UperNet3D needs an encoder with 4 maps, got map_dims={dims}")
        warp = warp_axis is not None
        self.warp_axis, self.warp_jacobian, self.warp_blur = warp_axis, bool(warp_jacobian), warp and bool(warp_blur)
        head_ch = 2 if self.warp_blur else out_channels  # warp: field (+ its SD)
        self.encoder = encoder
        self.hidden_norm = nn.ModuleList(LayerNormCF(d) for d in dims)
        self.decode_head = UperNetHead3D(dims, head_ch, width, pool_scales)
        self.auxiliary_head = FCNAuxHead3D(dims[2], head_ch, aux_channels) if aux_channels else None
        self.full_res = SubPixelOutput(width, out_channels, STAGE_STRIDES[0]) if full_res and not warp else None
        self.residual = bool(residual) or warp  # a warp output is the input at the start too
        if residual or warp:  # start at the identity baseline: the decoder's correction / field begins at zero
            start_output_at(self.output_layer(), 0.0)
        if warp:  # constant features -> constant field (the ablated model), aux field from zero too
            for head in (self.decode_head, self.auxiliary_head):
                if head is not None:
                    replicate_padding(head)
            if self.auxiliary_head is not None:
                start_output_at(self.auxiliary_head.classifier, 0.0)

    def output_layer(self) -> nn.Conv3d:
        """The last learnable layer of the main output (its bias sets a start value)."""
        return self.full_res.last_layer() if self.full_res is not None else self.decode_head.classifier

    def forward(self, x: Tensor, pos: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        maps = self.encoder.forward_features(x).maps
        maps = [norm(m) for norm, m in zip(self.hidden_norm, maps)]
        size = x.shape[2:]
        if self.warp_axis is not None:
            return self._warped(x, maps, size)
        if self.full_res is not None:
            main = self.full_res(self.decode_head.features(maps), size)
        else:
            main = _resize(self.decode_head(maps), size)
        if self.residual:
            main = main + residual_source(x.sum(dim=1))[:, None]
        if self.training and self.auxiliary_head is not None:
            return main, _resize(self.auxiliary_head(maps[2]), size)
        return main

    def _warped(self, x: Tensor, maps: Sequence[Tensor], size: Sequence[int]) -> Tensor | tuple[Tensor, Tensor]:
        src = residual_source(x.sum(dim=1))  # [B, D, H, W], parameter-free
        main = self._warp(src, _resize(self.decode_head(maps), size))
        if self.training and self.auxiliary_head is not None:
            return main, self._warp(src, _resize(self.auxiliary_head(maps[2]), size))
        return main

    def _warp(self, src: Tensor, field: Tensor) -> Tensor:
        """``src`` [B, D, H, W] resampled by ``field`` [B, 1 or 2, D, H, W] (displacement, its SD) -> [B, 1, ...]."""
        return warp_by_field(src, field, int(self.warp_axis), self.warp_jacobian, self.warp_blur)
