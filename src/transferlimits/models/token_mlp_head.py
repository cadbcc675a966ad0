"""A light per-token dense head for a ViT: LayerNorm, one hidden linear layer, and a sub-pixel output.

ProViCNet's published dense head (:class:`~transferlimits.models.provicnet_heads.SegmentationConvHead`) is three
nearest x2 up-samplings with 3x3 convs, trained from random weights at every fine-tuning. This head is the one a ViT
uses to turn tokens back into pixels when nothing else is wanted (MAE's ``decoder_pred``, SETR's naive head): each
token is mapped, on its own, to the ``scale x scale`` pixels of its cell::

    tokens [B, N, C] --LayerNorm--> Linear(C, width) --GELU--> Linear(width, out * scale^2)   [B, N, out * scale^2]
    --depth-to-space--> [B, out, scale * h, scale * w]

It has no spatial kernel and pads nothing, so every output pixel is a function of its own token only: an
encoder-ablated model (:class:`~transferlimits.models.ablation.ZeroedEncoder`) sees identical tokens and outputs
one ``scale x scale`` tile repeated over the grid. A warp field (distortion correction) is built with ``scale=1``,
one displacement per token up-sampled by fixed bilinear resampling
(:class:`~transferlimits.models.heads.SliceDenseModel`), so an ablated model's field is one constant.
Its interface is that of :class:`~transferlimits.models.provicnet_heads.SegmentationConvHead` (``forward(tokens,
grid)``, ``scale``), so :class:`~transferlimits.models.heads.SliceDenseModel` takes either.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from transferlimits.models.provicnet_heads import token_map

__all__ = ["TokenMLPHead"]


class TokenMLPHead(nn.Module):
    """Per-token MLP to a ``scale x scale`` pixel tile: patch tokens -> logits / values at ``scale`` x the token grid.

    Args:
        embed_dim: token width C.
        out_channels: output channels.
        width: the hidden layer's width (default 64).
        scale: output pixels per token along each axis (default 8, the published conv head's up-sampling).

    ``forward(tokens [B, N, C] or map [B, C, h, w], grid=(h, w))`` -> [B, out_channels, scale * h, scale * w].

    Raises:
        ValueError: a non-positive size.
    """

    def __init__(self, embed_dim: int, out_channels: int, width: int = 64, scale: int = 8) -> None:
        super().__init__()
        if min(embed_dim, out_channels, width, scale) < 1:
            raise ValueError(f"TokenMLPHead needs positive sizes, got embed_dim={embed_dim}, "
                             f"out_channels={out_channels}, width={width}, scale={scale}")
        self.scale = int(scale)
        self.out_channels = int(out_channels)
        self.norm = nn.LayerNorm(int(embed_dim))
        self.hidden = nn.Sequential(nn.Linear(int(embed_dim), int(width)), nn.GELU())
        self.proj = nn.Linear(int(width), self.out_channels * self.scale ** 2)

    def output_layer(self) -> nn.Linear:
        """The last layer (weights 0 and bias ``v`` make every output pixel ``v``: ``fullres.start_output_at``)."""
        return self.proj

    def forward(self, tokens: Tensor, grid: tuple[int, int] | None = None) -> Tensor:
        maps = token_map(tokens, grid).permute(0, 2, 3, 1)  # [B, h, w, C]
        out = self.proj(self.hidden(self.norm(maps)))  # [B, h, w, out * s^2]
        return F.pixel_shuffle(out.permute(0, 3, 1, 2), self.scale)  # [B, out, s*h, s*w]
