"""H2 and H3 on their true units: within task, encoders as units, task × model as fixed effects (STUDY §5.1).

The design puts several encoders in each (task, model) group (native and swapped objectives, shorter
pre-training, the controls), each fine-tuned with several seeds. The within-task test of H2 (alignment vs gain)
and H3 (alignment vs convergence) then uses

* **units**: encoders, their seeds averaged first (:func:`transferlimits.study.analysis.encoder_points`), never
  seeds pooled as points;
* **statistic**: the fixed-effect correlation r_FE given the task × model groups (partial correlation after
  removing group means, :mod:`transferlimits.metrics.fixed_effects`) — the task's difficulty cannot
  masquerade as alignment;
* **test / CI**: permutation of x among the encoders of each group (exact where enumerable), Fisher-z interval
  with df = n − G − 1;
* **MDE**: :func:`transferlimits.metrics.mde.fisher_mde` with the seed-noise reliability measured on the table.

The across-task view (one point per task × model, model fixed effect: the paper's) is computed by the same
function with groups = model and stays beside the within-task one (:func:`h2_h3_views`).

The x column is a parameter: :func:`alignment_column` prefers the calibrated alignment ``mmd2_calibrated`` and
falls back to the embedding MMD² ``mmd2``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from transferlimits.metrics.fixed_effects import fixed_effect_test
from transferlimits.metrics.mde import seed_reliability
from transferlimits.study.verdict_rules import Estimate, Verdict, make_verdict, undefined

__all__ = ["ALIGNMENT_COLUMNS", "WITHIN", "ACROSS", "alignment_column", "fixed_effect_estimate", "h2_h3_views",
           "estimate_text"]

#: Alignment columns in order of preference (the calibrated alignment first).
ALIGNMENT_COLUMNS = ("mmd2_calibrated", "mmd2")
#: Group columns of the within-task and the across-task view.
WITHIN, ACROSS = ("task", "model"), ("model",)
_Y = {"H2": ("rpg", -1, "RPG"), "H3": ("epochs_ratio", 1, "epochs-to-90 % ratio")}


def alignment_column(table: pd.DataFrame, preferred: Sequence[str] = ALIGNMENT_COLUMNS) -> str:
    """The first of ``preferred`` that is a column of ``table`` with a finite value (default: calibrated, then MMD²).

    Raises:
        ValueError: none of ``preferred`` has a finite value (names them).
    """
    for col in preferred:
        if col in table.columns and np.isfinite(pd.to_numeric(table[col], errors="coerce").to_numpy(float)).any():
            return col
    raise ValueError(f"no alignment column with a finite value among {list(preferred)}")


def _groups(table: pd.DataFrame, by: Sequence[str]) -> np.ndarray:
    missing = [c for c in by if c not in table.columns]
    if missing:
        raise ValueError(f"group columns {missing} are not in the table")
    return table[list(by)].astype(str).agg(" × ".join, axis=1).to_numpy()


def _reliability(table: pd.DataFrame, col: str, groups: np.ndarray) -> float:
    if not {f"{col}_sd", f"{col}_n"} <= set(table.columns):
        return float("nan")
    return seed_reliability(table[col], table[f"{col}_sd"], table[f"{col}_n"], groups)


def fixed_effect_estimate(table: pd.DataFrame, x: str, y: str, by: Sequence[str] = WITHIN, n_perm: int = 2000,
                          seed: int = 0, units_name: str = "encoders") -> Estimate:
    """r_FE of columns ``x`` and ``y`` given the groups ``by``, as an :class:`Estimate` for the verdict rule.

    Args:
        table: one row per unit, seeds averaged (``encoder_points`` within task, ``average_points`` across).
        x, y: column names. by: group columns (default task × model). n_perm: Monte Carlo permutations where
            exact enumeration is too large. seed: RNG seed. units_name: what a unit is, for the text.

    Returns:
        Estimate with the Fisher-z CI, the within-group permutation p, n units, G groups, the test and CI
        method, and the seed-noise reliability rel_x·rel_y (1.0 where the table has no seed SDs).

    Raises:
        ValueError: ``x`` or ``y`` is not a column (named).
    """
    for col in (x, y):
        if col not in table.columns:
            raise ValueError(f"column {col!r} is not in the table (columns: {list(table.columns)})")
    if table.empty:
        return undefined(0)
    groups = _groups(table, by)
    xa, ya = table[x].to_numpy(float), table[y].to_numpy(float)
    t = fixed_effect_test(xa, ya, groups, n_perm=n_perm, seed=seed)
    keep = np.isfinite(xa) & np.isfinite(ya)
    rel = [_reliability(table[keep], c, groups[keep]) for c in (x, y)]
    reliability = float(np.prod([r for r in rel if math.isfinite(r)])) if any(map(math.isfinite, rel)) else 1.0
    test = t["p_method"].replace("within groups", "within " + " × ".join(by))
    return Estimate(t["r"], t["ci"], t["p"], t["n"], n_groups=t["n_groups"], test=test,
                    units_name=units_name, ci_method=t["ci_method"], reliability=reliability)


def estimate_text(e: Estimate, units_name: str) -> str:
    """``r = −0.31 [−0.70, +0.22], p = 0.21, 18 encoders in 9 groups`` (undefined: says so)."""
    if not math.isfinite(e.estimate):
        return f"undefined ({e.n} {units_name})"
    ci = (f"[{e.ci[0]:+.2f}, {e.ci[1]:+.2f}]" if all(math.isfinite(c) for c in e.ci) else "[no CI]")
    p = f"{e.p:.3f}" if math.isfinite(e.p) else "—"
    return f"r = {e.estimate:+.2f} {ci}, p = {p}, {e.n} {units_name} in {e.n_groups} groups".replace("-", "−")


def h2_h3_views(h: str, points: pd.DataFrame, encoders: pd.DataFrame | None, x: str | None = None,
                y: str | None = None, n_perm: int = 2000, seed: int = 0) -> Verdict:
    """H2 or H3: the within-task test where the encoders allow it, the across-task view beside it (the note).

    The verdict is the within-task r_FE (encoders, task × model groups) when that has a CI (n − G − 2 ≥ 1);
    otherwise (e.g. one encoder per group) it is the across-task r_FE (seed-averaged (task, model) points, model
    groups), and the note says why.

    Args:
        h: "H2" or "H3". points: :func:`~transferlimits.study.analysis.average_points` (native, one row per task ×
            model). encoders: :func:`~transferlimits.study.analysis.encoder_points` or None. x: alignment column
            (default :func:`alignment_column` of the table used). y: outcome column (default ``rpg`` for H2,
            ``epochs_ratio`` for H3; e.g. ``gain`` for the normalised gain). n_perm, seed: permutation settings.

    Raises:
        ValueError: ``h`` is not "H2" or "H3".
    """
    if h not in _Y:
        raise ValueError(f"h must be 'H2' or 'H3', got {h!r}")
    y_col, sign, y_name = _Y[h]
    y_col = y or y_col
    y_name = y_name if y_col == _Y[h][0] else y_col
    within = None
    if encoders is not None and len(encoders) and y_col in encoders.columns:
        xw = x or alignment_column(encoders)
        within = fixed_effect_estimate(encoders, xw, y_col, WITHIN, n_perm, seed, "encoders")
    if len(points) and y_col in points.columns:
        xa = x or alignment_column(points)
        across = fixed_effect_estimate(points, xa, y_col, ACROSS, n_perm, seed, "points")
    else:
        xa, across = x or "mmd2", undefined(0)
    across_text = f"across tasks (one point per task × model, model fixed effect): {estimate_text(across, 'points')}"
    if within is not None and all(math.isfinite(c) for c in within.ci):
        return make_verdict(h, f"r({xw}, {y_name}) within task, task × model fixed effect", sign, within,
                            f"within task: encoders (seeds averaged) as units; {across_text}")
    why = ("no encoder table" if within is None else
           f"within task undefined ({within.n} encoders in {within.n_groups} groups: n − G − 2 < 1)")
    return make_verdict(h, f"r({xa}, {y_name}), model fixed effect (across tasks)", sign, across,
                        f"across tasks: {why}")
