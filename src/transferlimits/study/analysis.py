"""The study's analysis table: every point's ``metrics.json`` of a profile as one row, then one row per
(task, model) averaged over seeds, and the correlations across those points (STUDY §5).

Three steps, each a function:

1. :func:`point_rows` reads metrics dicts (schema 2; fields absent from an older file become NaN / None) into
   a DataFrame with one row per (task, model, seed, objective): primary-metric scores per initialisation,
   the trivial baseline, the "learned" flags, whether RPG is defined (and why not), RPG, the normalised
   gain, paired MMD² per layer, CKA, LogME and its target type, and the convergence ratios (the interpolated
   step ratio as ``convergence_ratio``; older files: their whole-epoch ratio).
2. :func:`average_points` averages seeds into one row per (task, model[, objective kind]) with the seed SD
   (for error bars) and counts the rows whose RPG is undefined: those rows are excluded from RPG.
3. :func:`model_correlation` correlates two columns per model first, then pooled with the model as a fixed
   effect (:func:`transferlimits.metrics.correlation.within_group_correlation`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from transferlimits.metrics.correlation import average_seeds, within_group_correlation
from transferlimits.models.registry import MODEL_REGISTRY
from transferlimits.study.schema import load_metrics
from transferlimits.study.schema_transfer import transfer_unit

__all__ = ["RESTORATION_KINDS", "objective_family", "objective_declaration", "load_profile_points", "point_rows",
           "average_points", "encoder_points", "model_correlation", "excluded_points", "layer_columns"]

#: Task kinds whose target is an image to restore (H1, H4: "restoration" tasks); the others are semantic.
RESTORATION_KINDS = ("regression",)
_NAN = float("nan")


def objective_family(model: str, objective: str) -> str | None:
    """The family (``reconstruction`` / ``contrastive`` / ``supervised``) the model's adapter declares for
    ``objective`` (``ObjectiveInfo``); None when the model is not registered in this process (import its module,
    e.g. a ``--model-module``, to classify it) or does not declare ``objective``."""
    adapter = MODEL_REGISTRY.get(model)
    if adapter is None or objective not in adapter.objectives:
        return None
    return adapter.objective_info(objective).family


def objective_declaration(model: str, objective: str) -> tuple[str, object] | None:
    """``(display name, ObjectiveInfo)`` the model's adapter declares for ``objective``; None when the model is not
    registered in this process or does not declare it (see :func:`objective_family`)."""
    adapter = MODEL_REGISTRY.get(model)
    if adapter is None or objective not in adapter.objectives:
        return None
    return adapter.display_name, adapter.objective_info(objective)


def load_profile_points(results_root: str | Path) -> list[dict]:
    """Every valid ``metrics.json`` under ``<results_root>/runs/*/``, sorted by folder name.

    Args:
        results_root: ``paths.results_dir(profile)``.

    Raises:
        ValueError: ``results_root`` is not a folder (named), or a metrics file fails validation.
    """
    root = Path(results_root)
    if not root.is_dir():
        raise ValueError(f"results_root {root} is not a folder: run the profile first")
    return [load_metrics(p) for p in sorted(root.glob("runs/*/metrics.json"))]


def _num(x: Any) -> float:
    if x is None or isinstance(x, bool):
        return _NAN
    try:
        v = float(x)
    except (TypeError, ValueError):
        return _NAN
    return v if math.isfinite(v) else _NAN


def _flag(x: Any) -> float:
    """True / False / unknown as 1.0 / 0.0 / NaN (so that seeds can be averaged into a fraction)."""
    return _NAN if x is None else float(bool(x))


def _rpg_defined(m: dict) -> tuple[bool, str | None]:
    if "rpg_defined" in m:
        return bool(m["rpg_defined"]), m.get("rpg_undefined_reason")
    ok = math.isfinite(_num(m.get("rpg_primary")))  # schema 1: defined where a finite value was written
    return ok, None if ok else "RPG not finite (schema 1 file)"


def _convergence(conv: dict) -> dict[str, Any]:
    """``convergence_ratio`` (the interpolated step ratio; an older file without one: its whole-epoch
    ``epochs_ratio``), its source, and whether the pretrained run started above its threshold (NaN: unknown)."""
    interpolated = "steps_ratio" in conv
    return {"convergence_ratio": _num(conv.get("steps_ratio" if interpolated else "epochs_ratio")),
            "convergence_source": "steps_interpolated" if interpolated else "epochs",
            "started_above": _flag((conv.get("started_above") or {}).get("pretrained"))}


