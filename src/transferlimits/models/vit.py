"""The ``provicnet`` encoder: a DINOv2-style 2D ViT with register and slice-position tokens.

The backbone :class:`DinoV2ViT` uses the DINOv2 torch-hub parameter names (``cls_token``,
``pos_embed``, ``register_tokens``, ``mask_token``, ``patch_embed.proj``, flat ``blocks.N.*``,
``norm``) so that ProViCNet's released ``backbone.*`` state dicts load strictly. The position
embedding is stored for 518 px (37 x 37 patches + CLS) and resized bicubically with antialiasing
to the input token grid at forward time, as the hub ``*_reg`` variants do (``interpolate_offset=0``).

:class:`ProViCNetEncoder` adds ProViCNet's two slice-position tokens: ``axis_pos`` (slice index)
and ``axis_max`` (slice count) are ``Linear(1, C)`` of the raw float values, inserted after the
registers without a position embedding. Token sequence: ``[cls, 4 registers, axis_pos, axis_max,
N patch tokens]``. The input is 3 adjacent axial slices of one sequence (2.5D).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .output import EncoderOutput
from .vit_blocks import PATCH_SIZE, Block, PatchEmbed

__all__ = ["DinoV2ViT", "ProViCNetEncoder", "PROVICNET_SIZES", "build_provicnet"]

#: Encoder sizes: (embed_dim, depth, num_heads). ``vits14`` is DINOv2 ViT-S/14 (ProViCNet); ``cpu`` is the
#: two-core ``cpu`` profile's size (``benchmarks/estimate_cpu.py``).
PROVICNET_SIZES: dict[str, dict[str, int]] = {
    "test": {"embed_dim": 24, "depth": 1, "num_heads": 2},
    "smoke": {"embed_dim": 48, "depth": 2, "num_heads": 2},
    "cpu": {"embed_dim": 96, "depth": 4, "num_heads": 4},
    "vits14": {"embed_dim": 384, "depth": 12, "num_heads": 6},
}

#: DINOv2 was trained at 518 px, so its position embedding covers a 37 x 37 patch grid.
POS_EMBED_GRID = 37


class DinoV2ViT(nn.Module):
    """DINOv2 ViT with registers, in hub naming (``block_chunks=0``).

    Args:
        embed_dim: token width C (default 384, ViT-S).
        depth: number of blocks (default 12).
        num_heads: attention heads; must divide ``embed_dim`` (default 6).
        num_registers: register tokens (default 4).
        mlp_ratio: MLP hidden width / C (default 4.0).
        in_chans: input channels (default 3: three adjacent slices).
        layerscale_init: initial LayerScale ``gamma`` (default 1.0, as the hub models).
    """

    def __init__(self, embed_dim: int = 384, depth: int = 12, num_heads: int = 6, num_registers: int = 4,
                 mlp_ratio: float = 4.0, in_chans: int = 3, layerscale_init: float = 1.0) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim={embed_dim} must be a positive multiple of num_heads={num_heads}")
        if depth < 1 or num_registers < 0:
            raise ValueError(f"depth={depth} must be >= 1 and num_registers={num_registers} >= 0")
        self.embed_dim = embed_dim
        self.num_register_tokens = num_registers
        self.patch_size = PATCH_SIZE
        self.patch_embed = PatchEmbed(in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + POS_EMBED_GRID**2, embed_dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, num_registers, embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, layerscale_init) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        nn.init.normal_(self.register_tokens, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def interpolate_pos_encoding(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """Position embedding for CLS + a ``grid_h x grid_w`` patch grid: [1, 1 + h*w, C].

        Bicubic with antialiasing from the stored 37 x 37 grid, computed in float32.
        """
        pos = self.pos_embed
        if grid_h == POS_EMBED_GRID and grid_w == POS_EMBED_GRID:
            return pos
        cls_pos, patch_pos = pos[:, :1], pos[:, 1:]
        patch_pos = patch_pos.float().reshape(1, POS_EMBED_GRID, POS_EMBED_GRID, -1).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(patch_pos, size=(grid_h, grid_w), mode="bicubic", antialias=True)
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1).to(pos.dtype)
        return torch.cat([cls_pos, patch_pos], dim=1)

    def prepare_tokens(
        self,
        x: torch.Tensor,
        masks: torch.Tensor | None = None,
        extra_tokens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Build ``[cls, registers, extra tokens, patch tokens]``.

        Args:
            x: images [B, C_in, H, W], H and W multiples of 14.
            masks: optional bool [B, N]; True patches are replaced by ``mask_token`` before the
                position embedding is added (DINOv2 style).
            extra_tokens: optional [B, E, C] inserted after the registers, without position embedding.

        Returns:
            tokens [B, 1 + R + E + N, C].
        """
        b, _, h, w = x.shape
        gh, gw = h // self.patch_size, w // self.patch_size
        tokens = self.patch_embed(x)
        if masks is not None:
            if masks.shape != tokens.shape[:2]:
                raise ValueError(f"masks must have shape {tuple(tokens.shape[:2])} (B, N), got {tuple(masks.shape)}")
            tokens = torch.where(masks.unsqueeze(-1), self.mask_token.to(tokens.dtype).unsqueeze(0), tokens)
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), tokens], dim=1)
        tokens = tokens + self.interpolate_pos_encoding(gh, gw)
        parts = [tokens[:, :1], self.register_tokens.expand(b, -1, -1)]
        if extra_tokens is not None:
            parts.append(extra_tokens)
        parts.append(tokens[:, 1:])
        return torch.cat(parts, dim=1)


