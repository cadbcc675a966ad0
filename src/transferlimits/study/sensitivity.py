"""Sensitivity of the headline H2 statistic to the analysis choices (STUDY §5.2: "the sensitivity analysis varies
the headline statistic itself").

Every row recomputes **the same statistic as the verdict** — the fixed-effect correlation r_FE on seed-averaged
units with its Fisher-z CI and within-group permutation p (:func:`~transferlimits.study.verdict_within.
fixed_effect_estimate`), within task (encoders, task × model groups) where the encoders allow it, else across
tasks (points, model groups) — and changes one choice. With the pairs' calibration records the baseline is the
verdict's own alignment, the **calibrated** value (STUDY §5.2) of the pooled embedding at the multi-scale sum, and
the rows vary it: the same calibration at the median bandwidth alone, no calibration (the embedding's MMD² at the
median bandwidth), and then — uncalibrated, as only the embedding has a floor — each bandwidth multiplier (and
their sum), layer and pooling (per image / tokens). Without calibration records (older runs) the baseline is the
uncalibrated MMD² at the median bandwidth. The gain definition (RPG or the normalised gain) is varied on the
baseline alignment. Seeds are never pooled as points and the fixed effect is never dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from transferlimits.study import analysis as an
from transferlimits.study.verdict_within import ACROSS, WITHIN, fixed_effect_estimate

__all__ = ["alignment_value", "calibrated_value", "headline_sensitivity", "GAINS"]

#: Gain definitions the sensitivity varies (column of :func:`~transferlimits.study.analysis.point_rows`: words).
GAINS = {"rpg": "RPG", "gain": "normalised gain"}
_COL = "mmd2_variant"


def alignment_value(m: dict, pooling: str = "pooled", layer: str = "embedding", multiplier: str | None = None) -> float:
    """MMD² (pretrained vs fine-tuned) of one metrics dict at a layer / pooling / bandwidth (None: median); NaN
    where absent."""
    entry = (((m.get("alignment") or {}).get("pretrained") or {}).get(pooling) or {}).get(layer) or {}
    value = entry.get("mmd2") if multiplier is None else (entry.get("mmd2_multi") or {}).get(multiplier)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return v if math.isfinite(v) else float("nan")


def calibrated_value(m: dict, calibration: Mapping[tuple[str, str, int, str], dict], field: str = "calibrated") -> float:
    """A calibration record's ``field`` (``calibrated``, ``calibrated_single``, ``value``, ...) for the point of
    metrics dict ``m``; NaN where the record or value is absent."""
    rec = calibration.get((m["task"], m["model"], int(m["seed"]), m["objective"])) or {}
    try:
        v = float(rec.get(field))
    except (TypeError, ValueError):
        return float("nan")
    return v if math.isfinite(v) else float("nan")


Variant = tuple[str, str, str, Callable[[dict], float]]  # axis, choice, x (what alignment), value of a point


def _calibrated_variants(calibration: Mapping[tuple[str, str, int, str], dict]) -> list[Variant]:
    """The calibrated baseline and the rows that vary its calibration and bandwidth."""
    def of(field: str) -> Callable[[dict], float]:
        return lambda m: calibrated_value(m, calibration, field)
    return [("baseline", "calibrated, embedding, sum over bandwidths", "calibrated alignment", of("calibrated")),
            ("bandwidth", "calibrated, median bandwidth alone", "calibrated alignment", of("calibrated_single"))]


def _variants(points: Sequence[dict], prefix: str = "") -> list[Variant]:
    """The uncalibrated variants present (bandwidth, layer, pooling), the median-bandwidth embedding first."""
    def of(pooling: str, layer: str, mult: str | None) -> Callable[[dict], float]:
        return lambda m: alignment_value(m, pooling, layer, mult)
    out: list[tuple[str, str, str, str, str | None]] = [
        ("baseline", "embedding, pooled, median bandwidth", "pooled", "embedding", None)]
    mults = sorted({k for m in points for k in ((((m.get("alignment") or {}).get("pretrained") or {})
                    .get("pooled") or {}).get("embedding") or {}).get("mmd2_multi") or {}
                    if k not in ("median_bandwidth",)},
                   key=lambda k: float(k) if k.replace(".", "", 1).isdigit() else math.inf)
    out += [("bandwidth", f"x{k}" if k != "sum" else "sum over bandwidths", "pooled", "embedding", k) for k in mults]
    for pooling in ("pooled", "tokens"):
        names: list[str] = []
        for m in points:
            for name in (((m.get("alignment") or {}).get("pretrained") or {}).get(pooling) or {}):
                if name not in names:
                    names.append(name)
        out += [("layer/pooling", f"{name} ({pooling})", pooling, name, None) for name in names
                if not (pooling == "pooled" and name == "embedding")]
    return [(axis, prefix + choice, "MMD²", of(pooling, layer, mult)) for axis, choice, pooling, layer, mult in out]


def _table(rows: pd.DataFrame, within: bool) -> pd.DataFrame:
    return an.encoder_points(rows) if within else an.average_points(rows)


def headline_sensitivity(points: Sequence[dict], y: str = "rpg", view: str = "auto", n_perm: int = 1000,
                         seed: int = 0, calibration: Mapping[tuple[str, str, int, str], dict] | None = None
                         ) -> pd.DataFrame:
    """The H2 statistic (or H3's with ``y="epochs_ratio"``) under every analysis choice, one row each.

    Args:
        points: metrics dicts of every objective kind (native, swapped, later kinds): the encoders.
        y: the headline outcome column (``rpg``; ``epochs_ratio`` for H3). Gain variants (:data:`GAINS`) are added
            when ``y`` is a gain. view: ``"within"`` (encoders, task × model groups), ``"across"`` (native points,
            model groups) or ``"auto"`` (within where the baseline has a CI, as the verdict). n_perm, seed:
            permutation settings.
        calibration: the pairs' calibration records by (task, model, seed, objective kind), as the verdicts read
            them (:func:`transferlimits.study.pair_index.load_indexed_calibration` or ``published_calibration``);
            with a finite calibrated value the baseline row is the calibrated alignment (module docstring).

    Returns:
        DataFrame with columns axis, choice, view, x (alignment), y, n, n_groups, r, ci (lo, hi), p.

    Raises:
        ValueError: ``view`` or ``y`` is not one of the allowed values (named).
    """
    if view not in ("auto", "within", "across"):
        raise ValueError(f"view must be 'auto', 'within' or 'across', got {view!r}")
    if y not in (*GAINS, "epochs_ratio"):
        raise ValueError(f"y must be one of {[*GAINS, 'epochs_ratio']}, got {y!r}")
    points = list(points)
    rows = an.point_rows(points)
    cols = ["axis", "choice", "view", "x", "y", "n", "n_groups", "r", "ci", "p"]
    if rows.empty:
        return pd.DataFrame(columns=cols)
    calibration = calibration or {}
    calibrated = any(math.isfinite(calibrated_value(m, calibration)) for m in points)
    variants = _variants(points)
    if calibrated:  # the uncalibrated baseline becomes the row that drops the calibration
        raw = _variants(points, "uncalibrated, ")
        variants = _calibrated_variants(calibration) + [("calibration", *raw[0][1:])] + raw[1:]
    base_value = variants[0][3]
    if view == "auto":
        base = rows.assign(**{_COL: [base_value(m) for m in points]})
        est = fixed_effect_estimate(_table(base, True), _COL, y, WITHIN, n_perm, seed)
        view = "within" if all(math.isfinite(c) for c in est.ci) else "across"
    within = view == "within"
    rows = rows if within else rows[rows["objective_kind"] == "native"]
    keep = rows.index.to_numpy()
    out = []

    def add(axis: str, choice: str, x: str, table: pd.DataFrame, y_col: str) -> None:
        e = fixed_effect_estimate(table, _COL, y_col, WITHIN if within else ACROSS, n_perm, seed,
                                  "encoders" if within else "points")
        out.append({"axis": axis, "choice": choice, "view": view, "x": x, "y": GAINS.get(y_col, y_col),
                    "n": e.n, "n_groups": e.n_groups, "r": e.estimate, "ci": tuple(e.ci), "p": e.p})

    for axis, choice, x, value in variants:
        values = np.array([value(points[i]) for i in keep])
        if not np.isfinite(values).any():
            continue
        add(axis, choice, x, _table(rows.assign(**{_COL: values}), within), y)
    if y in GAINS:
        table = _table(rows.assign(**{_COL: [base_value(points[i]) for i in keep]}), within)
        for other in GAINS:
            if other != y:
                add("gain definition", GAINS[other], variants[0][2], table, other)
    return pd.DataFrame(out, columns=cols)
