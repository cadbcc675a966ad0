"""ProViCNet's training objective on either backbone: DiceCE + label-guided patch-pair loss.

``loss = (1 - alpha) * DiceCE(logits, labels) + alpha * pair_loss``, with MONAI
``DiceCELoss(to_onehot_y=True, softmax=True, weight=class_weights)`` on the 4-class map
(0 background, 1 gland, 2 indolent, 3 csPCa) and the margin-cosine pair loss of
:mod:`.pair_mining` on ``CL_Head`` projections of token features (anchors, positives and negatives
mined per sample on the label grid aligned with the token grid; ``max_pairs`` of each kind per sample).

- :class:`ProViCNetContrastive` (native pair): 2D ViT, ``conv_head8`` decoder at 8x the token grid,
  pair loss on the final-norm patch tokens. Module names match upstream (``head.segmentation_conv``,
  ``CL_Head``); the encoder holds ``backbone``, ``axis_pos``, ``axis_max``.
- :class:`ConvNeXtContrastive` (swapped pair, STUDY H6): the same objective on the 3D ConvNeXt; a
  light 3D FPN-style segmentation head over the four stage maps, upsampled to the input size, and
  the pair loss on the stage-4 grid (3 x 3 x 3 neighbourhoods) using the encoder's final ``norm``
  applied to stage-4 features (the analogue of the ViT's final-norm tokens). ``pair_stage=0`` moves
  the pair loss to the stride-4 grid, whose 64-voxel cells match the ViT's 64-pixel cells.

Upstream's optimiser never updated ``CL_Head`` (a fixed random projection through which gradients
still reach the backbone); ``train_cl_head=False`` reproduces that by freezing it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .pair_mining import cancer_cell_counts
from .pair_objective import DEFAULT_CL_DIMS, DEFAULT_CLASS_WEIGHTS, PairObjective, PairObjectiveConfig
from .provicnet_heads import SegmentationConvHead

__all__ = ["DEFAULT_CLASS_WEIGHTS", "DEFAULT_CL_DIMS", "PairObjectiveConfig", "ProViCNetContrastive",
           "ConvNeXtContrastive", "SegmentationHead3D", "four_class_labels"]


def four_class_labels(zones: torch.Tensor, lesion: torch.Tensor) -> torch.Tensor:
    """ProViCNet's 4-class map from this project's masks (``data/case.py`` conventions).

    Args:
        zones: [..., H, W] integer zones (0 background, 1 PZ, 2 TZ, 3 gland without zone).
        lesion: same shape, 0 none, 1 indolent / PI-RADS-only, 2 csPCa.

    Returns:
        int64 map: 0 background, 1 normal gland, 2 indolent, 3 csPCa (cancer overrides the gland,
        and a lesion voxel outside the zone mask still counts as cancer).
    """
    zones, lesion = torch.as_tensor(zones), torch.as_tensor(lesion)
    if zones.shape != lesion.shape:
        raise ValueError(f"zones {tuple(zones.shape)} and lesion {tuple(lesion.shape)} must have the same shape")
    out = (zones > 0).to(torch.int64)
    out = torch.where(lesion == 1, torch.full_like(out, 2), out)
    return torch.where(lesion >= 2, torch.full_like(out, 3), out)


class ProViCNetContrastive(PairObjective):
    """ViT + ``conv_head8`` + ``CL_Head`` trained with DiceCE + alpha * patch-pair loss.

    Args:
        encoder: a :class:`~transferlimits.models.vit.ProViCNetEncoder`.
        n_classes: segmentation classes (default 4).
        head_mid: segmentation head hidden widths (default (128, 64)).
        config: :class:`PairObjectiveConfig` (alpha, class weights, CL_Head, pair mining, seed); default: its
            defaults.
        **keywords: fields of :class:`PairObjectiveConfig` (override ``config``).

    Raises:
        ValueError: invalid settings (see :meth:`PairObjectiveConfig.check`).
        TypeError: a keyword that is no field of :class:`PairObjectiveConfig`.
    """

    def __init__(self, encoder: nn.Module, n_classes: int = 4, head_mid: tuple[int, int] = (128, 64),
                 config: PairObjectiveConfig | None = None, **keywords: Any) -> None:
        dim = encoder.out_dim
        super().__init__(dim, n_classes, PairObjectiveConfig.resolve(config, keywords))
        self.encoder = encoder
        self.head = SegmentationConvHead(dim, n_classes, head_mid)

    def load_extras(self, extras: dict[str, dict[str, torch.Tensor]], strict: bool = True) -> None:
        """Load the ``head`` and ``CL_Head`` state dicts returned by ``load_provicnet_checkpoint``."""
        self.head.load_state_dict(extras["head"], strict=strict)
        self.CL_Head.load_state_dict(extras["CL_Head"], strict=strict)

    def forward(
        self, x: torch.Tensor, pos: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """One objective evaluation.

        Args:
            x: [B, 3, S, S] slice stacks.
            pos: [B, 2] float (slice index, slice count).
            labels: [B, S', S'] int64 4-class labels; resized (nearest) to the head's 8h x 8w output.

        Returns:
            (loss, logits [B, n_classes, 8h, 8w], stats with ``dice_ce``, ``contrastive``, ``n_pos_pairs``, ``n_neg_pairs``: the pairs mined in this step).
        """
        if labels.ndim != 3 or labels.shape[0] != x.shape[0]:
            raise ValueError(f"labels must be [B, H, W] with B={x.shape[0]}, got {tuple(labels.shape)}")
        out = self.encoder.forward_features(x, pos)
        gh, gw = out.maps[-1].shape[-2:]
        logits = self.head(out.tokens, (gh, gw))
        size = logits.shape[-2:]
        if labels.shape[-2:] != size:
            labels = F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0]
        labels = labels.long()
        cell = (size[0] // gh, size[1] // gw)
        counts = cancer_cell_counts(labels, cell)
        return self._combine(logits, labels, out.tokens, counts, cell[0] * cell[1])


class SegmentationHead3D(nn.Module):
    """Light 3D FPN head: 1x1x1 laterals of the stage maps, summed at stage-1 resolution, a 3x3x3
    conv + GroupNorm + ReLU, a 1x1x1 classifier, trilinear upsampling to the input size.

    Args:
        map_dims: channels of the stage maps.
        n_classes: output classes.
        mid: hidden width (default 32).
    """

    def __init__(self, map_dims: list[int], n_classes: int, mid: int = 32) -> None:
        super().__init__()
        self.laterals = nn.ModuleList(nn.Conv3d(c, mid, 1) for c in map_dims)
        self.fuse = nn.Sequential(nn.Conv3d(mid, mid, 3, padding=1), nn.GroupNorm(min(8, mid), mid), nn.ReLU())
        self.classifier = nn.Conv3d(mid, n_classes, 1)

    def forward(self, maps: list[torch.Tensor], out_size: tuple[int, int, int]) -> torch.Tensor:
        """maps [B, C_i, ...] -> logits [B, n_classes, *out_size]."""
        size = maps[0].shape[2:]
        x = sum(F.interpolate(lat(m), size=size, mode="trilinear") if m.shape[2:] != size else lat(m)
                for lat, m in zip(self.laterals, maps))
        return F.interpolate(self.classifier(self.fuse(x)), size=out_size, mode="trilinear")


class ConvNeXtContrastive(PairObjective):
    """The ProViCNet objective on the 3D ConvNeXt (swapped-objective control).

    Args:
        encoder3d: a :class:`~transferlimits.models.convnext3d.ConvNeXtV2_3D`.
        n_classes: segmentation classes (default 4).
        head_mid: hidden width of the 3D segmentation head (default 32).
        pair_stage: index of the stage map whose grid carries the pair loss (default 3 = stage 4,
            stride 16, features through the encoder's final ``norm``; 0 = stage 1, stride 4, whose
            4^3 = 64-voxel cells match the ViT's 8 x 8 = 64-pixel cells, features through an own
            LayerNorm ``pair_norm``). On the reference grid a 16^3 cell is 16 x 8 x 8 mm, which real
            lesions almost never fill to 62/64, so stage 4 yields few or no pairs.
        config, **keywords: as :class:`ProViCNetContrastive`.

    Raises:
        ValueError: ``pair_stage`` out of range or invalid settings.
        TypeError: a keyword that is no field of :class:`PairObjectiveConfig`.
    """

    def __init__(self, encoder3d: nn.Module, n_classes: int = 4, head_mid: int = 32, pair_stage: int = 3,
                 config: PairObjectiveConfig | None = None, **keywords: Any) -> None:
        dims = list(encoder3d.map_dims)
        if pair_stage not in range(len(dims)):
            raise ValueError(f"pair_stage={pair_stage} must be one of {list(range(len(dims)))}")
        super().__init__(dims[pair_stage], n_classes, PairObjectiveConfig.resolve(config, keywords))
        self.encoder = encoder3d
        self.head = SegmentationHead3D(dims, n_classes, head_mid)
        self.pair_stage = pair_stage
        last = pair_stage == len(dims) - 1
        self.pair_norm = None if last else nn.LayerNorm(dims[pair_stage], eps=1e-6)

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """One objective evaluation.

        Args:
            x: [B, 3, D, H, W] volumes.
            labels: [B, D, H, W] int64 4-class labels on the input grid.

        Returns:
            (loss, logits [B, n_classes, D, H, W], stats as :class:`ProViCNetContrastive`).
        """
        if labels.shape != (x.shape[0], *x.shape[2:]):
            raise ValueError(f"labels must be [B, D, H, W] = {(x.shape[0], *x.shape[2:])}, got {tuple(labels.shape)}")
        out = self.encoder.forward_features(x)
        logits = self.head(out.maps, tuple(x.shape[2:]))
        fmap = out.maps[self.pair_stage]
        grid = fmap.shape[2:]
        cell = tuple(s // g for s, g in zip(x.shape[2:], grid))
        labels = labels.long()
        counts = cancer_cell_counts(labels, cell)
        norm = self.encoder.norm if self.pair_norm is None else self.pair_norm
        tokens = norm(fmap.flatten(2).transpose(1, 2))
        voxels = cell[0] * cell[1] * cell[2]
        return self._combine(logits, labels, tokens, counts, voxels)