class ProViCNetEncoder(nn.Module):
    """ProViCNet encoder: ``backbone`` (:class:`DinoV2ViT`) + ``axis_pos`` / ``axis_max`` tokens.

    Args:
        img_size: slice size S in pixels, a multiple of 14 (default 448 -> 32 x 32 tokens).
        embed_dim: token width C (default 384).
        depth: transformer blocks (default 12).
        num_heads: attention heads (default 6).
        num_registers: register tokens (default 4).
        layerscale_init: initial LayerScale value (default 1.0).
    """

    input_kind = "slices"
    patch_size = PATCH_SIZE
    n_extra_tokens = 2

    def __init__(self, img_size: int = 448, embed_dim: int = 384, depth: int = 12, num_heads: int = 6,
                 num_registers: int = 4, layerscale_init: float = 1.0) -> None:
        super().__init__()
        if img_size <= 0 or img_size % PATCH_SIZE != 0:
            raise ValueError(f"img_size={img_size} must be a positive multiple of the patch size {PATCH_SIZE}")
        self.backbone = DinoV2ViT(embed_dim, depth, num_heads, num_registers, layerscale_init=layerscale_init)
        self.axis_pos = nn.Linear(1, embed_dim)
        self.axis_max = nn.Linear(1, embed_dim)
        for lin in (self.axis_pos, self.axis_max):
            nn.init.normal_(lin.weight, std=0.02)
            nn.init.zeros_(lin.bias)
        self.img_size = img_size
        self.grid_size = img_size // PATCH_SIZE
        self.out_dim = embed_dim
        self.map_dims = [embed_dim] * depth
        self.map_names = [f"block{i}" for i in range(depth)]
        #: index of the first patch token in the sequence (cls + registers + 2 slice tokens).
        self.n_prefix = 1 + num_registers + self.n_extra_tokens

    def forward_features(
        self, x: torch.Tensor, pos: torch.Tensor | None = None, masks: torch.Tensor | None = None
    ) -> EncoderOutput:
        """Encode 2.5D slice stacks.

        Args:
            x: [B, 3, S, S] three adjacent slices; S a multiple of 14 (need not equal ``img_size``).
            pos: [B, 2] float ``(slice_index, num_slices)``; required.
            masks: optional bool [B, N] patch mask (True -> ``mask_token``).

        Returns:
            EncoderOutput with ``pooled`` = final-norm CLS [B, C], ``maps`` = one [B, C, h, w] per
            block (the last after the final norm) and ``tokens`` = final-norm patch tokens [B, N, C].
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"x must be [B, 3, S, S], got shape {tuple(x.shape)}")
        b, _, h, w = x.shape
        if h % PATCH_SIZE or w % PATCH_SIZE:
            raise ValueError(f"input size {h}x{w} must be a multiple of the patch size {PATCH_SIZE}")
        if pos is None or pos.shape != (b, 2):
            got = None if pos is None else tuple(pos.shape)
            raise ValueError(f"pos must be a float tensor [B, 2] = (slice_index, num_slices) with B={b}, got {got}")
        pos = pos.to(dtype=self.axis_pos.weight.dtype)
        extra = torch.stack([self.axis_pos(pos[:, 0:1]), self.axis_max(pos[:, 1:2])], dim=1)
        tokens = self.backbone.prepare_tokens(x, masks=masks, extra_tokens=extra.to(x.dtype))
        gh, gw = h // PATCH_SIZE, w // PATCH_SIZE
        k = self.n_prefix
        maps = []
        blocks = self.backbone.blocks
        for i, blk in enumerate(blocks):
            tokens = blk(tokens)
            if i < len(blocks) - 1:
                maps.append(_to_map(tokens[:, k:], gh, gw))
        normed = self.backbone.norm(tokens)
        patch_tokens = normed[:, k:]
        maps.append(_to_map(patch_tokens, gh, gw))
        return EncoderOutput(pooled=normed[:, 0], maps=maps, tokens=patch_tokens)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled CLS embedding [B, C]."""
        return self.forward_features(x, pos).pooled


def _to_map(tokens: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
    """[B, N, C] row-major tokens -> [B, C, gh, gw]."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], gh, gw)


def build_provicnet(size: str = "vits14", img_size: int = 448) -> ProViCNetEncoder:
    """Build a :class:`ProViCNetEncoder` of a named size.

    Args:
        size: one of ``PROVICNET_SIZES`` (``"test"``, ``"smoke"``, ``"cpu"``, ``"vits14"``; default ``"vits14"``).
        img_size: slice size in pixels, a multiple of 14 (default 448).
    """
    if size not in PROVICNET_SIZES:
        raise ValueError(f"unknown provicnet size {size!r}; valid: {sorted(PROVICNET_SIZES)}")
    return ProViCNetEncoder(img_size=img_size, **PROVICNET_SIZES[size])

