"""Full-resolution output for the dense heads, with every learnable path going through the encoder.

The published dense heads (ProFound's 3D UperNet, ProViCNet's ``conv_head8``) predict at stride 4 (UperNet) or at
8x the ViT token grid and upsample. STUDY §5.1 asks that the encoder carry the task: **no learnable path from the
raw input to the output may bypass the encoder** (an earlier version refined the output from the raw input with
a learnable full-resolution conv path and added ``gain * input + bias``; with the encoder zeroed it kept 92-101 %
of the gain). What is left here is allowed by that rule:

* :class:`SubPixelOutput`: a learned sub-pixel (depth-to-space) output layer that maps the decoder's fused
  features at stride ``r`` to the full-resolution grid (a 1x1x1 conv to ``out * r^3`` channels, then
  :func:`pixel_shuffle_3d`): fed by encoder features only;
* an **identity residual** (same-modality restoration only, ``data.views.in_input_units``): the output is
  ``src + f(encoder features)`` where ``src`` is the model input in the target's units, parameter-free. The views
  express such a target in the z-score of its input over the body mask and z-score that input the same way, so
  ``src`` needs no rescaling; the decoder's last layer starts at zero so every run starts exactly at the identity
  baseline. Translation to another modality gets no residual (its output starts at the train median through the
  last layer's bias, :func:`start_output_at`);
* fixed resampling: :func:`resize_to` and :func:`from_view_size` (the exact inverse of a slice view's bilinear
  up-sampling, so a slice model's residual sees the very voxels of the target grid).
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SubPixelOutput", "pixel_shuffle_3d", "residual_source", "resize_to", "from_view_size",
           "start_output_at"]


def residual_source(z: Tensor) -> Tensor:
    """The identity residual of a same-modality restoration head: the model input ``z`` itself, detached.

    Args:
        z: [B, *spatial] input channel (volume model: channel sum; slice model: centre slices of a case).

    Returns:
        [B, *spatial] float tensor, detached (a fixed, parameter-free function of the input).

    Raises:
        ValueError: ``z`` has fewer than 2 dimensions.
    """
    if z.ndim < 2:
        raise ValueError(f"residual_source needs [B, *spatial], got shape {tuple(z.shape)}")
    return z.detach()


def pixel_shuffle_3d(x: Tensor, r: int) -> Tensor:
    """Depth-to-space in 3D: [B, C * r^3, D, H, W] -> [B, C, D * r, H * r, W * r].

    Raises:
        ValueError: ``x`` is not 5-D or its channels are not a multiple of ``r**3``.
    """
    if x.ndim != 5 or r < 1 or x.shape[1] % (r ** 3):
        raise ValueError(f"pixel_shuffle_3d needs [B, C*r^3, D, H, W] with r={r}, got {tuple(x.shape)}")
    b, c, d, h, w = x.shape
    c //= r ** 3
    x = x.reshape(b, c, r, r, r, d, h, w).permute(0, 1, 5, 2, 6, 3, 7, 4)  # [B, C, D, r, H, r, W, r]
    return x.reshape(b, c, d * r, h * r, w * r)


class SubPixelOutput(nn.Module):
    """A learned full-resolution output from decoder features at stride ``r`` (sub-pixel convolution).

    Args:
        in_channels: channels of the decoder's fused features.
        out_channels: output channels.
        r: the features' stride relative to the output grid (ProFound: 4).

    ``forward(feats [B, in_channels, D, H, W], size)`` -> [B, out_channels, *size] (the ``r``-times grid, resized
    to ``size`` by fixed trilinear resampling where it differs).
    """

    def __init__(self, in_channels: int, out_channels: int, r: int) -> None:
        super().__init__()
        if min(in_channels, out_channels, r) < 1:
            raise ValueError(f"SubPixelOutput: in_channels={in_channels}, out_channels={out_channels} and r={r} "
                             "must be >= 1")
        self.r = int(r)
        self.proj = nn.Conv3d(in_channels, out_channels * self.r ** 3, 1)

    def forward(self, feats: Tensor, size: tuple[int, ...]) -> Tensor:
        return resize_to(pixel_shuffle_3d(self.proj(feats), self.r), tuple(size))

    def last_layer(self) -> nn.Conv3d:
        """The layer whose weights start at zero (residual) and whose bias sets a start value."""
        return self.proj


def start_output_at(layer: nn.Module, value: float) -> None:
    """Make a dense head's last layer output the constant ``value`` at initialisation (weights 0, bias ``value``).

    With the identity residual ``value`` is 0 (start exactly at the identity baseline); a translation head starts
    at the train median of its target.
    """
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.fill_(float(value))


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
    column rank and this applies its pseudo-inverse per axis, which undoes it exactly (to float error). Otherwise
    (a down-sampled view) it falls back to :func:`resize_to`.

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
