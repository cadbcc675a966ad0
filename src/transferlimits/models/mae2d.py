"""MAE2D: masked-image-modelling pre-training of the 2.5D ``provicnet`` ViT (the swapped-objective control).

The ProFound objective (mask patches, reconstruct normalised pixels, loss on masked patches only) moved
onto ProViCNet's architecture (STUDY H6). Choices, stated for the book:

* **Mask-token replacement, not token dropping** (DINOv2 / SimMIM style): the patch embeddings of the
  masked 14 x 14 patches are replaced by the backbone's ``mask_token`` *before* the position embedding
  and the blocks (``encoder.forward_features(x, pos, masks=...)``). The encoder therefore sees the full
  token grid as in fine-tuning, the otherwise unused ``mask_token`` of the released checkpoints gets a
  role, and masked pixels cannot reach any output (they are discarded at the patch embedding).
  ProFound's FCMAE keeps the masked sites as zeros in a dense grid, which is the convolutional analogue.
* Decoder: ``decoder_embed`` Linear(C -> decoder_dim) on the final-norm patch tokens, plus a fixed 2D
  sin-cos position embedding, ``decoder_depth`` pre-norm transformer blocks, LayerNorm, and ``pred``
  Linear(decoder_dim -> 14 * 14 * 3).
* Target: the 3-slice input patchified to [B, N, 14 * 14 * 3] ((ph, pw) pixel order, channel last),
  normalised per patch by its mean and unbiased variance (+1e-6) when ``norm_pix_loss``; MSE per patch,
  averaged over the masked patches.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .fcmae import random_patch_mask

__all__ = ["MAE2D", "patchify2d", "sincos_pos_embed_2d"]


def patchify2d(x: Tensor, p: int) -> Tensor:
    """[B, C, H, W] -> [B, (H/p)*(W/p), p*p*C]; pixels in (ph, pw) order, channel last; row-major tokens."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def sincos_pos_embed_2d(dim: int, gh: int, gw: int, device=None) -> Tensor:
    """Fixed 2D sin-cos embedding [gh*gw, dim] (half the channels for rows, half for columns)."""
    if dim % 4:
        raise ValueError(f"sin-cos embedding needs dim divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32, device=device) / quarter)
    ys, xs = torch.meshgrid(
        torch.arange(gh, dtype=torch.float32, device=device), torch.arange(gw, dtype=torch.float32, device=device),
        indexing="ij",
    )
    out = [torch.sin(ys.reshape(-1, 1) * omega), torch.cos(ys.reshape(-1, 1) * omega),
           torch.sin(xs.reshape(-1, 1) * omega), torch.cos(xs.reshape(-1, 1) * omega)]
    return torch.cat(out, dim=1)


class MAE2D(nn.Module):
    """Masked autoencoder around a :class:`~transferlimits.models.vit.ProViCNetEncoder`.

    Args:
        vit_encoder: the encoder; needs ``backbone.patch_embed.proj`` (Conv2d k14 s14),
            ``backbone.mask_token`` and ``forward_features(x, pos, masks=bool [B, N])``.
        mask_ratio: fraction of patch tokens masked, in (0, 1). Default 0.6.
        decoder_dim: decoder width, divisible by 4 and by ``decoder_heads``. Default 256.
        decoder_depth: decoder transformer blocks (>= 1). Default 1.
        decoder_heads: attention heads in the decoder. Default 4.
        norm_pix_loss: per-patch normalised targets. Default True.

    ``forward(x [B, 3, S, S], pos [B, 2], mask=None)`` returns ``(loss, pred [B, N, 14*14*3], mask [B, N])``
    with mask 1 = masked.

    Raises:
        ValueError: bad mask_ratio, decoder sizes, or input shape.
    """

    def __init__(
        self,
        vit_encoder: nn.Module,
        mask_ratio: float = 0.6,
        decoder_dim: int = 256,
        decoder_depth: int = 1,
        decoder_heads: int = 4,
        norm_pix_loss: bool = True,
    ) -> None:
        super().__init__()
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        if decoder_depth < 1:
            raise ValueError(f"decoder_depth must be >= 1, got {decoder_depth}")
        if decoder_dim < 4 or decoder_dim % 4 or decoder_heads < 1 or decoder_dim % decoder_heads:
            raise ValueError(
                f"decoder_dim ({decoder_dim}) must be a positive multiple of 4 and of decoder_heads ({decoder_heads})"
            )
        self.encoder = vit_encoder
        proj = vit_encoder.backbone.patch_embed.proj
        self.patch_size = int(proj.kernel_size[0])
        self.in_chans = int(proj.in_channels)
        self.mask_ratio, self.norm_pix_loss = float(mask_ratio), norm_pix_loss
        self.decoder_embed = nn.Linear(vit_encoder.out_dim, decoder_dim)
        self.decoder_blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(decoder_dim, decoder_heads, 4 * decoder_dim, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        self.pred = nn.Linear(decoder_dim, self.patch_size**2 * self.in_chans)
        for part in (self.decoder_embed, self.decoder_blocks, self.pred):
            for m in part.modules():
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, std=0.02)
                    nn.init.zeros_(m.bias)

    def grid(self, x: Tensor) -> tuple[int, int]:
        """Token grid (S/14, S/14) of an input, validating its shape."""
        p = self.patch_size
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"expected input [B, {self.in_chans}, S, S], got {tuple(x.shape)}")
        if x.shape[2] % p or x.shape[3] % p:
            raise ValueError(f"input size {tuple(x.shape[2:])} must be a multiple of the patch size {p}")
        return x.shape[2] // p, x.shape[3] // p

    def target(self, x: Tensor) -> Tensor:
        """Patchified (optionally per-patch normalised) input [B, N, 14*14*3]."""
        t = patchify2d(x, self.patch_size)
        if self.norm_pix_loss:
            t = (t - t.mean(dim=-1, keepdim=True)) / (t.var(dim=-1, keepdim=True) + 1.0e-6) ** 0.5
        return t

    def forward_decoder(self, tokens: Tensor, grid: tuple[int, int]) -> Tensor:
        """Final-norm patch tokens [B, N, C] -> prediction [B, N, 14*14*3]."""
        x = self.decoder_embed(tokens)
        x = x + sincos_pos_embed_2d(x.shape[-1], *grid, device=x.device).to(x.dtype)
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.pred(self.decoder_norm(x))

    def forward(self, x: Tensor, pos: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Mask, encode, decode, score.

        Args:
            x: [B, 3, S, S] slice stacks, S a multiple of 14.
            pos: [B, 2] float (slice index, slice count).
            mask: optional [B, N] (1/True = masked); random with ``mask_ratio`` if None.

        Returns:
            ``(loss, pred [B, N, 14*14*3], mask [B, N] float)``.
        """
        gh, gw = self.grid(x)
        n = gh * gw
        if mask is None:
            mask = random_patch_mask(x.shape[0], n, self.mask_ratio, device=x.device)
        elif tuple(mask.shape) != (x.shape[0], n):
            raise ValueError(f"mask must be [B, N] = {(x.shape[0], n)}, got {tuple(mask.shape)}")
        mask = mask.to(device=x.device, dtype=torch.float32)
        out = self.encoder.forward_features(x, pos, masks=mask.bool())
        pred = self.forward_decoder(out.tokens, (gh, gw))
        per_patch = (pred.float() - self.target(x).float()).pow(2).mean(dim=-1)
        loss = (per_patch * mask).sum() / mask.sum().clamp_min(1.0)
        return loss, pred, mask

