"""Pre-hoc transferability of one study point (STUDY §5.2, H5): LogME and a linear probe on targets that vary.

The FROZEN pretrained encoder reads the train split; the task kind says what a row is (``TaskKind.transfer_unit``):

* ``"case"`` (classification, scalar regression): one row per image, the pooled embedding against the kind's
  per-case target (``case_target``; it varies: a class, a scalar);
* ``"patch"`` (segmentation, dense regression): rows of the deepest feature map at sampled positions
  (:func:`transferlimits.study.patch_features.patch_rows`, at most ``max_rows``), each against the kind's
  target of the row's cell (``patch_targets``: lesion fraction, residual RMS, target mean). A per-case summary
  of a dense target hardly varies (the mean of a per-case z-score: LogME −1.41894 = −½ ln(2πe) for 5 of 6
  continuous points of the committed cpu run). Cells are each model's own map cells, so patch LogME compares
  objectives and initialisations of one model; across models it differs by the cell size too (a model effect).

Continuous targets are z-scored (their SD is kept as ``target_sd``), so LogME does not depend on their units. A
target with one value is an error, not a score (:func:`transferlimits.metrics.logme.check_target_varies`):
``logme`` is then null and ``logme_note`` gives the reason. The linear probe is cross-validated by image groups
(rows of one image never straddle a fold), with the fields of :data:`transferlimits.study.schema.TRANSFER_FIELDS`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from transferlimits.config import Profile
from transferlimits.metrics.logme import check_target_varies, linear_probe_score, logme
from transferlimits.study.features import extract_features
from transferlimits.study.patch_features import MAX_PATCH_ROWS, patch_rows
from transferlimits.tasks import get_kind

__all__ = ["case_targets", "transfer_rows", "transferability"]

_ERRORS = (ValueError, ArithmeticError, np.linalg.LinAlgError)


def case_targets(ds, spec: Any) -> tuple[np.ndarray, bool, str, str]:
    """Per-case targets for LogME / the linear probe: ``(targets [n], regression, description, target_type)``."""
    kind = get_kind(spec.kind)
    ys = [kind.case_target(ds[i]) for i in range(len(ds))]
    return np.asarray(ys), kind.regression, kind.target_description, kind.target_type


def transfer_rows(encoder: nn.Module, train_ds, spec: Any, device: torch.device, seed: int,
                  max_rows: int = MAX_PATCH_ROWS) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """The rows LogME and the probe see: ``(features [n, C], targets [n], groups [n] image, info)``.

    Args:
        encoder: the frozen encoder. train_ds: map-style task dataset. spec: its TaskSpec. device: where to run.
        seed: position sampler seed. max_rows: patch rows at most (default :data:`MAX_PATCH_ROWS`).

    Returns:
        ``info`` holds target, target_type, regression, unit, feature (layer), and for patches
        ``rows_per_image`` and ``cells_per_image``.
    """
    kind = get_kind(spec.kind)
    if kind.transfer_unit == "case":
        feats = extract_features(encoder, train_ds, device, token_samples=0, seed=seed).pooled
        y, regression, desc, target_type = case_targets(train_ds, spec)
        info = {"target": desc, "target_type": target_type, "regression": bool(regression), "unit": "case",
                "feature": "embedding"}
        return feats, y, np.arange(len(y)), info
    if kind.transfer_unit != "patch":
        raise ValueError(f"task kind {kind.name!r}: transfer_unit must be 'case' or 'patch', got "
                         f"{kind.transfer_unit!r}")
    enrich = None
    if kind.patch_enrich:  # a rare target: half of each image's rows from the cells that carry it
        def enrich(i: int, boxes: np.ndarray) -> np.ndarray:
            return np.asarray(kind.patch_targets(train_ds, i, boxes, spec), np.float64) > 0
    rows = patch_rows(encoder, train_ds, device, max_rows=max_rows, seed=seed, enrich=enrich)
    y = np.concatenate([np.asarray(kind.patch_targets(train_ds, i, rows.boxes[rows.groups == i], spec), np.float64)
                        for i in range(len(train_ds))])
    desc, target_type = kind.patch_target_info(spec, train_ds)
    info = {"target": desc, "target_type": target_type, "regression": target_type == "continuous", "unit": "patch",
            "feature": rows.layer, "rows_per_image": int(np.bincount(rows.groups).max()),
            "cells_per_image": rows.cells, "sampling": "enriched" if enrich is not None else "uniform"}
    return rows.features, y, rows.groups, info


def transferability(encoder: nn.Module, train_ds, spec: Any, profile: Profile, device: torch.device,
                    seed: int, max_rows: int = MAX_PATCH_ROWS) -> dict[str, Any]:
    """LogME and a linear probe (folds by image) of the FROZEN encoder on the train split (module docstring).

    Args:
        encoder: the pretrained encoder (not changed). train_ds: the train split. spec: the TaskSpec.
        profile: the profile (kept for the caller's signature). device: where to run. seed: sampler / fold seed.
        max_rows: patch rows at most (default :data:`MAX_PATCH_ROWS`).

    Returns:
        The ``transferability`` entry of metrics.json (:data:`transferlimits.study.schema.TRANSFER_FIELDS`).
    """
    feats, y, groups, info = transfer_rows(encoder, train_ds, spec, device, seed, max_rows)
    regression = info["regression"]
    out: dict[str, Any] = {**info, "standardised": False, "n": int(len(y)),
                           "n_groups": int(np.unique(groups).size), "dim": int(feats.shape[1])}
    try:
        check_target_varies(y, regression, info["target"])
    except _ERRORS as err:
        out.update(logme=None, logme_note=f"{type(err).__name__}: {err}", linear_probe={"note": str(err)})
        return out
    if regression:
        y = np.asarray(y, np.float64)
        out["target_sd"] = float(y.std())
        y, out["standardised"] = (y - y.mean()) / y.std(), True
    try:
        out["logme"] = float(logme(feats, y, regression=regression, target_name=info["target"]))
    except _ERRORS as err:  # degenerate features
        out["logme"], out["logme_note"] = None, f"{type(err).__name__}: {err}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["linear_probe"] = linear_probe_score(feats, y, regression=regression, seed=seed, groups=groups)
    except _ERRORS as err:
        out["linear_probe"] = {"note": str(err)}
    return out