def point_rows(points: Iterable[dict], layer: str = "embedding", fraction: str = "0.9",
               calibration: Mapping[tuple[str, str, int, str], dict] | None = None) -> pd.DataFrame:
    """One row per metrics dict.

    Args:
        points: metrics dicts (:func:`load_profile_points`).
        layer: the layer whose pooled MMD² / CKA are the ``mmd2`` / ``cka`` columns (default the embedding);
            every pooled layer also gets a ``mmd2__<layer>`` column.
        fraction: convergence fraction key (default ``"0.9"``).
        calibration: the pairs' calibration records by (task, model, seed, objective kind)
            (:func:`transferlimits.study.pair_index.load_indexed_calibration`); default none: ``mmd2_floor`` and
            ``mmd2_calibrated`` are NaN.

    Returns:
        DataFrame with columns task, kind, model, seed, objective (pre-training objective name),
        objective_kind (native / swapped), primary, higher_is_better, score_<init> for the three inits,
        baseline, baseline_name, learned_<init> (1 / 0 / NaN), rpg_defined (bool), rpg_reason, rpg
        (NaN where undefined), gain (normalised gain vs scratch), mmd2, mmd2_p (secondary: p-values sit at their
        floor), cka, cka_debiased, mmd2__<layer>..., the calibrated alignment of the embedding (STUDY §5.2, the
        primary alignment value; NaN where absent, e.g. older files): mmd2_calibrated, mmd2_floor, mmd2_ceiling
        (the multi-scale sums) and weight_change (relative, of the pretrained run's encoder), logme (NaN where
        null: a degenerate target), logme_unit (``case`` / ``patch``; ``case`` for files without the field, whose
        LogME is read as before), target_type, epochs_ratio, steps_ratio, seconds_ratio (pretrained / scratch time to ``fraction``; NaN
        where undefined or absent), convergence_ratio (steps_ratio; older files: epochs_ratio),
        convergence_source (``steps_interpolated`` / ``epochs``), started_above (the pretrained run's step-0 value
        already reached the threshold: 1 / 0 / NaN), restoration (bool), objective_family (the adapter's
        declaration, None for an unregistered model), reconstruction (bool: the family is ``reconstruction``).
    """
    rows = []
    calibration = calibration or {}
    for m in points:
        spec = m["task_spec"]
        primary = spec["primary_metric"]
        defined, reason = _rpg_defined(m)
        aligned = m["alignment"].get("pretrained") or {}
        pooled = aligned.get("pooled", {})
        cal = calibration.get((m["task"], m["model"], int(m["seed"]), m["objective"])) or {}
        entry = pooled.get(layer) or {}
        base = m.get("baseline_primary") or {}
        learned = m.get("learned") or {}
        trans = m.get("transferability") or {}
        conv = (m.get("convergence") or {}).get(fraction) or {}
        row = {
            "task": m["task"], "kind": spec["kind"], "model": m["model"], "seed": int(m["seed"]),
            "objective": m.get("objective_name", ""), "objective_kind": m["objective"], "primary": primary,
            "higher_is_better": bool(spec["higher_is_better"]),
            **{f"score_{i}": _num(run["test"].get(primary)) for i, run in m["runs"].items()},
            "baseline": _num(base.get("value")), "baseline_name": base.get("name"),
            **{f"learned_{i}": _flag((learned.get(i) or {}).get("beats_baseline")) for i in m["runs"]},
            "rpg_defined": defined, "rpg_reason": reason,
            "rpg": _num(m.get("rpg_primary")) if defined else _NAN,
            "gain": _num((m.get("normalised_gain") or {}).get("vs_scratch")),
            "mmd2": _num(entry.get("mmd2")), "mmd2_p": _num(entry.get("p_value")), "cka": _num(entry.get("cka")),
            "cka_debiased": _num(entry.get("cka_debiased")),
            "mmd2_calibrated": _num(cal.get("calibrated")), "mmd2_floor": _num(cal.get("floor")),
            "mmd2_ceiling": _num(cal.get("ceiling", (aligned.get("calibration") or {}).get("ceiling"))),
            "weight_change": _num(aligned.get("weight_change")),
            **{f"mmd2__{name}": _num(e.get("mmd2")) for name, e in pooled.items()},
            "logme": _num(trans.get("logme")), "logme_unit": transfer_unit(trans),
            "target_type": trans.get("target_type") or ("continuous" if trans.get("regression") else "class"),
            "epochs_ratio": _num(conv.get("epochs_ratio")),
            "steps_ratio": _num(conv.get("steps_ratio")), "seconds_ratio": _num(conv.get("seconds_ratio")),
            **_convergence(conv),
        }
        row["restoration"] = row["kind"] in RESTORATION_KINDS
        row["objective_family"] = objective_family(row["model"], row["objective"])
        row["reconstruction"] = row["objective_family"] == "reconstruction"
        rows.append(row)
    return pd.DataFrame(rows)


