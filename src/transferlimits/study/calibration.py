"""The calibrated alignment of a (task, model) pair's points (STUDY §5.2 "Calibrated"): noise floor and
``calibrated = (value − floor) / (ceiling − floor)``.

Each point writes ``features.npz`` (:mod:`.calibration_point`): its starting encoder's, its random init's and its
fine-tuned encoders' pooled ``embedding`` features on the calibration set, and the σ of its value. Across the
seeds of one (task, model, objective kind) the starting encoder is the same file, so the fine-tuned encoders of
two seeds are two fine-tunings from one initialisation: ``seed_to_seed`` is the mean, over the other seeds'
points, of the statistic between its fine-tuned features and theirs, on the point's own standardisation and σ,
and the **noise floor** is half of it (see "Reading it" below: the statistic of ONE fine-tuning that moved by seed
noise alone). Its **value** and **ceiling** (starting vs random init) are recomputed from the same file,
so all three use one statistic on one set of images. Another seed counts only when its starting features and
case ids are those of the point (same encoder, same images); a point without ``features.npz`` (computed before
this existed) gets nulls with the reason.

The calibrated value is 0 at the floor (a move no larger than seed noise) and 1 at the ceiling (as far as a random
encoder); it is the primary alignment value. The paired permutation p-values of
:mod:`.measure` are secondary (fine-tuning always moves the weights, so they sit at their floor) and are not
calibrated.

Reading it: MMD² is (for small moves) a squared distance between mean embeddings, so with fine-tuned embeddings
start + shift + seed noise, E[value] = shift² + noise² while E[seed_to_seed] = 2 noise² (two independent noises).
The floor is therefore seed_to_seed / 2 (a deviation from STUDY §5.2's literal "floor = two fine-tunings", which
would put a pure-noise point at calibrated ≈ −floor / (2 (ceiling − floor)) < 0; measured on synthetic features
with no shift: value / seed_to_seed = 0.60). The ceiling is a reference, not a bound: a fine-tuned encoder can be
farther from its start than a random init is (calibrated > 1). It is defined only where the unit ``ceiling − floor``
exceeds the floor (:func:`calibrated_value`), and an encoder's value (its seeds averaged,
:func:`transferlimits.study.analysis.average_points`) only where most of its seeds have one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from transferlimits.jsonsafe import loads_strict
from transferlimits.study.calibration_point import FEATURES_FILE, STATISTIC, calibration_statistic

__all__ = ["FORMULA", "calibrated_value", "calibrate_pair", "calibration_key"]

FORMULA = ("calibrated = (value - floor) / (ceiling - floor); value = statistic(pretrained, fine-tuned), ceiling = "
           "statistic(pretrained, random init), floor = seed_to_seed / 2, seed_to_seed = mean over the other seeds' "
           "points of statistic(fine-tuned, their fine-tuned), all standardised by and with σ from the pretrained features (0 = seed noise, "
           "1 = a random encoder); undefined where ceiling - floor <= floor")
_NULLS = ("value", "value_single", "ceiling", "ceiling_single", "seed_to_seed", "seed_to_seed_single", "floor",
          "floor_single", "calibrated",
          "calibrated_single")


def calibration_key(task: str, model: str, seed: int, objective: str) -> tuple[str, str, int, str]:
    """The key of one point's calibration record (as :func:`transferlimits.study.analysis.point_rows` looks it up)."""
    return str(task), str(model), int(seed), str(objective)


def calibrated_value(value: float | None, floor: float | None, ceiling: float | None) -> tuple[float | None, str | None]:
    """``(value − floor) / (ceiling − floor)`` and None, or None and the reason it is undefined.

    Undefined where ``ceiling − floor ≤ floor``: the value's seed noise is of the order of the floor, so with a
    unit ``ceiling − floor`` no larger than it the calibrated value's noise spans the whole 0–1 scale (in the cpu run
    of ``4dbef34`` a ceiling 0.6 % above its floor gave 128.9 on one seed and dominated H2's within-group null).

    Args:
        value: the point's statistic. floor: the noise floor. ceiling: the random-init ceiling (any may be None).
    """
    if value is None or floor is None or ceiling is None:
        missing = [n for n, v in (("value", value), ("floor", floor), ("ceiling", ceiling)) if v is None]
        return None, f"no {', '.join(missing)}"
    if not ceiling - floor > floor:
        return None, (f"ceiling {ceiling:.4g} - floor {floor:.4g} <= floor: a random encoder is no farther from the "
                      "start than seed noise resolves (the scale's unit is smaller than its noise)")
    out = (float(value) - float(floor)) / (float(ceiling) - float(floor))
    return (out, None) if np.isfinite(out) else (None, "not finite")


