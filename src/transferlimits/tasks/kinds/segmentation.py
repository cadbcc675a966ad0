"""The segmentation kind: a binary label map per case (``y`` {0,1} [B, D, H, W]), one sigmoid logit channel.

Loss: MONAI ``DiceCELoss(sigmoid=True)`` (+ 0.4 x the auxiliary head's loss). Scores per case:
:func:`transferlimits.metrics.tasks.segmentation_scores` (Dice, HD95 in mm, lesion sensitivity). The
transferability target is "lesion present" (``target_type`` "binary"); the trivial baseline is the empty mask
(``empty_mask``); the example slice is the one with the largest lesion area.
"""

from __future__ import annotations

import numpy as np
from monai.losses import DiceCELoss

from transferlimits.metrics import tasks as mt
from transferlimits.metrics.baselines import empty_mask_scores
from transferlimits.tasks.kinds.base import DenseKind, _wanted, item_values, metric_scores, register_kind

__all__ = ["SegmentationKind"]


class SegmentationKind(DenseKind):
    """Binary lesion segmentation (``out_channels`` 1 or 2 -> ONE sigmoid logit channel)."""

    name = "segmentation"
    regression = False
    target_type = "binary"
    target_description = "csPCa present (target mask non-empty), binary"

    def validate(self, spec) -> None:
        if int(spec.out_channels) > 2:
            raise ValueError(f"task {spec.name!r}: only binary segmentation is supported (out_channels 1 or 2), "
                             f"got {spec.out_channels}")

    def head_channels(self, spec) -> int:
        self.validate(spec)
        return 1  # binary lesion mask: one sigmoid logit (ProFound's lesion model)

    def voxel_loss(self, pred, y, batch, spec=None):
        return DiceCELoss(sigmoid=True)(pred.float(), y)

    def prediction(self, out):
        return out.sigmoid()

    def case_scores(self, spec, pred, y, masks, spacing, fast):
        return mt.segmentation_scores(pred, y, tuple(spacing), hd95=_wanted("hd95", spec, fast))

    def example_slice(self, y: np.ndarray) -> int:
        area = (y > 0).reshape(y.shape[0], -1).sum(1)
        return int(area.argmax()) if area.any() else y.shape[0] // 2

    def example_wanted(self, y: np.ndarray) -> bool:
        """Examples are chosen among test cases with a lesion (an empty target shows nothing)."""
        return bool((y > 0).any())

    def display_range(self, target):
        return 0.0, 1.0

    def baseline(self, spec, data, spacing=None):
        ds = data["test"]
        sp = tuple(spacing) if spacing is not None else [
            tuple(np.asarray(ds[i].get("spacing", (1.0, 1.0, 1.0)), float)) for i in range(len(ds))]
        return {"empty_mask": metric_scores(empty_mask_scores(item_values(ds, "y"), sp))}

    def case_target(self, item) -> int:
        return int((np.asarray(item["y"]) > 0).any())


register_kind(SegmentationKind())