def excluded_points(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows whose RPG is undefined, with the reason (task, model, seed, objective_kind, rpg_reason)."""
    if rows.empty:
        return pd.DataFrame(columns=["task", "model", "seed", "objective_kind", "rpg_reason"])
    out = rows.loc[~rows["rpg_defined"].astype(bool), ["task", "model", "seed", "objective_kind", "rpg_reason"]]
    return out.reset_index(drop=True)


def average_points(rows: pd.DataFrame, by_objective: bool = False) -> pd.DataFrame:
    """One row per (task, model) — or (task, model, objective_kind) — averaged over seeds.

    RPG of a seed whose scratch run is not learned is NaN in ``rows`` and so drops out of the mean; the
    point keeps its other columns. ``n_excluded`` counts such seeds; ``rpg_n`` the seeds that remain. An
    alignment column (``mmd2...``: MMD², the calibrated alignment) is NaN unless more than half of the seeds have
    a value (``<col>_n`` still counts them): one seed of three whose calibration is defined is not the encoder's.

    Args:
        rows: :func:`point_rows`.
        by_objective: keep native and swapped objectives apart (default False: native rows only).

    Returns:
        DataFrame with the keys, kind, objective, restoration, reconstruction, target_type, logme_unit, ``n_seeds``,
        ``n_excluded`` and, for every numeric column ``c``, ``c`` (mean), ``c_sd`` (seed SD, NaN with one
        seed) and ``c_n``.
    """
    if rows.empty:
        return pd.DataFrame()
    df = rows if by_objective else rows[rows["objective_kind"] == "native"]
    keys = ["task", "model", "objective_kind"] if by_objective else ["task", "model"]
    values = [c for c in df.columns if c.startswith(("score_", "learned_", "mmd2", "rpg", "gain", "cka", "logme",
                                                      "epochs_ratio", "steps_ratio", "seconds_ratio",
                                                      "convergence_ratio", "started_above", "baseline",
                                                      "weight_change")) and
              c not in ("rpg_defined", "rpg_reason", "baseline_name") and pd.api.types.is_numeric_dtype(df[c])]
    out = average_seeds(df, keys, values)
    for c in (c for c in values if c.startswith("mmd2")):  # an alignment only where most seeds have one
        out.loc[2 * out[f"{c}_n"] <= out["n_seeds"], c] = _NAN
    labels = df.groupby(keys, sort=True).agg(
        kind=("kind", "first"), objective=("objective", "first"), restoration=("restoration", "first"),
        reconstruction=("reconstruction", "first"), target_type=("target_type", "first"), primary=("primary", "first"),
        logme_unit=("logme_unit", "first"),
        n_excluded=("rpg_defined", lambda s: int((~s.astype(bool)).sum()))).reset_index()
    return out.merge(labels, on=keys, how="left")


def encoder_points(rows: pd.DataFrame, kinds: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per encoder — (task, model, objective kind) — averaged over its seeds: the units of the within-task
    tests (H2 / H3 within task). Every objective kind present is an encoder (native, swapped, and any later kind:
    shorter pre-training, controls), unless ``kinds`` names the ones to keep.

    Args:
        rows: :func:`point_rows`. kinds: objective kinds to keep (default: all).

    Returns:
        :func:`average_points` with ``by_objective=True`` (``<col>``, ``<col>_sd``, ``<col>_n`` per column).
    """
    if rows.empty:
        return pd.DataFrame()
    sel = rows if kinds is None else rows[rows["objective_kind"].isin(list(kinds))]
    return average_points(sel, by_objective=True) if len(sel) else pd.DataFrame()


def model_correlation(points: pd.DataFrame, x: str, y: str, n_boot: int = 2000, n_perm: int = 2000,
                      seed: int = 0) -> dict:
    """Correlation of columns ``x`` and ``y`` across seed-averaged points: per model, then pooled with the
    model as a fixed effect.

    Args:
        points: :func:`average_points` (one row per point). x, y: column names.
        n_boot, n_perm: bootstrap / permutation sizes (default 2000). seed: RNG seed (default 0).

    Returns:
        :func:`~transferlimits.metrics.correlation.within_group_correlation`'s dict (``fe_r``, ``fe_ci``,
        ``fe_p_perm``, ``fe_rho``, ``per_group`` ...).

    Raises:
        ValueError: ``x`` or ``y`` is not a column (named).
    """
    for col in (x, y):
        if col not in points.columns:
            raise ValueError(f"column {col!r} is not in the points table (columns: {list(points.columns)})")
    return within_group_correlation(points[x].to_numpy(float), points[y].to_numpy(float),
                                    points["model"].to_numpy(), n_boot=n_boot, n_perm=n_perm, seed=seed)


def layer_columns(points: pd.DataFrame) -> Sequence[str]:
    """The ``mmd2__<layer>`` mean columns of a points table."""
    return [c for c in points.columns if c.startswith("mmd2__") and not c.endswith(("_sd", "_n"))]

