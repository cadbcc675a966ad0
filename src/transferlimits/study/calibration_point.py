"""The point-level part of the calibrated alignment (STUDY §5.2 "Calibrated"): ceiling, features, weight change.

A point's paired MMD² (pretrained vs fine-tuned encoder, :mod:`.measure`) has no scale of its own: it is read
against two references measured with the SAME statistic, standardisation and bandwidths (features z-scored by
the starting encoder's mean/SD; σ = median pairwise distance of the standardised starting features; the kernels
at σ × ``profile.measure.bandwidth_multipliers``, 0.25-4, summed — a single median bandwidth saturates):

* **ceiling** (here, per point): the statistic between the starting (pretrained) encoder's features and those of
  a random initialisation of the same architecture (the point's ``scratch`` encoder before fine-tuning) on the
  same images;
* **noise floor** (:mod:`.calibration`, per pair): the statistic between two fine-tunings of one starting encoder
  with different seeds, read from the ``features.npz`` each point writes here.

All three are computed on one *calibration set*: the test split as data seed :data:`CALIBRATION_DATA_SEED` makes
it (a task whose degradation is seeded, e.g. the EPI field of distortion correction, shows every seed the same
inputs only this way); for a point of that seed it is the point's own test split. ``features.npz`` holds the
pooled ``embedding`` features (float32 ``[n, C]``) of the starting encoder (``pretrained``), the random init
(``random_init``), each fine-tuned run (``finetuned_pretrained``; ``finetuned_scratch`` where the scratch run
was computed by the point), ``case_ids``, ``sigma``, ``multipliers`` and ``data_seed``.

The relative weight change ‖θ − θ₀‖ / ‖θ₀‖ over the encoder's parameters is recorded per fine-tuned init.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from transferlimits.metrics.mmd_paired import median_sigma, mmd2_paired_multi
from transferlimits.runtime import atomic_write_bytes
from transferlimits.study.feature_memo import FeatureMemo

__all__ = ["FEATURES_FILE", "CALIBRATION_DATA_SEED", "STATISTIC", "PointCalibration", "standardise_by",
           "calibration_statistic", "relative_weight_change", "calibration_test_set", "point_calibration",
           "record_calibration", "write_features"]

FEATURES_FILE = "features.npz"
#: the data seed of the calibration set (the test split's seeded degradation), the same for every point
CALIBRATION_DATA_SEED = 0
#: what the calibrated statistic is, in words (recorded beside the values)
STATISTIC = ("paired MMD² of the pooled embedding, Gaussian kernels at σ × multipliers summed; features z-scored by "
             "the starting (pretrained) encoder's mean/SD, σ = median pairwise distance of those standardised features")


@dataclass
class PointCalibration:
    """What a point measured for its calibration.

    Attributes:
        record: ``alignment.pretrained.calibration`` of metrics.json (ceiling, the value on the calibration set,
            σ, multipliers, n, data seed, note).
        weight_change: init -> ‖θ − θ₀‖ / ‖θ₀‖ (None where not computable).
        features: the arrays of ``features.npz``.
        seconds: wall seconds of the extra feature passes and the ceiling.
    """

    record: dict[str, Any]
    weight_change: dict[str, float | None]
    features: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0


def standardise_by(ref: np.ndarray, *arrays: np.ndarray) -> list[np.ndarray]:
    """Each array z-scored by the per-feature mean/SD of ``ref`` (SD ≤ 1e-12 taken as 1), as
    :func:`transferlimits.study.measure.standardise_pair` does for its starting side.

    Args:
        ref: starting features ``[n, d]``. *arrays: features ``[m, d]`` to standardise.

    Returns:
        The standardised arrays (float64), in order.
    """
    ref = np.asarray(ref, np.float64)
    mu, sd = ref.mean(0), ref.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    return [(np.asarray(a, np.float64) - mu) / sd for a in arrays]


def calibration_statistic(ref: np.ndarray, x: np.ndarray, y: np.ndarray, multipliers: Sequence[float],
                          sigma: float | None = None, seed: int = 0) -> dict[str, float]:
    """The calibrated statistic between paired rows ``x`` and ``y``, standardised and scaled by ``ref``.

    Args:
        ref: the starting encoder's features ``[n, d]`` (standardisation and σ). x, y: paired features ``[n, d]``.
        multipliers: σ multipliers (non-empty, positive). sigma: the median σ of standardised ``ref`` (default:
            computed, with ``seed`` for its subset above 4000 rows).

    Returns:
        ``{"sum": MMD² of the summed kernels, "single": MMD² at σ alone, "sigma": σ}``.

    Raises:
        ValueError: shapes differ, fewer than 2 rows, all rows of ``ref`` coincide, or bad multipliers.
    """
    ref, x, y = (np.asarray(a, np.float64) for a in (ref, x, y))
    if not (ref.shape == x.shape == y.shape) or ref.ndim != 2:
        raise ValueError(f"ref, x and y must be paired [n, d] arrays of one shape, got {ref.shape}, {x.shape}, "
                         f"{y.shape}")
    rs, xs, ys = standardise_by(ref, ref, x, y)
    sig = float(sigma) if sigma is not None else median_sigma(rs, seed=seed)
    mults = tuple(float(m) for m in multipliers)
    multi = mmd2_paired_multi(xs, ys, multipliers=mults + (() if 1.0 in mults else (1.0,)), sigma=sig)
    total = sum(multi[m] for m in mults)
    return {"sum": float(total), "single": float(multi[1.0]), "sigma": sig}


def relative_weight_change(start: nn.Module, tuned: nn.Module) -> float | None:
    """‖θ − θ₀‖ / ‖θ₀‖ over all parameters of an encoder (θ₀ = ``start``, θ = ``tuned``), in float64.

    Returns:
        The ratio; None when the two encoders' parameter names or shapes differ or ‖θ₀‖ = 0.
    """
    a, b = dict(start.named_parameters()), dict(tuned.named_parameters())
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        return None
    num = den = 0.0
    with torch.no_grad():
        for k, p0 in a.items():
            p0d = p0.detach().to("cpu", torch.float64)
            num += float(((b[k].detach().to("cpu", torch.float64) - p0d) ** 2).sum())
            den += float((p0d**2).sum())
    return float(np.sqrt(num / den)) if den > 0 else None


def calibration_test_set(load_data: Callable, profile: Any, task: str, model: str, seed: int,
                         data: dict[str, Any]) -> Any:
    """The calibration set: ``data["test"]`` for a point of seed :data:`CALIBRATION_DATA_SEED`, else the test
    split that ``load_data(profile, task, model, CALIBRATION_DATA_SEED)`` gives."""
    if int(seed) == CALIBRATION_DATA_SEED:
        return data["test"]
    return load_data(profile, task, model, CALIBRATION_DATA_SEED)[1]["test"]


def _ceiling(pre: np.ndarray, ft: np.ndarray, rand: np.ndarray, mults: Sequence[float],
             seed: int) -> dict[str, Any]:
    """The point's record: value and ceiling on the calibration set (None with a note where undefined)."""
    rec: dict[str, Any] = {"statistic": STATISTIC, "multipliers": [float(m) for m in mults], "n": int(pre.shape[0]),
                           "data_seed": CALIBRATION_DATA_SEED, "features": FEATURES_FILE, "value": None,
                           "value_single": None, "ceiling": None, "ceiling_single": None, "bandwidth": None,
                           "note": None}
    try:
        value = calibration_statistic(pre, pre, ft, mults, seed=seed)
        ceiling = calibration_statistic(pre, pre, rand, mults, sigma=value["sigma"])
    except ValueError as err:  # fewer than 2 images, constant starting features
        rec["note"] = f"not computable: {err}"
        return rec
    rec.update(value=value["sum"], value_single=value["single"], ceiling=ceiling["sum"],
               ceiling_single=ceiling["single"], bandwidth=value["sigma"])
    return rec


