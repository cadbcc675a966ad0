"""Trivial baselines of the five tasks (STUDY §5), scored with the same functions as the trained models.

A run has *learned* a task only where it beats its trivial baseline, and RPG is defined only where the scratch
run has (:func:`transferlimits.metrics.transfer.rpg_status`). The baselines, as pure functions of arrays:

* restoration (super-resolution, distortion correction): the **identity** — the degraded input returned as
  the prediction (:func:`identity_scores`);
* modality translation: the **train-median constant** — one volume filled with the median of the train targets
  inside the body mask (:func:`train_median`, :func:`median_constant_scores`);
* classification: the **class prior** of the train labels as constant probabilities (:func:`class_prior_scores`):
  AUROC 0.5 by construction (constant scores), accuracy = the test share of the train majority class (ties go to
  the lower class), QWK of a constant prediction (0, or NaN where the test labels are that one class too);
* segmentation: the **empty mask** (:func:`empty_mask_scores`): Dice 0 on lesion cases, ``dice_all`` = the
  share of lesion-free cases, HD95 NaN (undefined for an empty prediction), lesion sensitivity 0.

Dense tasks are scored per case and averaged with :func:`transferlimits.metrics.tasks.aggregate` (NaN-ignoring),
as the fine-tuned models are; the result carries ``n_cases``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .tasks import aggregate, classification_scores, restoration_scores, segmentation_scores

__all__ = [
    "class_prior",
    "class_prior_scores",
    "empty_mask_scores",
    "identity_scores",
    "median_constant_scores",
    "train_median",
]

N_CLASSES = 4


def _volumes(a, name: str) -> list[np.ndarray]:
    """A ``[D, H, W]`` volume, a ``[B, D, H, W]`` array or a sequence of volumes -> list of ``[D, H, W]``."""
    if isinstance(a, np.ndarray) or hasattr(a, "shape"):
        arr = np.asarray(a)
        if arr.ndim == 3:
            return [arr]
        if arr.ndim == 4:
            return list(arr)
        raise ValueError(f"{name} must be [D, H, W], [B, D, H, W] or a sequence of volumes, got shape {arr.shape}")
    vols = [np.asarray(v) for v in a]
    if not vols or any(v.ndim != 3 for v in vols):
        raise ValueError(f"{name} must be a non-empty sequence of [D, H, W] volumes")
    return vols


def _mask_list(masks, n: int) -> list[Mapping[str, np.ndarray]]:
    """One ``{"body", "gland"?}`` dict per case, from a list of dicts or a dict of batched masks."""
    if isinstance(masks, Mapping):
        per_key = {k: _volumes(v, f"masks[{k!r}]") for k, v in masks.items() if v is not None}
        if any(len(v) != n for v in per_key.values()):
            raise ValueError(f"masks must give one mask set per case ({n} cases)")
        return [{k: v[i] for k, v in per_key.items()} for i in range(n)]
    out = list(masks)
    if len(out) != n:
        raise ValueError(f"masks must give one mask set per case ({n} cases), got {len(out)}")
    return out


def _score_cases(preds: list[np.ndarray], targets: list[np.ndarray], masks, data_range, ssim: bool) -> dict:
    if len(preds) != len(targets):
        raise ValueError(f"need one prediction per target, got {len(preds)} and {len(targets)}")
    per_mask = _mask_list(masks, len(targets))
    cases = [restoration_scores(p, t, m, data_range=data_range, ssim=ssim) for p, t, m in zip(preds, targets, per_mask)]
    out = aggregate(cases)
    out["n_cases"] = len(cases)
    return out


def identity_scores(degraded, targets, masks, data_range: float | None = None, ssim: bool = True) -> dict:
    """Restoration scores of the identity prediction (the degraded input itself).

    Args:
        degraded: model inputs ``[D, H, W]``, ``[B, D, H, W]`` or a sequence of volumes (on the target grid).
        targets: reference volumes, same layout. masks: one ``{"body", "gland"?}`` dict per case, or one dict of
            batched masks. data_range: PSNR/SSIM range (default per case, as in ``restoration_scores``).
        ssim: compute SSIM (default True).

    Returns:
        NaN-ignoring mean over cases of ``restoration_scores`` plus ``"n_cases"``.
    """
    return _score_cases(_volumes(degraded, "degraded"), _volumes(targets, "targets"), masks, data_range, ssim)


def train_median(train_targets, train_masks, mask: str = "body") -> float:
    """Median of every train-target voxel inside ``mask``.

    Args:
        train_targets: train target volumes (layouts as in :func:`identity_scores`).
        train_masks: their mask dicts (``mask`` must be a key). mask: which mask (default ``"body"``).

    Returns:
        The median as a float (``ValueError`` if every mask is empty).
    """
    vols = _volumes(train_targets, "train_targets")
    per_mask = _mask_list(train_masks, len(vols))
    if any(mask not in m for m in per_mask):
        raise ValueError(f"every train mask dict must contain {mask!r}")
    voxels = [np.asarray(v, dtype=np.float64)[np.asarray(m[mask]) > 0] for v, m in zip(vols, per_mask)]
    values = np.concatenate(voxels)
    if values.size == 0:
        raise ValueError(f"the {mask!r} masks of the train targets are all empty")
    return float(np.median(values))


def median_constant_scores(train_targets, train_masks, targets, masks, data_range: float | None = None,
                           ssim: bool = True, mask: str = "body") -> dict:
    """Restoration scores of a constant volume at the train-target median (modality translation baseline).

    Args:
        train_targets, train_masks, mask: as in :func:`train_median`. targets, masks, data_range, ssim: the test
            cases, as in :func:`identity_scores`.

    Returns:
        As :func:`identity_scores`, plus ``"constant"`` (the median used).
    """
    c = train_median(train_targets, train_masks, mask)
    tgts = _volumes(targets, "targets")
    out = _score_cases([np.full(t.shape, c, dtype=np.float64) for t in tgts], tgts, masks, data_range, ssim)
    out["constant"] = c
    return out


def class_prior(train_labels, n_classes: int = N_CLASSES) -> np.ndarray:
    """Class frequencies ``[n_classes]`` of the train labels (integers in 0..n_classes−1)."""
    y = np.asarray(train_labels).astype(np.int64).ravel()
    if y.size == 0 or y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"train_labels must be a non-empty array of classes in 0..{n_classes - 1}")
    return np.bincount(y, minlength=n_classes) / y.size


def class_prior_scores(train_labels, test_labels) -> dict:
    """Classification scores of the constant class-prior prediction.

    Args:
        train_labels: train classes ``[n_train]`` in {0, 1, 2, 3}. test_labels: test classes ``[n_test]``.

    Returns:
        ``classification_scores`` of the prior repeated for every test case (keys ``auroc_ge4``, ``auroc_ge3``,
        ``qwk``, ``accuracy``) plus ``"prior"`` (list of 4 floats).
    """
    prior = class_prior(train_labels)
    y = np.asarray(test_labels).astype(np.int64).ravel()
    out = classification_scores(np.tile(prior, (y.size, 1)), y)
    out["prior"] = [float(p) for p in prior]
    return out


def empty_mask_scores(targets, spacings: Sequence[float] | Sequence[Sequence[float]], hd95: bool = True) -> dict:
    """Segmentation scores of the all-zero prediction.

    Args:
        targets: lesion masks ``[D, H, W]``, ``[B, D, H, W]`` or a sequence of volumes.
        spacings: one (z, y, x) spacing in mm for all cases, or one per case.
        hd95: compute HD95 (NaN for an empty prediction either way; default True).

    Returns:
        NaN-ignoring mean over cases of ``segmentation_scores`` plus ``"n_cases"`` and ``"n_cases_with_lesion"``.
    """
    tgts = _volumes(targets, "targets")
    sp = np.asarray(spacings, dtype=np.float64)
    per_case = [sp] * len(tgts) if sp.ndim == 1 else list(sp)
    if len(per_case) != len(tgts) or any(s.shape != (3,) for s in per_case):
        raise ValueError(f"spacings must be one (z, y, x) triple or one per case ({len(tgts)}), got shape {sp.shape}")
    cases = [segmentation_scores(np.zeros(t.shape, dtype=np.float32), t, tuple(s), hd95=hd95) for t, s in zip(tgts, per_case)]
    out = aggregate(cases)
    out["n_cases"] = len(cases)
    out["n_cases_with_lesion"] = int(sum(bool((t > 0).any()) for t in tgts))
    return out
