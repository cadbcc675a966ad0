"""The parts of the DiceCE + patch-pair objective (:mod:`.contrastive`) that both backbones share.

:class:`PairObjectiveConfig` holds the settings (loss weight, class weights, ``CL_Head`` size, pair-mining rules,
seed); :class:`PairObjective` builds ``CL_Head`` and the DiceCE loss from it, mines pairs per sample on the
cell grid (:mod:`.pair_mining`) and combines both losses.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from .pair_mining import mine_pairs, patch_pair_loss
from .provicnet_heads import CLHead

__all__ = ["DEFAULT_CLASS_WEIGHTS", "DEFAULT_CL_DIMS", "PairObjectiveConfig", "PairObjective"]

#: Upstream DiceCE class weights (background, gland, indolent, csPCa).
DEFAULT_CLASS_WEIGHTS: tuple[float, ...] = (0.02, 0.04, 0.5, 0.5)
#: CL_Head (hidden, bottleneck, out) dims of the released ViT-S models.
DEFAULT_CL_DIMS: tuple[int, int, int] = (2048, 256, 65536)



@dataclass(frozen=True)
class PairObjectiveConfig:
    """Settings of the DiceCE + patch-pair objective shared by both backbones.

    Each field may also be passed to :class:`ProViCNetContrastive` / :class:`ConvNeXtContrastive` as a keyword.

    Attributes:
        alpha: weight of the pair loss (default 0.05, upstream ``--contrastive_alpha``).
        class_weights: DiceCE class weights, one per class (default (0.02, 0.04, 0.5, 0.5)).
        train_cl_head: train ``CL_Head`` (default True); False freezes it like upstream's optimiser.
        cl_dims: CL_Head (hidden, bottleneck, out_dim) (default (2048, 256, 65536)).
        max_pairs: cap on positives and on negatives per sample (default 30).
        margin: negative cosine margin (default 0.5).
        anchor_frac, neg_frac: cancer fractions for anchors/positives and negatives (62/64, 2/64).
        seed: seed of the pair-shuffling generator (default 0).
    """

    alpha: float = 0.05
    class_weights: tuple[float, ...] = DEFAULT_CLASS_WEIGHTS
    train_cl_head: bool = True
    cl_dims: tuple[int, int, int] = DEFAULT_CL_DIMS
    max_pairs: int = 30
    margin: float = 0.5
    anchor_frac: float = 62 / 64
    neg_frac: float = 2 / 64
    seed: int = 0

    @classmethod
    def resolve(cls, config: PairObjectiveConfig | None, keywords: dict[str, Any]) -> PairObjectiveConfig:
        """``config`` (default: the defaults) with the field ``keywords`` applied.

        Args:
            config: a config or None. keywords: field values (the constructors' former keyword arguments).

        Raises:
            TypeError: a keyword that is no field.
        """
        return replace(config if config is not None else cls(), **keywords)

    def check(self, n_classes: int) -> None:
        """Check the settings against ``n_classes``.

        Args:
            n_classes: segmentation classes of the objective.

        Raises:
            ValueError: ``alpha`` outside [0, 1], fewer than 4 classes, one class weight per class missing, or
                ``cl_dims`` not a triple.
        """
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha={self.alpha} must be in [0, 1]")
        if n_classes < 4:
            raise ValueError(f"n_classes={n_classes} must be >= 4 (classes 2 and 3 are the cancer classes)")
        if len(self.class_weights) != n_classes:
            raise ValueError(f"class_weights {self.class_weights} must have n_classes={n_classes} entries")
        if len(self.cl_dims) != 3:
            raise ValueError(f"cl_dims={self.cl_dims} must be (hidden, bottleneck, out_dim)")


class PairObjective(nn.Module):
    """Shared parts: argument checks, DiceCE, CL_Head and the batched pair loss."""

    def __init__(self, feat_dim: int, n_classes: int, config: PairObjectiveConfig) -> None:
        super().__init__()
        config.check(n_classes)
        self.alpha, self.max_pairs, self.margin = float(config.alpha), int(config.max_pairs), float(config.margin)
        self.anchor_frac, self.neg_frac = float(config.anchor_frac), float(config.neg_frac)
        self.CL_Head = CLHead(feat_dim, *config.cl_dims)
        if not config.train_cl_head:
            self.CL_Head.requires_grad_(False)
        self.train_cl_head = config.train_cl_head
        from monai.losses import DiceCELoss  # here, not at the top: importing MONAI costs ~3 s per process

        self.dice_ce = DiceCELoss(
            to_onehot_y=True, softmax=True, weight=torch.tensor(config.class_weights, dtype=torch.float32)
        )
        self.rng = torch.Generator().manual_seed(config.seed)

    def get_extra_state(self) -> dict[str, torch.Tensor]:
        """The pair-shuffling generator state travels with the state dict (exact resume)."""
        return {"rng": self.rng.get_state()}

    def set_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        self.rng.set_state(state["rng"])

    def _pair_loss(
        self, features: torch.Tensor, counts: torch.Tensor, cell_voxels: int
    ) -> tuple[torch.Tensor, int, int]:
        """features [B, N, C] (row-major over the cell grid), counts [B, *grid] -> (loss, n_pos, n_neg)."""
        b, n, _ = features.shape
        idx, pos = [], []
        for i in range(b):
            pairs, is_pos = mine_pairs(
                counts[i], cell_voxels, self.anchor_frac, self.neg_frac, self.max_pairs, True, self.rng
            )
            idx.append(pairs + i * n)
            pos.append(is_pos)
        pairs, is_pos = torch.cat(idx), torch.cat(pos)
        n_pos = int(is_pos.sum())
        if pairs.shape[0] == 0:
            return features.sum() * 0.0 + 0.0, 0, 0
        flat = features.reshape(b * n, -1)
        used, inverse = torch.unique(pairs.flatten(), return_inverse=True)
        proj = self.CL_Head(flat[used.to(flat.device)].float())
        inverse = inverse.reshape(-1, 2).to(flat.device)
        loss = patch_pair_loss(proj[inverse[:, 0]], proj[inverse[:, 1]], is_pos.to(flat.device), self.margin)
        return loss, n_pos, int(is_pos.numel() - n_pos)

    def _combine(
        self, logits: torch.Tensor, labels: torch.Tensor, features: torch.Tensor, counts: torch.Tensor, cell_voxels: int
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """(1 - alpha) * DiceCE(logits, labels [B, ...]) + alpha * pair loss; returns (loss, logits, stats)."""
        dice_ce = self.dice_ce(logits.float(), labels.unsqueeze(1))
        pair, n_pos, n_neg = self._pair_loss(features, counts, cell_voxels)
        loss = (1.0 - self.alpha) * dice_ce + self.alpha * pair
        stats = {"dice_ce": float(dice_ce.detach()), "contrastive": float(pair.detach()), "n_pos_pairs": n_pos,
                 "n_neg_pairs": n_neg}
        return loss, logits, stats