def point_calibration(encoders: dict[str, nn.Module], results: dict[str, Any], calibration_set: Any,
                      multipliers: Sequence[float], device: torch.device, seed: int,
                      memo: FeatureMemo | None = None) -> PointCalibration:
    """Ceiling, features and weight changes of one point.

    Args:
        encoders: ``{"pretrained": starting encoder, "scratch": random init}`` (neither modified by fine-tuning).
        results: init -> fine-tuning result (``.model.encoder``); ``pretrained`` required, ``scratch`` optional.
        calibration_set: :func:`calibration_test_set`. multipliers: ``profile.measure.bandwidth_multipliers``.
        device: where the encoders run. seed: the point's seed (σ subset above 4000 rows; none below).
        memo: the point's :class:`~transferlimits.study.feature_memo.FeatureMemo` (the alignment's extractions
            of the same encoders on the same set are reused); default: a fresh one.

    Returns:
        :class:`PointCalibration`.
    """
    t0 = time.perf_counter()
    tuned = {init: results[init].model.encoder for init in ("pretrained", "scratch") if init in results}
    feats = {"pretrained": encoders["pretrained"], "random_init": encoders["scratch"],
             **{f"finetuned_{init}": enc for init, enc in tuned.items()}}
    arrays: dict[str, np.ndarray] = {}
    case_ids: list[str] = []
    memo = memo if memo is not None else FeatureMemo(device)
    for name, enc in feats.items():
        fs = memo.get(enc, calibration_set)
        arrays[name], case_ids = np.asarray(fs.pooled, np.float32), fs.case_ids
    rec = _ceiling(arrays["pretrained"], arrays["finetuned_pretrained"], arrays["random_init"], multipliers, seed)
    arrays.update(case_ids=np.asarray(case_ids, dtype=str), multipliers=np.asarray(multipliers, np.float64),
                  sigma=np.float64(np.nan if rec["bandwidth"] is None else rec["bandwidth"]),
                  data_seed=np.int64(CALIBRATION_DATA_SEED))
    change = {init: relative_weight_change(encoders[init], enc) for init, enc in tuned.items()}
    return PointCalibration(rec, change, arrays, time.perf_counter() - t0)


def record_calibration(alignment: dict[str, dict], cal: PointCalibration) -> None:
    """Add ``weight_change`` to each init's alignment block and ``calibration`` to the pretrained one (in place)."""
    for init, value in cal.weight_change.items():
        if init in alignment:
            alignment[init]["weight_change"] = value
    alignment["pretrained"]["calibration"] = cal.record


def write_features(out: Path, cal: PointCalibration | None) -> Path | None:
    """Write ``features.npz`` into the point folder ``out`` atomically (nothing without a calibration)."""
    if cal is None:
        return None
    buf = io.BytesIO()
    np.savez_compressed(buf, **cal.features)
    return atomic_write_bytes(Path(out) / FEATURES_FILE, buf.getvalue())
