"""The dense-regression kind (registered as ``"regression"``): a float volume per case (``y`` [B, D, H, W]).

Loss: the voxel error the primary metric measures, averaged over the body-mask voxels (``masks["body"]``; the
whole crop without one), + 0.4 x the auxiliary head's loss: squared error when the primary metric is PSNR
(a log of the MSE: super-resolution, distortion correction), absolute error otherwise (modality translation's
gland MAE). An earlier L1 loss for every task left restoration at its identity baseline in the ``cpu``
profile's few steps: L1's gradient has the same size for small and large residuals, and the median it fits is
not what PSNR scores (a 3x3x3 net on super-resolution, 300 steps: +0.59 dB over identity with L1, +0.82 with
the squared error; a least-squares 3x3x3 linear filter: +0.84). Scores per case: :func:`transferlimits.metrics.tasks.restoration_scores` (PSNR,
SSIM, NMSE, MAE, also inside the gland). Per-case target (kept for old readers): the mean target intensity in
the body. Transferability target, per feature-map cell (``target_type`` "continuous", z-scored for LogME):

* same-modality restoration (target in its input's units, with a dataset that offers ``identity_input``): the
  RMS over the cell of the residual target − degraded input, the correction the network must learn there. Not
  its signed mean: super-resolution averages slice pairs and resamples back, so the residual sums to ~0 over
  any cell spanning whole slice pairs (a ProFound stage-4 cell of the smoke grid spans all 16 slices: residual
  cell means have SD 1e-9 across the smoke train cells, their RMS 0.11 around a mean of 0.19);
* translation to another modality (fixed unit), or no degraded input at hand: the cell mean of the target
  itself (the residual against another modality has no meaning; the description says which was used).

Targets are in units the model can know from its input (:meth:`DenseRegressionKind.target_units`, the reasons
in :mod:`transferlimits.data.views`): a same-modality restoration target (``spec.target_unit`` None) in its
input's z-score over the body mask (the channel the model sees), a translation target in a fixed physical unit.

Trivial baselines (STUDY §5), scored like the models on the test split: ``identity`` (the task's degraded
input itself, on the target grid and in the target's units - for a same-modality restoration task exactly
the model's input channel; needs a dataset with ``identity_input(i)``, e.g.
:class:`transferlimits.data.datasets.TaskDataset`) and ``train_median`` (one constant volume at the median of
the train targets inside the body). Both are computed for every dense-regression task; the strongest on the
primary metric is the one a run must beat (identity for super-resolution and distortion correction, the train
median for modality translation, where the input is another sequence).

Outputs (``TaskSpec.dense_output``): ``"default"`` (the head's correction, added to the input by the identity
residual of same-modality restoration), ``"warp"``, ``"warp_no_jacobian"`` and ``"warp_blur"`` (same-modality
restoration only: the input resampled along the phase-encode axis :data:`~transferlimits.data.degrade.PE_AXIS` by a
displacement the head predicts from encoder features, with or without the Jacobian factor; ``"warp_blur"`` also
predicts the displacement's SD and outputs the expected warp, :mod:`transferlimits.models.warp`; distortion
correction). The loss is the same voxel loss on the warped output.
"""

from __future__ import annotations

import numpy as np
import torch

from transferlimits.data.degrade import PE_AXIS
from transferlimits.data.normalise import zscore_stats
from transferlimits.metrics import tasks as mt
from transferlimits.metrics.baselines import identity_scores, median_constant_scores
from transferlimits.metrics.linear_reference import RIDGE, apply_filter, fit_filter
from transferlimits.tasks.kinds.base import body_mask, item_values, metric_scores, register_kind, sample_input, wanted
from transferlimits.tasks.kinds.dense import DenseKind, box_means

__all__ = ["DenseRegressionKind", "MEDIAN_VOXELS", "SQUARED_ERROR_METRICS", "WARP_OUTPUTS", "squared_error"]

#: primary metrics that are a function of the MSE: tasks scored by them train on the squared error.
SQUARED_ERROR_METRICS = ("psnr", "nmse")
#: warp outputs -> (the Jacobian factor multiplies the resampled input, the head also predicts the displacement's SD
#: and outputs the expected warp: ``models.warp.expected_warp``).
WARP_OUTPUTS = {"warp": (True, False), "warp_no_jacobian": (False, False), "warp_blur": (True, True)}
#: at most this many voxels per train case enter the train median (a regular sub-lattice of larger grids).
MEDIAN_VOXELS = 1 << 18


def _lattice(shape: tuple[int, ...]) -> tuple[slice, ...]:
    """Strides (1 on small grids) keeping at most :data:`MEDIAN_VOXELS` voxels of a [D, H, W] volume."""
    step = max(1, int(np.ceil((np.prod(shape) / MEDIAN_VOXELS) ** (1 / 3))))
    return (slice(None, None, step),) * len(shape)


def squared_error(spec) -> bool:
    """Whether a regression task trains on the squared error (primary metric PSNR) rather than the absolute."""
    return spec is not None and spec.primary_metric in SQUARED_ERROR_METRICS


