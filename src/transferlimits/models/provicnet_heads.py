"""ProViCNet's two heads: the ``conv_head8`` segmentation decoder and the ``CL_Head`` projector.

Module and index names follow the upstream checkpoints (``head.segmentation_conv.{1,2,5,6,9}.*``
and ``CL_Head.mlp.{0,2,4}.*`` / ``CL_Head.last_layer.*``) so released state dicts load strictly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

__all__ = ["SegmentationConvHead", "CLHead", "token_map"]


def token_map(tokens: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
    """Row-major patch tokens [B, N, C] as a map [B, C, h, w] (a map [B, C, h, w] is returned as it is).

    Args:
        tokens: [B, N, C] or [B, C, h, w].
        grid: (h, w) token grid; default square ``sqrt(N)``.

    Raises:
        ValueError: N is not square (without ``grid``), ``grid`` does not hold N tokens, or a tensor of another rank.
    """
    if tokens.ndim == 4:
        return tokens
    if tokens.ndim != 3:
        raise ValueError(f"tokens must be [B, N, C] or [B, C, h, w], got shape {tuple(tokens.shape)}")
    b, n, c = tokens.shape
    if grid is None:
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"{n} tokens are not a square grid; pass grid=(h, w)")
        grid = (side, side)
    if grid[0] * grid[1] != n:
        raise ValueError(f"grid={grid} does not hold {n} tokens")
    return tokens.transpose(1, 2).reshape(b, c, grid[0], grid[1])


class SegmentationConvHead(nn.Module):
    """Three nearest x2 upsamplings with 3x3 convs: patch tokens -> logits at 8x the token grid.

    ``segmentation_conv`` = [0 Upsample, 1 Conv C->mid0, 2 BN, 3 ReLU, 4 Upsample, 5 Conv mid0->mid1,
    6 BN, 7 ReLU, 8 Upsample, 9 Conv mid1->n_classes]. With ViT-S at 448 px the output is 256 x 256
    (the label resolution upstream), not the input size.

    Args:
        embed_dim: token width C.
        n_classes: output channels (default 4: background, gland, indolent, csPCa).
        mid: widths of the two hidden convs (default (128, 64), upstream; smaller for smoke runs).
    """

    #: output pixels per token along each axis (three x2 up-samplings)
    SCALE = 8

    def __init__(self, embed_dim: int, n_classes: int = 4, mid: tuple[int, int] = (128, 64)) -> None:
        super().__init__()
        if embed_dim <= 0 or n_classes <= 0 or len(mid) != 2 or min(mid) <= 0:
            raise ValueError(
                f"embed_dim={embed_dim}, n_classes={n_classes} must be positive and mid={mid} two positive widths"
            )
        m0, m1 = mid
        self.segmentation_conv = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(embed_dim, m0, 3, padding=1),
            nn.BatchNorm2d(m0),
            nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(m0, m1, 3, padding=1),
            nn.BatchNorm2d(m1),
            nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(m1, n_classes, 3, padding=1),
        )
        self.scale = self.SCALE

    def output_layer(self) -> nn.Conv2d:
        """The last conv (weights 0 and bias ``v`` make every output pixel ``v``: ``fullres.start_output_at``)."""
        return self.segmentation_conv[-1]

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """Decode patch tokens.

        Args:
            tokens: [B, N, C] row-major patch tokens, or a map [B, C, h, w].
            grid: (h, w) token grid; default square ``sqrt(N)``.

        Returns:
            logits [B, n_classes, 8h, 8w].
        """
        return self.segmentation_conv(token_map(tokens, grid))


class CLHead(nn.Module):
    """DINO-head-shaped projector used by ProViCNet's patch contrastive loss.

    MLP ``in -> hidden -> hidden -> bottleneck`` (GELU, no BN), L2 normalisation, then a
    weight-normalised ``last_layer = Linear(bottleneck, out_dim, bias=False)`` whose magnitude
    ``g`` is fixed at 1 (so each output is a cosine to a unit prototype). Uses the modern
    ``torch.nn.utils.parametrizations.weight_norm`` (state-dict names
    ``last_layer.parametrizations.weight.original0`` (g) / ``original1`` (v)); the loader maps the
    legacy ``weight_g`` / ``weight_v`` names onto them.

    Args:
        in_dim: token width.
        hidden: MLP width (default 2048).
        bottleneck: width before the last layer (default 256).
        out_dim: output width (default 65536).
    """

    def __init__(self, in_dim: int, hidden: int = 2048, bottleneck: int = 256, out_dim: int = 65536) -> None:
        super().__init__()
        if min(in_dim, hidden, bottleneck, out_dim) <= 0:
            raise ValueError(
                f"CLHead dims must be positive, got in_dim={in_dim}, hidden={hidden}, "
                f"bottleneck={bottleneck}, out_dim={out_dim}"
            )
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, bottleneck)
        )
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)
        last = nn.Linear(bottleneck, out_dim, bias=False)
        nn.init.xavier_normal_(last.weight)
        self.last_layer = weight_norm(last, name="weight", dim=0)
        g = self.last_layer.parametrizations.weight.original0
        with torch.no_grad():
            g.fill_(1.0)
        g.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[..., in_dim] -> [..., out_dim]."""
        x = F.normalize(self.mlp(x), dim=-1, p=2)
        return self.last_layer(x)
