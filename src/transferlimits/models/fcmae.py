"""FCMAE: the fully convolutional masked autoencoder that pre-trains ``profound`` (ProFound's objective).

Masking: random patches of the stride-16 grid are removed (ratio 0.6 by default, ``len_keep =
int(L * (1 - ratio))``; mask value 1 = removed). Loss: MSE between the decoder's prediction and the
per-patch normalised input ("norm-pix"), averaged over the **masked** patches only.

Sparse convolution, emulated densely. ProFound runs the encoder on a MinkowskiEngine sparse tensor that
holds the visible sites only. We run the dense :class:`~.convnext3d.ConvNeXtV2_3D` and keep the masked
sites at exactly zero wherever a spatial operation reads them: after the stem (as upstream, whose stem is
dense too), after every downsampling layer, inside every block just before the GRN, and after every
block (see ``ConvNeXtV2_3D.forward_stages``). Consequences:

* The depthwise k7 convolution at a visible site sums its neighbours; masked neighbours hold zeros, so
  they contribute nothing, which is what a sparse convolution does with absent sites (dense zero padding
  at the volume border likewise matches absent sites). Masked zeros do enter visible sites' receptive
  fields, but as zeros, never as masked content.
* LayerNorm and the MLP act per site, so the values they produce at masked sites are irrelevant; they are
  re-zeroed before anything mixes sites. The GRN norms and the channel mean therefore include masked
  sites only as zeros, i.e. **we exclude masked sites from the GRN statistics**, like a sparse GRN over
  the active coordinates.
* The strided k2 convolutions read 2x2x2 windows that never straddle a 16^3 patch border (16 = 4*2*2),
  so no window mixes masked and visible patches.

Hence the visible-site features equal those of the sparse network up to floating point, and the masked
input voxels cannot influence the encoder output, the prediction, or anything but the target. What
differs from MinkowskiEngine: (1) cost - every masked site is computed and thrown away (no 2.5x saving);
(2) within a block, LayerNorm/MLP produce (discarded) values at masked sites, which matter only for
FLOP counts; (3) the sparse GRN of ProFound's code is commented out upstream, so its exact statistics are
not known; ours follow the ConvNeXt-V2 sparse GRN (per sample, over active sites).

Decoder: ``proj`` Conv3d(C4 -> decoder_dim, 1), a learnable ``mask_token`` (1, dec, 1, 1, 1) placed at
masked cells, one ConvNeXt-V2 block, ``pred`` Conv3d(dec -> 16^3 * 3, 1).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .convnext3d import Block3D, ConvNeXtV2_3D

__all__ = ["FCMAE", "patchify3d", "unpatchify3d", "random_patch_mask"]


def patchify3d(x: Tensor, p: int) -> Tensor:
    """[B, C, D, H, W] -> [B, L, p^3 * C]; voxels in (pd, ph, pw) order, channel last; L in (d, h, w) order."""
    b, c, d, h, w = x.shape
    x = x.reshape(b, c, d // p, p, h // p, p, w // p, p)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)
    return x.reshape(b, (d // p) * (h // p) * (w // p), p**3 * c)


def unpatchify3d(x: Tensor, p: int, grid: tuple[int, int, int], chans: int = 3) -> Tensor:
    """Inverse of :func:`patchify3d`: [B, L, p^3 * C] -> [B, C, D, H, W] for the patch ``grid``."""
    b = x.shape[0]
    gd, gh, gw = grid
    x = x.reshape(b, gd, gh, gw, p, p, p, chans).permute(0, 7, 1, 4, 2, 5, 3, 6)
    return x.reshape(b, chans, gd * p, gh * p, gw * p)


def random_patch_mask(batch: int, num_patches: int, mask_ratio: float, device=None, generator=None) -> Tensor:
    """Random mask [B, L] (1 = removed), exactly ``L - int(L * (1 - mask_ratio))`` ones per row."""
    len_keep = int(num_patches * (1 - mask_ratio))
    noise = torch.rand(batch, num_patches, device=device, generator=generator)
    ids_restore = torch.argsort(torch.argsort(noise, dim=1), dim=1)
    return (ids_restore >= len_keep).float()


class FCMAE(nn.Module):
    """Fully convolutional masked autoencoder around a :class:`ConvNeXtV2_3D`.

    Args:
        encoder: the ``profound`` encoder (its final ``norm`` is not used during pre-training).
        mask_ratio: fraction of patches removed, in (0, 1). Default 0.6.
        decoder_dim: decoder width. Default 512 (ProFound); use a small one (e.g. 64) for smoke runs.
        patch_size: masking patch edge in voxels; must equal the encoder's total stride (16). Default 16.
        norm_pix_loss: normalise each target patch by its mean and unbiased variance (+1e-6). Default True.

    ``forward(x [B, 3, D, H, W], mask=None)`` returns ``(loss, pred [B, L, 16^3 * 3], mask [B, L])``.

    Raises:
        ValueError: mask_ratio outside (0, 1), decoder_dim < 1, patch_size != 16, bad input shape.
    """

    def __init__(
        self,
        encoder: ConvNeXtV2_3D,
        mask_ratio: float = 0.6,
        decoder_dim: int = 512,
        patch_size: int = 16,
        norm_pix_loss: bool = True,
    ) -> None:
        super().__init__()
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        if decoder_dim < 1:
            raise ValueError(f"decoder_dim must be >= 1, got {decoder_dim}")
        if patch_size != 16:
            raise ValueError(f"patch_size must equal the encoder's total stride 16, got {patch_size}")
        self.encoder = encoder
        self.mask_ratio, self.patch_size, self.norm_pix_loss = float(mask_ratio), patch_size, norm_pix_loss
        self.in_chans = encoder.in_chans
        self.proj = nn.Conv3d(encoder.out_dim, decoder_dim, kernel_size=1)
        self.mask_token = nn.Parameter(torch.zeros(1, decoder_dim, 1, 1, 1))
        self.decoder = nn.Sequential(Block3D(decoder_dim))
        self.pred = nn.Conv3d(decoder_dim, patch_size**3 * self.in_chans, kernel_size=1)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in (self.proj, self.pred, self.decoder):
            m.apply(ConvNeXtV2_3D._init_weights)

    def grid(self, x: Tensor) -> tuple[int, int, int]:
        """Patch grid (D/16, H/16, W/16) of an input, validating its shape."""
        p = self.patch_size
        if x.ndim != 5 or x.shape[1] != self.in_chans:
            raise ValueError(f"expected input [B, {self.in_chans}, D, H, W], got {tuple(x.shape)}")
        if any(s % p for s in x.shape[2:]):
            raise ValueError(f"D, H, W must be multiples of the patch size {p}, got {tuple(x.shape[2:])}")
        return tuple(s // p for s in x.shape[2:])  # type: ignore[return-value]

    def target(self, x: Tensor) -> Tensor:
        """Patchified (and, with ``norm_pix_loss``, per-patch normalised) input [B, L, p^3 * C]."""
        t = patchify3d(x, self.patch_size)
        if self.norm_pix_loss:
            mean = t.mean(dim=-1, keepdim=True)
            var = t.var(dim=-1, keepdim=True)  # unbiased
            t = (t - mean) / (var + 1.0e-6) ** 0.5
        return t

    def forward_decoder(self, feat: Tensor, mask: Tensor) -> Tensor:
        """Stage-4 features [B, C4, gd, gh, gw] and mask [B, L] -> prediction [B, L, p^3 * C]."""
        x = self.proj(feat)
        m = mask.reshape(x.shape[0], 1, *x.shape[2:]).to(x.dtype)
        x = x * (1.0 - m) + self.mask_token.to(x.dtype) * m
        x = self.pred(self.decoder(x))
        return x.flatten(2).transpose(1, 2)

    def forward_loss(self, x: Tensor, pred: Tensor, mask: Tensor) -> Tensor:
        """Mean over masked patches of the per-patch MSE."""
        per_patch = (pred.float() - self.target(x).float()).pow(2).mean(dim=-1)
        return (per_patch * mask).sum() / mask.sum()

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Mask, encode, decode, score.

        Args:
            x: [B, 3, D, H, W], D, H, W multiples of 16.
            mask: optional [B, L] with 1 = removed (L = D*H*W / 16^3); random with ``mask_ratio`` if None.

        Returns:
            ``(loss, pred [B, L, 16^3 * 3], mask [B, L])``.
        """
        gd, gh, gw = self.grid(x)
        num = gd * gh * gw
        if mask is None:
            mask = random_patch_mask(x.shape[0], num, self.mask_ratio, device=x.device)
        elif tuple(mask.shape) != (x.shape[0], num):
            raise ValueError(f"mask must be [B, L] = {(x.shape[0], num)}, got {tuple(mask.shape)}")
        mask = mask.to(device=x.device, dtype=torch.float32)
        keep = (1.0 - mask).reshape(x.shape[0], gd, gh, gw)
        feat = self.encoder.forward_stages(x, keep=keep)[-1]
        pred = self.forward_decoder(feat, mask)
        return self.forward_loss(x, pred, mask), pred, mask
