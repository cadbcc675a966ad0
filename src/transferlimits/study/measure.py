"""Feature-space measurements of one study point: MMD², CKA (post-hoc) and LogME / linear probe (pre-hoc).

Used by :mod:`transferlimits.study.point`; the entries' layout is the ``alignment`` / ``transferability``
part of the metrics.json schema (:mod:`transferlimits.study.schema`).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from transferlimits.config import Profile
from transferlimits.metrics.cka import cka
from transferlimits.metrics.logme import linear_probe_score, logme
from transferlimits.metrics.mmd import mmd2_ci, mmd2_multi, mmd2_test
from transferlimits.study.features import extract_features
from transferlimits.tasks import get_kind

__all__ = ["compare_features", "measure_alignment", "transferability", "case_targets"]


def _nan_entry(n: int, dim: int, why: str) -> dict[str, Any]:
    return {"n": n, "dim": dim, "mmd2": float("nan"), "p_value": float("nan"), "bandwidth": [],
            "n_permutations": 0, "mmd2_multi": {}, "ci": [float("nan"), float("nan")], "note": why}


def compare_features(a: np.ndarray, b: np.ndarray, profile: Profile, seed: int, paired: bool) -> dict[str, Any]:
    """MMD² (median bandwidth, permutation p, multi-bandwidth, subset CI) and, if ``paired``, CKA.

    Args:
        a: features before fine-tuning ``[n, d]``. b: after fine-tuning ``[m, d]`` (``m == n`` when paired).
        profile: supplies ``measure`` (multipliers, permutations, bootstrap replicates).
        seed: seed of permutations and subsets.
        paired: rows of ``a`` and ``b`` are the same images (adds linear CKA, biased and debiased).
    """
    m = profile.measure
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n, dim = int(a.shape[0]), int(a.shape[1])
    if min(a.shape[0], b.shape[0]) < 2:
        return _nan_entry(n, dim, "fewer than 2 samples")
    if np.allclose(a, b) and np.ptp(np.concatenate([a, b]), axis=0).max() == 0:
        return _nan_entry(n, dim, "constant features")
    try:
        test = mmd2_test(a, b, n_permutations=m.n_permutations, seed=seed)
        multi = mmd2_multi(a, b, multipliers=m.bandwidth_multipliers)
        lo, hi, _ = mmd2_ci(a, b, method="subset", n=m.n_bootstrap, seed=seed)
    except ValueError as err:  # e.g. zero median distance
        return _nan_entry(n, dim, str(err))
    entry: dict[str, Any] = {
        "n": n, "dim": dim, "mmd2": float(test.statistic), "p_value": float(test.p_value),
        "bandwidth": [float(s) for s in test.bandwidth], "n_permutations": int(test.n_permutations),
        "mmd2_multi": {str(k): float(v) for k, v in multi.items()}, "ci": [float(lo), float(hi)],
    }
    if paired:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            entry["cka"] = float(cka(a, b))
            entry["cka_debiased"] = float(cka(a, b, debiased=True)) if n >= 4 else float("nan")
    return entry


def measure_alignment(before: nn.Module, after: nn.Module, test_ds, profile: Profile, device: torch.device,
                      seed: int) -> dict[str, dict[str, dict[str, Any]]]:
    """Compare an encoder before and after fine-tuning on the SAME test images.

    Returns:
        ``{"pooled": {layer: entry}, "tokens": {layer: entry}}``; pooled layers are ``embedding`` (the
        encoder's pooled output) and every map layer (global average per image); token layers hold
        ``profile.measure.token_samples`` token/voxel rows sampled at the same positions on both sides.
    """
    k = int(profile.measure.token_samples)
    fa = extract_features(before, test_ds, device, token_samples=k, seed=seed)
    fb = extract_features(after, test_ds, device, token_samples=k, seed=seed)
    pooled = {"embedding": compare_features(fa.pooled, fb.pooled, profile, seed, paired=True)}
    for name in fa.layers:
        if name in ("pooled", "embedding"):  # the encoder's pooled output is already "embedding"
            continue
        pooled[name] = compare_features(fa.layers[name], fb.layers[name], profile, seed, paired=True)
    tokens = {name: compare_features(fa.tokens[name], fb.tokens[name], profile, seed, paired=False)
              for name in fa.tokens if name in fb.tokens}
    return {"pooled": pooled, "tokens": tokens}


def case_targets(ds, spec: Any) -> tuple[np.ndarray, bool, str]:
    """Per-case targets for LogME/linear probe: ``(targets [n], regression, description)`` (the task kind's)."""
    kind = get_kind(spec.kind)
    ys = [kind.case_target(ds[i]) for i in range(len(ds))]
    return np.asarray(ys), kind.regression, kind.target_description


def transferability(encoder: nn.Module, train_ds, spec: Any, profile: Profile, device: torch.device,
                    seed: int) -> dict[str, Any]:
    """LogME and a cross-validated linear probe on the FROZEN encoder's pooled train-split features."""
    feats = extract_features(encoder, train_ds, device, token_samples=0, seed=seed).pooled
    y, regression, desc = case_targets(train_ds, spec)
    out: dict[str, Any] = {"target": desc, "regression": regression, "n": int(len(y)), "feature": "embedding"}
    try:
        out["logme"] = float(logme(feats, y, regression=regression))
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as err:  # degenerate features or targets
        out["logme"], out["logme_note"] = float("nan"), f"{type(err).__name__}: {err}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["linear_probe"] = linear_probe_score(feats, y, regression=regression, seed=seed)
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as err:
        out["linear_probe"] = {"note": str(err)}
    return out