def _load(point_dir: Path) -> dict[str, Any]:
    """A point's identity (from metrics.json) and its features (None with a reason when absent/unreadable)."""
    m = loads_strict((point_dir / "metrics.json").read_text())
    point = {"name": point_dir.name, "task": m["task"], "model": m["model"], "seed": int(m["seed"]),
             "objective": m["objective"], "features": None, "reason": None}
    path = point_dir / FEATURES_FILE
    if not path.is_file():
        point["reason"] = f"no {FEATURES_FILE} (a point computed before the calibration existed)"
        return point
    try:
        with np.load(path, allow_pickle=False) as z:
            feats = {k: z[k] for k in z.files}
        for key in ("pretrained", "random_init", "finetuned_pretrained", "case_ids", "multipliers", "sigma"):
            if key not in feats:
                raise KeyError(key)
    except (OSError, ValueError, KeyError) as err:
        point["reason"] = f"{FEATURES_FILE} unreadable ({type(err).__name__}: {err})"
        return point
    point["features"] = feats
    return point


def _same_start(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    """Same starting features on the same images (tolerance for float noise of a re-run)."""
    pa, pb = a["pretrained"], b["pretrained"]
    if pa.shape != pb.shape or not np.array_equal(a["case_ids"], b["case_ids"]):
        return False
    scale = float(np.abs(pa).max()) if pa.size else 0.0
    return bool(np.abs(pa.astype(np.float64) - pb).max() <= 1e-4 * scale + 1e-7) if pa.size else True


def _record(point: dict[str, Any], group: list[dict[str, Any]]) -> dict[str, Any]:
    """One point's calibration record from its own features and its group's (the other seeds')."""
    rec: dict[str, Any] = {k: point[k] for k in ("task", "model", "seed", "objective")}
    rec.update({k: None for k in _NULLS}, bandwidth=None, multipliers=[], floor_seeds=[], reasons={})
    f = point["features"]
    if f is None:
        rec["reasons"] = {k: point["reason"] for k in _NULLS}
        return rec
    mults, sigma = tuple(float(v) for v in f["multipliers"]), float(f["sigma"])
    if not np.isfinite(sigma):
        rec["reasons"] = {k: "the starting features have no bandwidth (constant or fewer than 2 images)" for k in _NULLS}
        return rec
    pre = f["pretrained"]
    try:
        value = calibration_statistic(pre, pre, f["finetuned_pretrained"], mults, sigma=sigma)
        ceiling = calibration_statistic(pre, pre, f["random_init"], mults, sigma=sigma)
    except ValueError as err:  # non-finite features (a diverged run), mismatched shapes
        rec["reasons"] = {k: f"not computable: {err}" for k in _NULLS}
        return rec
    rec.update(value=value["sum"], value_single=value["single"], ceiling=ceiling["sum"],
               ceiling_single=ceiling["single"], bandwidth=sigma, multipliers=list(mults))
    others = [o for o in group if o is not point and o["seed"] != point["seed"] and o["features"] is not None
              and _same_start(f, o["features"])]
    if not others:
        why = "fewer than 2 seeds with features from one starting encoder on the same images"
        rec["reasons"].update({k: why for k in ("floor", "floor_single", "calibrated", "calibrated_single")})
        return rec
    try:
        floors = [calibration_statistic(pre, f["finetuned_pretrained"], o["features"]["finetuned_pretrained"], mults,
                                        sigma=sigma) for o in others]
    except ValueError as err:
        rec["reasons"].update({k: f"not computable: {err}" for k in ("floor", "floor_single", "calibrated",
                                                                       "calibrated_single")})
        return rec
    between = {"": float(np.mean([v["sum"] for v in floors])), "_single": float(np.mean([v["single"] for v in floors]))}
    rec.update(seed_to_seed=between[""], seed_to_seed_single=between["_single"], floor=between[""] / 2,
               floor_single=between["_single"] / 2, floor_seeds=sorted(o["seed"] for o in others))
    for suffix in ("", "_single"):
        cal, why = calibrated_value(rec["value" + suffix], rec["floor" + suffix], rec["ceiling" + suffix])
        rec["calibrated" + suffix] = cal
        if why:
            rec["reasons"]["calibrated" + suffix] = why
    return rec


def calibrate_pair(point_dirs: Sequence[str | Path]) -> dict[str, Any]:
    """The calibrated alignment of every point of a pair (strict JSON: nulls with reasons).

    Args:
        point_dirs: the pair's point folders (each with ``metrics.json`` and, for points computed with the
            calibration, ``features.npz``); points are grouped by (task, model, objective kind), floors across
            seeds within a group.

    Returns:
        ``{"statistic", "formula", "points": {folder name: record}}``; a record holds task, model, seed,
        objective, value, ceiling, floor, calibrated (the multi-scale sums) and their ``_single`` (σ alone)
        counterparts, bandwidth, multipliers, ``floor_seeds`` (the other seeds averaged) and ``reasons``
        (field -> why it is null).

    Raises:
        FileNotFoundError: a folder has no ``metrics.json``.
    """
    points = [_load(Path(d)) for d in point_dirs]
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for p in points:
        groups.setdefault((p["task"], p["model"], p["objective"]), []).append(p)
    records = {p["name"]: _record(p, groups[(p["task"], p["model"], p["objective"])]) for p in points}
    return {"statistic": STATISTIC, "formula": FORMULA, "points": records}
