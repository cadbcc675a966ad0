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
  degraded input mapped to the target's units per case. Inputs are z-scored (``data.views``) while targets are
  divided by their 99th percentile, so ``src = (z - min z) / (q99(z | z > min z) - min z)``: the z-score is
  undone up to the per-case scale because the background of the unnormalised image is zero (its z-score is the
  minimum), and the 99th percentile of the foreground restores the target's scale. ``gain`` (init 1) and
  ``bias`` (init 0) are learnt scalars. For a volume model ``src`` is the sum of the input channels (the
  unused channels of a restoration task are zero); for a slice model the centre slice of each stack.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FullResRefine", "residual_source", "resize_to"]


def residual_source(z: Tensor, q: float = 0.99) -> Tensor:
    """The per-case target-unit version of a z-scored input: ``(z - min) / (quantile_q(z > min) - min)``.

    Args:
        z: [B, *spatial] z-scored input, one case per row (every slice of a case in one row).
        q: quantile of the foreground that maps to 1 (default 0.99, the targets' reference scale).

    Returns:
        [B, *spatial] float tensor, detached (a fixed function of the input); 0 where the row is constant.
    """
    if z.ndim < 2:
        raise ValueError(f"residual_source needs [B, *spatial], got shape {tuple(z.shape)}")
    with torch.no_grad():
        flat = z.detach().float().reshape(z.shape[0], -1)
        lo = flat.min(dim=1, keepdim=True).values
        out = []
        for row, m in zip(flat, lo):
            fg = row[row > m + 1e-6]
            hi = torch.quantile(fg[:: max(1, fg.numel() // 65536)], q) if fg.numel() else m[0]
            den = float(hi - m[0])
            out.append((row - m[0]) / den if den > 1e-6 else torch.zeros_like(row))
        return torch.stack(out).reshape(z.shape).to(z.dtype)


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
