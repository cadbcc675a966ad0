"""The segmentation kind: a binary label map per case (``y`` {0,1} [B, D, H, W]), one sigmoid logit channel.

Loss: MONAI ``DiceCELoss(sigmoid=True, batch=True)`` (+ 0.4 x the auxiliary head's loss): the Dice term over
the whole batch, not per case, since a lesion-free case's own Dice term only rewards predicting nothing. Scores per case:
:func:`transferlimits.metrics.tasks.segmentation_scores` (Dice, HD95 in mm, lesion sensitivity). The
per-case target is "lesion present" (``target_type`` "binary", kept for old readers); the transferability
target is per patch: the lesion fraction of each feature-map cell (continuous in [0, 1]; it varies wherever a
lesion is, while "lesion present" per case is a coarse summary of the dense task). The trivial baseline is the
empty mask (``empty_mask``); the example slice is the one with the largest lesion area.

Training draws cases with a lesion and cases without one equally often (:data:`POSITIVE_SHARE`), as MONAI's
``RandCropByPosNegLabeld(pos=1, neg=1)`` does for crops: lesions cover < 0.1 % of the voxels of a ``cpu``-profile
volume and about a quarter of the training cases, and with uniform draws no run learned more than the empty
mask in its few optimiser steps (a 3D conv net on the ``cpu`` cohort, 48 steps: Dice 0.00 uniform, 0.22 with
half the draws positive, at lr 1e-2).
"""

from __future__ import annotations

import numpy as np
import torch

from transferlimits.metrics import tasks as mt
from transferlimits.metrics.baselines import empty_mask_scores
from transferlimits.metrics.linear_reference import fit_voxel_logistic, voxel_features
from transferlimits.tasks.kinds.base import item_values, metric_scores, register_kind, wanted
from transferlimits.tasks.kinds.dense import DenseKind, box_means

__all__ = ["SegmentationKind", "POSITIVE_SHARE"]

#: share of the training draws that are cases with a lesion (when the training split has both kinds).
POSITIVE_SHARE = 0.5


class SegmentationKind(DenseKind):
    """Binary lesion segmentation (``out_channels`` 1 or 2 -> ONE sigmoid logit channel)."""

    name = "segmentation"
    regression = False
    target_type = "binary"
    target_description = "csPCa present (target mask non-empty), binary"
    patch_enrich = True  # lesion cells are rare: half of each image's patch rows from cells touching a lesion

    def validate(self, spec) -> None:
        if int(spec.out_channels) > 2:
            raise ValueError(f"task {spec.name!r}: only binary segmentation is supported (out_channels 1 or 2), "
                             f"got {spec.out_channels}")

    def head_channels(self, spec) -> int:
        self.validate(spec)
        return 1  # binary lesion mask: one sigmoid logit (ProFound's lesion model)

    def target_tensor(self, sample, spec, units=(0.0, 1.0)):
        """The label map: int64 [D, H, W]."""
        return torch.from_numpy(np.asarray(sample.target, np.int64))

    def voxel_loss(self, pred, y, batch, spec=None):
        from monai.losses import DiceCELoss  # here, not at the top: importing MONAI costs ~3 s per process

        return DiceCELoss(sigmoid=True, batch=True)(pred.float(), y)

    def prediction(self, out):
        return out.sigmoid()

    def case_scores(self, spec, pred, y, masks, spacing, fast):
        return mt.segmentation_scores(pred, y, tuple(spacing), hd95=wanted("hd95", spec, fast))

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

    def linear_reference(self, spec, train, test):
        """A voxel-wise logistic regression on the three channels and their 3x3x3 means (volume views only: the
        input ``x`` [3, D, H, W] on the target grid); Dice at probability 0.5 over the test cases with a lesion."""
        if np.ndim(train[0]["x"]) != 4 or np.shape(train[0]["x"])[1:] != np.shape(train[0]["y"]):
            return None
        clf, share = fit_voxel_logistic((np.asarray(train[i]["x"]), np.asarray(train[i]["y"]))
                                        for i in range(len(train)))
        dice = []
        for i in range(len(test)):
            item = test[i]
            t = np.asarray(item["y"]) > 0
            if t.any():  # the study's Dice at probability 0.5 (metrics.tasks)
                p = clf.predict_proba(voxel_features(np.asarray(item["x"])))[:, 1].reshape(t.shape)
                dice.append(mt.segmentation_scores(p, t, (1.0, 1.0, 1.0), hd95=False)["dice"])
        return {"metric": "dice", "empty_mask": 0.0, "logistic_voxel": float(np.mean(dice)) if dice else None,
                "n_lesion_cases": len(dice), "lesion_voxel_share_train": share,
                "model": "logistic regression on 3 channels + their 3x3x3 means, background re-weighted to its prior"}

    def patch_target_info(self, spec, ds):
        return "lesion (csPCa) fraction of the feature-map cell", "continuous"

    def patch_targets(self, ds, i, boxes, spec):
        """Lesion fraction of each cell: the share of its voxels inside the target mask, in [0, 1]."""
        return box_means(np.asarray(ds[i]["y"]) > 0, boxes)

    def train_weights(self, ds):
        """Half of the draws from cases with a lesion (:data:`POSITIVE_SHARE`); None when all or none have one."""
        pos = np.array([self.case_target(ds[i]) for i in range(len(ds))], bool)
        if pos.all() or not pos.any():
            return None
        return np.where(pos, POSITIVE_SHARE / pos.sum(), (1.0 - POSITIVE_SHARE) / (~pos).sum())


register_kind(SegmentationKind())
