"""A full-resolution path for the dense heads: a skip from the input into a small refinement decoder.

The published dense heads (ProFound's 3D UperNet, ProViCNet's ``conv_head8``) predict at stride 4 (UperNet) or
at 8x the ViT token grid and upsample; neither sees the input at full resolution, so a restoration task cannot
beat returning its degraded input (the identity baseline): fine detail is lost before the head starts. This
module is the study's deviation from both heads (opt-in: ``FinetuneRecipe.full_res_skip`` / ``residual``):

* **full-resolution skip**: the model input at the output resolution is concatenated with the head's upsampled
  output channels and refined by ``Conv(k3) -> GELU -> Conv(k1) -> GELU -> Conv(k1)`` at full resolution
  (3D convs for volume models, 2D per slice for slice models); the last conv is zero-initialised, so at
  initialisation the model outputs exactly what the published head outputs (or the residual source below);
* **residual** (regression tasks): the output is ``gain * src + bias + head + refinement``, where ``src`` is the
  input channel that carries the task's input, as the model sees it. The views (``data.views``) express a
  same-modality restoration target in the z-score of its input over the body mask and z-score that input the
  same way, so ``src`` is already in the target's units and the model starts exactly at the identity baseline
  (a slice model too, see below); for translation to another modality (a fixed target unit) ``gain`` and
  ``bias`` (learnt scalars, init 1 and 0) map the input's z-score to the target's units. For a volume model
  ``src`` is the sum of the input channels (the unused channels of a restoration task are zero); for a slice
  model the slice of each stack nearest its centre (``data.views.centre_channels``), taken back from the view's slice size to the target grid by
  :func:`from_view_size` (the exact inverse of the view's bilinear up-sampling, so a slice model also starts
  exactly at the identity baseline; a plain bilinear resize back loses ~0.7 dB PSNR at 64 -> 112 -> 64 px).
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FullResRefine", "residual_source", "resize_to", "from_view_size"]


def residual_source(z: Tensor) -> Tensor:
    """The residual term of a regression head: the model input ``z`` itself, detached.

    The views put the input of a same-modality restoration task in the target's units (``data.views``), so no
    per-case rescaling is needed (an earlier version estimated one from ``z``'s quantiles, which assumed a zero
    background that the phantom does not have).

    Args:
        z: [B, *spatial] input channel (volume model: channel sum; slice model: centre slices of a case).

    Returns:
        [B, *spatial] float tensor, detached (a fixed function of the input).

    Raises:
        ValueError: ``z`` has fewer than 2 dimensions.
    """
    if z.ndim < 2:
        raise ValueError(f"residual_source needs [B, *spatial], got shape {tuple(z.shape)}")
    return z.detach()


class FullResRefine(nn.Module):
    """Full-resolution refinement of a dense head's output from the input (see the module docstring).

    Args:
        in_channels: channels of the full-resolution input skip.
        head_channels: channels of the head output it refines (= out_channels).
        out_channels: output channels.
        width: hidden width (default 8). One 3x3(x3) conv gives the full-resolution context, then two 1x1 convs
            (a second 3x3x3 conv at width 16 cost 4x the path's FLOPs; measured on 2 cores, width 8 costs 0.21 s per
            training step of 4 volumes of 16x64x64, width 16 0.29 s, against 0.19 s for encoder + UperNet-32).
        ndim: 3 (volumes [B, C, D, H, W]) or 2 (slices [B, C, H, W]).
        residual: add ``gain * src + bias`` (regression tasks) (default False).

    ``forward(head [B, head_channels, *S], skip [B, in_channels, *S], src [B, 1, *S] | None)`` returns
    [B, out_channels, *S] = ``head + refine(cat(skip, head))`` (+ ``gain * src + bias`` when residual).
    """

    def __init__(self, in_channels: int, head_channels: int, out_channels: int, width: int = 8, ndim: int = 3,
                 residual: bool = False) -> None:
        super().__init__()
        if min(in_channels, head_channels, out_channels, width) < 1 or ndim not in (2, 3):
            raise ValueError(f"FullResRefine: channels and width must be >= 1 and ndim 2 or 3; got in_channels="
                             f"{in_channels}, head_channels={head_channels}, out_channels={out_channels}, "
                             f"width={width}, ndim={ndim}")
        conv = nn.Conv3d if ndim == 3 else nn.Conv2d
        self.refine = nn.Sequential(conv(in_channels + head_channels, width, 3, padding=1), nn.GELU(),
                                    conv(width, width, 1), nn.GELU(), conv(width, out_channels, 1))
        nn.init.zeros_(self.refine[-1].weight)
        nn.init.zeros_(self.refine[-1].bias)
        self.residual = bool(residual)
        if self.residual:
            self.gain = nn.Parameter(torch.ones(1))
            self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, head: Tensor, skip: Tensor, src: Tensor | None = None) -> Tensor:
        if head.shape[2:] != skip.shape[2:]:
            raise ValueError(f"head {tuple(head.shape)} and skip {tuple(skip.shape)} must share the spatial size")
        head = head.contiguous()  # one memory format for the concatenation (the encoder may run channels-last)
        out = head + self.refine(torch.cat([skip.contiguous(), head], dim=1))
        if self.residual:
            if src is None or src.shape[2:] != head.shape[2:]:
                raise ValueError("a residual FullResRefine needs src [B, 1, *spatial] of the head's size")
            out = out + self.gain * src + self.bias
        return out


def resize_to(x: Tensor, size: tuple[int, ...]) -> Tensor:
    """Linear resize of [B, C, *S] to ``size`` (no-op when equal)."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    mode = "trilinear" if x.ndim == 5 else "bilinear"
    return F.interpolate(x, size=tuple(size), mode=mode, align_corners=False)


@lru_cache(maxsize=16)
def _upsample_inverse(n_in: int, n_out: int) -> Tensor:
    """[n_in, n_out] float64: the pseudo-inverse of 1D linear up-sampling n_in -> n_out (align_corners=False)."""
    basis = torch.eye(n_in, dtype=torch.float64)[None]  # [1, n_in (channels), n_in (length)]
    up = F.interpolate(basis, size=n_out, mode="linear", align_corners=False)[0].T  # [n_out, n_in]
    return torch.linalg.pinv(up)


def from_view_size(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Slices [N, C, S, S'] of a 2.5D view back on the (H, W) target grid.

    The views (``data.views``) resize each axial slice to the model's slice size bilinearly
    (``align_corners=False``). Where that was an up-sampling (S >= H and S' >= W) the up-sampling matrix has full
    column rank and this applies its pseudo-inverse per axis, which undoes it exactly (to float error): a slice
    model's full-resolution skip and residual then see the very voxels of the target grid. Otherwise (a
    down-sampled view) it falls back to :func:`resize_to`.

    Args:
        x: [N, C, S, S'] slices at the view's size.
        size: (H, W) of the target grid.

    Returns:
        [N, C, H, W] in ``x``'s dtype.
    """
    h, w = (int(s) for s in size)
    s_h, s_w = x.shape[-2:]
    if (s_h, s_w) == (h, w):
        return x
    if s_h < h or s_w < w:
        return resize_to(x, (h, w))
    ph = _upsample_inverse(h, s_h).to(x.device, x.dtype)  # [H, S]
    pw = _upsample_inverse(w, s_w).to(x.device, x.dtype)  # [W, S']
    return ph @ x @ pw.T
