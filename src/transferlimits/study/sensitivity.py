"""Sensitivity of the headline H2 statistic to the analysis choices (STUDY §5.2: "the sensitivity analysis varies
the headline statistic itself").

Every row recomputes **the same statistic as the verdict** — the fixed-effect correlation r_FE on seed-averaged
units with its Fisher-z CI and within-group permutation p (:func:`~transferlimits.study.verdict_within.
fixed_effect_estimate`), within task (encoders, task × model groups) where the encoders allow it, else across
tasks (points, model groups) — and changes one choice: the MMD² bandwidth multiplier (or the multi-scale sum),
the layer and pooling (per image / tokens) the alignment is read from, and the gain definition (RPG or the
normalised gain). Seeds are never pooled as points and the fixed effect is never dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from transferlimits.study import analysis as an
from transferlimits.study.verdict_within import ACROSS, WITHIN, fixed_effect_estimate

__all__ = ["alignment_value", "headline_sensitivity", "GAINS"]

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


def _variants(points: Sequence[dict]) -> list[tuple[str, str, str, str, str | None]]:
    """(axis, choice, pooling, layer, multiplier) of every variant present, the baseline first."""
    out = [("baseline", "embedding, pooled, median bandwidth", "pooled", "embedding", None)]
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
    return out


def _table(rows: pd.DataFrame, within: bool) -> pd.DataFrame:
    return an.encoder_points(rows) if within else an.average_points(rows)


def headline_sensitivity(points: Sequence[dict], y: str = "rpg", view: str = "auto", n_perm: int = 1000,
                         seed: int = 0) -> pd.DataFrame:
    """The H2 statistic (or H3's with ``y="epochs_ratio"``) under every analysis choice, one row each.

    Args:
        points: metrics dicts of every objective kind (native, swapped, later kinds): the encoders.
        y: the headline outcome column (``rpg``; ``epochs_ratio`` for H3). Gain variants (:data:`GAINS`) are added
            when ``y`` is a gain. view: ``"within"`` (encoders, task × model groups), ``"across"`` (native points,
            model groups) or ``"auto"`` (within where the baseline has a CI, as the verdict). n_perm, seed:
            permutation settings.

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
    variants = _variants(points)
    base = rows.assign(**{_COL: [alignment_value(m, *variants[0][2:]) for m in points]})
    if view == "auto":
        est = fixed_effect_estimate(_table(base, True), _COL, y, WITHIN, n_perm, seed)
        view = "within" if all(math.isfinite(c) for c in est.ci) else "across"
    within = view == "within"
    rows = rows if within else rows[rows["objective_kind"] == "native"]
    keep = rows.index.to_numpy()
    out = []

    def add(axis: str, choice: str, table: pd.DataFrame, y_col: str) -> None:
        e = fixed_effect_estimate(table, _COL, y_col, WITHIN if within else ACROSS, n_perm, seed,
                                  "encoders" if within else "points")
        out.append({"axis": axis, "choice": choice, "view": view, "x": "MMD²", "y": GAINS.get(y_col, y_col),
                    "n": e.n, "n_groups": e.n_groups, "r": e.estimate, "ci": tuple(e.ci), "p": e.p})

    for axis, choice, pooling, layer, mult in variants:
        values = np.array([alignment_value(points[i], pooling, layer, mult) for i in keep])
        if not np.isfinite(values).any():
            continue
        add(axis, choice, _table(rows.assign(**{_COL: values}), within), y)
    if y in GAINS:
        table = _table(rows.assign(**{_COL: [alignment_value(points[i], *variants[0][2:]) for i in keep]}), within)
        for other in GAINS:
            if other != y:
                add("gain definition", GAINS[other], table, other)
    return pd.DataFrame(out, columns=cols)
