"""The dense-regression kind (registered as ``"regression"``): a float volume per case (``y`` [B, D, H, W]).

Loss: L1 averaged over the body-mask voxels (``masks["body"]``; the whole crop without one), + 0.4 x the
auxiliary head's loss. Scores per case: :func:`transferlimits.metrics.tasks.restoration_scores` (PSNR,
SSIM, NMSE, MAE, also inside the gland). Transferability target: the mean target intensity in the body.
"""

from __future__ import annotations

from transferlimits.metrics import tasks as mt
from transferlimits.tasks.kinds.base import DenseKind, _wanted, register_kind

__all__ = ["DenseRegressionKind"]


class DenseRegressionKind(DenseKind):
    """Image restoration / translation: one linear output channel on the target grid."""

    name = "regression"
    regression = True
    target_description = "mean target intensity inside the body mask (scaled units)"

    def validate(self, spec) -> None:
        self.require_one_channel(spec)

    def voxel_loss(self, pred, y, batch):
        body = batch.get("masks", {}).get("body") if isinstance(batch.get("masks"), dict) else None
        err = (pred.float() - y).abs()
        if body is None:
            return err.mean()
        w = (body > 0).float().unsqueeze(1)
        return (err * w).sum() / w.sum().clamp_min(1.0)

    def case_scores(self, spec, pred, y, masks, spacing, fast):
        return mt.restoration_scores(pred, y, masks, ssim=_wanted("ssim", spec, fast))


register_kind(DenseRegressionKind())
