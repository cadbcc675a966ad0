"""Feature-space measurements of one study point: paired MMD², CKA (post-hoc); LogME / linear probe (pre-hoc) live
in :mod:`transferlimits.study.prehoc` (``transferability`` and ``case_targets`` are re-exported here).

The before/after features of one encoder come from the SAME images, so they are paired (STUDY §5); the images are the
point's calibration set (the test split as data seed 0 degrades it: the same for every seed and encoder of a pair),
and each (encoder, images) is encoded once per point (:class:`~transferlimits.study.feature_memo.FeatureMemo`):

* **standardisation**: every feature is z-scored by the mean/SD of the comparison's *starting* encoder (the
  pretrained features for init ``pretrained``; the random init for ``scratch``); a constant feature keeps SD 1.
  This removes the encoders' different feature scales before any kernel is evaluated.
* **bandwidth**: σ = median pairwise distance of the standardised starting features only (one σ per encoder and
  layer of a point, never re-estimated from the fine-tuned side), so the value does not saturate with the shift.
* **statistic**: :class:`~transferlimits.metrics.mmd_paired.PairedKernel` at σ, one kernel pass for the
  U-statistic, its paired permutation p-value (swap xᵢ ↔ yᵢ) and the bootstrap CI over pairs; pooled rows are one
  pair per image; token rows are clustered by image (images swapped and resampled as a whole, ``n_groups``).
  The p-value is secondary, not a result: fine-tuning always moves the weights, so it sits at its floor.
* ``mmd2_multi`` (σ × 0.25 … 4 and their sum): the sum is the statistic of the **calibrated** alignment, the
  primary alignment value (STUDY §5.2): (value − noise floor) / (ceiling − noise floor), with the ceiling
  (pretrained vs random init) and the features for the floor from :mod:`.calibration_point`, the floor and the
  calibrated value per pair from :mod:`.calibration`.
* secondary columns: ``mmd2_two_sample`` (the paper's two-sample estimator at the pooled median bandwidth, which
  ignores the pairing), and linear CKA (biased, debiased).

The entries' layout is the ``alignment`` / ``transferability`` part of :mod:`transferlimits.study.schema`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from transferlimits.config import Profile
from transferlimits.metrics.cka import cka
from transferlimits.metrics.mmd import mmd2 as mmd2_two_sample
from transferlimits.metrics.mmd_paired import PairedKernel, median_sigma, mmd2_paired_multi
from transferlimits.study.feature_memo import FeatureMemo
from transferlimits.study.prehoc import case_targets, transferability

__all__ = ["standardise_pair", "compare_features", "measure_alignment", "transferability", "case_targets"]


def _null_entry(n: int, dim: int, n_groups: int, why: str, pooled: bool) -> dict[str, Any]:
    entry = {"n": n, "dim": dim, "n_groups": n_groups, "mmd2": None, "p_value": None, "bandwidth": None,
             "n_permutations": 0, "ci": [None, None], "mmd2_multi": {}, "mmd2_two_sample": None, "note": why}
    return {**entry, "cka": None, "cka_debiased": None} if pooled else entry


def standardise_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sides z-scored by the mean/SD of ``a`` (the starting encoder), per feature.

    Args:
        a: starting features ``[n, d]``. b: fine-tuned features of the same inputs ``[n, d]``.

    Returns:
        ``(a_std, b_std)``; features constant in ``a`` are only centred (SD taken as 1).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu, sd = a.mean(0), a.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    return (a - mu) / sd, (b - mu) / sd


def compare_features(a: np.ndarray, b: np.ndarray, profile: Profile, seed: int,
                     groups: np.ndarray | None = None) -> dict[str, Any]:
    """Paired MMD² (primary), its permutation p and CI, multi-bandwidth, two-sample MMD², and CKA (pooled rows).

    Args:
        a: features of the starting encoder ``[n, d]``. b: fine-tuned features of the same rows ``[n, d]``.
        profile: supplies ``measure`` (bandwidth multipliers, permutations, bootstrap replicates).
        seed: seed of permutations and resamples.
        groups: image of each row ``[n]`` for token rows (clustered test); None for one row per image (pooled,
            which also adds CKA).

    Returns:
        An alignment entry (:data:`transferlimits.study.schema.ENTRY_FIELDS`); undefined values are None with a
        ``note`` saying why (fewer than 2 images, constant features).
    """
    m, pooled = profile.measure, groups is None
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"features before/after must be paired [n, d] arrays, got {a.shape} and {b.shape}")
    n, dim = int(a.shape[0]), int(a.shape[1])
    n_groups = n if pooled else int(np.unique(groups).size)
    if n_groups < 2:
        return _null_entry(n, dim, n_groups, "fewer than 2 images", pooled)
    xs, ys = standardise_pair(a, b)
    try:
        sigma = median_sigma(xs, seed=seed)
    except ValueError as err:  # all starting rows coincide
        return _null_entry(n, dim, n_groups, f"constant features: {err}", pooled)
    kernel = PairedKernel(xs, ys, bandwidth=sigma, groups=groups)
    test = kernel.test(n_permutations=int(m.n_permutations), seed=seed, n_boot=int(m.n_bootstrap))
    multi = mmd2_paired_multi(xs, ys, multipliers=tuple(m.bandwidth_multipliers), sigma=sigma)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            two_sample = float(mmd2_two_sample(xs, ys))
        except ValueError:  # zero pooled median distance
            two_sample = None
    entry: dict[str, Any] = {
        "n": n, "dim": dim, "n_groups": n_groups, "mmd2": test.mmd2, "p_value": test.p_value, "bandwidth": sigma,
        "n_permutations": test.n_permutations, "ci": [test.ci_low, test.ci_high],
        "mmd2_multi": {str(k): v for k, v in multi.items() if k != "median_bandwidth"},
        "mmd2_two_sample": two_sample, "standardised_by": "starting encoder mean/SD",
    }
    if pooled:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            entry["cka"] = float(cka(a, b))
            entry["cka_debiased"] = float(cka(a, b, debiased=True)) if n >= 4 else None
    return entry


def measure_alignment(before: nn.Module, after: nn.Module, test_ds, profile: Profile, device: torch.device,
                      seed: int, memo: FeatureMemo | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """Compare an encoder before and after fine-tuning on the SAME images (paired).

    ``test_ds`` is the point's calibration set (``study.point.compute``: the test split as data seed 0 degrades
    it, the same images for every seed); ``memo`` (:class:`~transferlimits.study.feature_memo.FeatureMemo`)
    shares the extractions with the point's calibration (default: a fresh one).

    Returns:
        ``{"pooled": {layer: entry}, "tokens": {layer: entry}}``; pooled layers are ``embedding`` (the
        encoder's pooled output) and every map layer (global average per image); token layers hold
        ``profile.measure.token_samples`` token/voxel rows sampled at the same positions on both sides, tested
        with images as clusters.
    """
    k = int(profile.measure.token_samples)
    memo = memo if memo is not None else FeatureMemo(device)
    fa = memo.get(before, test_ds, token_samples=k, seed=seed)
    fb = memo.get(after, test_ds, token_samples=k, seed=seed)
    pooled = {"embedding": compare_features(fa.pooled, fb.pooled, profile, seed)}
    for name in fa.layers:
        if name in ("pooled", "embedding"):  # the encoder's pooled output is already "embedding"
            continue
        pooled[name] = compare_features(fa.layers[name], fb.layers[name], profile, seed)
    tokens = {name: compare_features(fa.tokens[name], fb.tokens[name], profile, seed, groups=fa.token_groups[name])
              for name in fa.tokens if name in fb.tokens}
    return {"pooled": pooled, "tokens": tokens}