class DenseRegressionKind(DenseKind):
    """Image restoration / translation: one linear output channel on the target grid."""

    name = "regression"
    regression = True
    target_type = "continuous"
    target_description = "mean target intensity inside the body mask (target units, see data.views)"
    outputs = ("default", *WARP_OUTPUTS)

    def validate(self, spec) -> None:
        """One output channel; a warp output only for a target in its input's units (``target_unit`` None)."""
        self.require_one_channel(spec)
        if self.warp_output(spec) is not None and not self.in_input_units(spec):
            raise ValueError(f"task {spec.name!r}: dense_output {spec.dense_output!r} warps the input, so the target "
                             f"must be in the input's units (target_unit None), got target_unit={spec.target_unit}")

    def warp_output(self, spec) -> tuple[int, bool, bool] | None:
        """``(PE_AXIS, jacobian, blur)`` of a warp output (:data:`WARP_OUTPUTS`), else None."""
        output = getattr(spec, "dense_output", "default")
        return (PE_AXIS, *WARP_OUTPUTS[output]) if output in WARP_OUTPUTS else None

    def in_input_units(self, spec) -> bool:
        """True for a same-modality restoration task (``spec.target_unit`` None)."""
        return getattr(spec, "target_unit", None) is None

    def target_units(self, sample, spec) -> tuple[float, float]:
        """A fixed ``spec.target_unit``: (0, unit). Otherwise the mean and SD of ``spec.single_input`` over the
        body mask (whole volume without one), the units the views give the input; a constant input gives (its
        mean, 1).

        Raises:
            ValueError: the sample lacks ``spec.single_input``.
        """
        if not self.in_input_units(spec):
            return 0.0, float(spec.target_unit)
        x = sample_input(sample, spec.single_input)
        body = body_mask(sample)
        stats = zscore_stats(x, body if body is not None else np.ones(np.shape(x), bool))
        return stats if stats is not None else (float(np.mean(x)), 1.0)

    def target_tensor(self, sample, spec, units=(0.0, 1.0)):
        """The target volume in ``units``: float32 [D, H, W] = (target - offset) / scale."""
        offset, scale = units
        return torch.from_numpy(((np.asarray(sample.target, np.float32) - np.float32(offset)) / np.float32(scale))
                                .astype(np.float32))

    def _residual(self, spec, ds) -> bool:
        """Patch target = the residual's RMS (a same-modality task on a dataset with the degraded input)."""
        return self.in_input_units(spec) and hasattr(ds, "identity_input")

    def linear_reference(self, spec, train, test):
        """Same-modality restoration: the least-squares 3x3x3 filter of the degraded input (``identity_input``)
        against the identity baseline, on the primary metric; None for translation (another modality's input)."""
        if not (self._residual(spec, train) and self._residual(spec, test)):
            return None
        w = fit_filter((np.asarray(train.identity_input(i), np.float32), np.asarray(train[i]["y"], np.float32))
                       for i in range(len(train)))
        metric, ident, lin = spec.primary_metric, [], []
        for i in range(len(test)):
            item = test[i]
            x, y = np.asarray(test.identity_input(i), np.float32), np.asarray(item["y"], np.float32)
            masks = {k: np.asarray(v) for k, v in item["masks"].items()}
            ident.append(mt.restoration_scores(x, y, masks, ssim=False)[metric])
            lin.append(mt.restoration_scores(apply_filter(x, w), y, masks, ssim=False)[metric])
        gain = np.asarray(lin) - np.asarray(ident)
        return {"metric": metric, "identity": float(np.mean(ident)), "linear_filter": float(np.mean(lin)),
                "gain_mean": float(gain.mean()), "gain_sd": float(gain.std(ddof=1)) if len(gain) > 1 else None,
                "n_test": len(test), "model": f"least-squares 3x3x3 linear filter + constant, ridge {RIDGE:g}"}

    def patch_target_info(self, spec, ds):
        if self._residual(spec, ds):
            return ("RMS over the feature-map cell of the residual target - degraded input (target units): the "
                    "correction the restoration must make there", "continuous")
        why = "" if not self.in_input_units(spec) else "; the dataset offers no degraded input for the residual"
        return f"mean target over the feature-map cell (target units{why})", "continuous"

    def patch_targets(self, ds, i, boxes, spec):
        """Residual RMS or target mean of each cell (:meth:`patch_target_info` says which)."""
        y = np.asarray(ds[i]["y"], np.float64)
        if self._residual(spec, ds):
            return np.sqrt(box_means((y - np.asarray(ds.identity_input(i), np.float64)) ** 2, boxes))
        return box_means(y, boxes)

    def voxel_loss(self, pred, y, batch, spec=None):
        body = batch.get("masks", {}).get("body") if isinstance(batch.get("masks"), dict) else None
        diff = pred.float() - y
        err = diff.square() if squared_error(spec) else diff.abs()
        if body is None:
            return err.mean()
        w = (body > 0).float().unsqueeze(1)
        return (err * w).sum() / w.sum().clamp_min(1.0)

    def case_scores(self, spec, pred, y, masks, spacing, fast):
        return mt.restoration_scores(pred, y, masks, ssim=wanted("ssim", spec, fast))

    def baseline(self, spec, data, spacing=None):
        test, train = data["test"], data["train"]
        targets, masks = item_values(test, "y"), item_values(test, "masks")
        lattice = _lattice(np.shape(targets[0]))
        train_y = [y[lattice] for y in item_values(train, "y")]
        train_m = [{k: v[lattice] for k, v in m.items()} for m in item_values(train, "masks")]
        if not all("body" in m for m in train_m):
            train_m = [{"body": np.ones(y.shape, np.uint8)} for y in train_y]
        out = {"train_median": metric_scores(median_constant_scores(train_y, train_m, targets, masks))}
        if hasattr(test, "identity_input"):
            degraded = [np.asarray(test.identity_input(i), np.float32) for i in range(len(test))]
            out["identity"] = metric_scores(identity_scores(degraded, targets, masks))
        return out


register_kind(DenseRegressionKind())
