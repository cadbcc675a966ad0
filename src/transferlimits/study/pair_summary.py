"""What one (task, model) pair's points show, seed by seed: the tables of the pair's notebook page.

Reads finished points' metrics dicts only (:func:`transferlimits.study.pair.run_pair` returns them):

* :func:`seed_scores` - one row per (objective, seed): the primary test score of every initialisation, the
  trivial baseline, the paired difference pretrained − scratch (signed so that positive = pre-training
  helped) and RPG;
* :func:`paired_gain` - per objective, the mean paired difference over seeds with its seed SD and a 95 %
  t-interval over seeds (seeds are the replicates; test cases are not pooled across seeds).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["INIT_ORDER", "seed_scores", "paired_gain"]

#: initialisations in the order every table and figure shows them
INIT_ORDER = ("pretrained", "scratch", "linear_probe")


def _num(value) -> float:
    return float("nan") if value is None else float(value)


def seed_scores(points: Sequence[dict]) -> pd.DataFrame:
    """One row per point: ``objective``, ``objective_name``, ``seed``, ``<init>`` primary test scores,
    ``baseline``, ``diff`` (sign × (pretrained − scratch); sign = −1 where lower is better), ``rpg``.

    Raises:
        ValueError: no points, or points of more than one (task, model) pair.
    """
    if not points:
        raise ValueError("no points: the pair has no finished metrics.json")
    pairs = {(m["task"], m["model"]) for m in points}
    if len(pairs) != 1:
        raise ValueError(f"points of one (task, model) pair expected, got {sorted(pairs)}")
    rows = []
    for m in points:
        spec = m["task_spec"]
        metric, sign = spec["primary_metric"], 1.0 if spec["higher_is_better"] else -1.0
        row = {"objective": m["objective"], "objective_name": m["objective_name"], "seed": int(m["seed"])}
        for init in INIT_ORDER:
            row[init] = _num(m["runs"].get(init, {}).get("test", {}).get(metric))
        row["baseline"] = _num((m.get("baseline_primary") or {}).get("value"))
        row["diff"] = sign * (row["pretrained"] - row["scratch"])
        row["rpg"] = _num(m.get("rpg_primary"))
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["objective", "seed"], kind="stable").reset_index(drop=True)


def paired_gain(table: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per objective: ``n`` seeds, ``mean`` and ``sd`` of the paired difference, its ``level`` t-interval over
    seeds (``ci_low``, ``ci_high``; None with fewer than two seeds) and the mean RPG over seeds where defined.

    Args:
        table: :func:`seed_scores`. level: confidence level (default 0.95).
    """
    rows = []
    for objective, grp in table.groupby("objective", sort=False):
        d = grp["diff"].to_numpy(float)
        d = d[np.isfinite(d)]
        n = len(d)
        mean = float(d.mean()) if n else math.nan
        sd = float(d.std(ddof=1)) if n > 1 else math.nan
        half = float(stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)) if n > 1 else math.nan
        rpg = grp["rpg"].to_numpy(float)
        rows.append({"objective": objective, "objective_name": grp["objective_name"].iloc[0], "n": n, "mean": mean,
                     "sd": sd, "ci_low": mean - half, "ci_high": mean + half,
                     "rpg_mean": float(np.nanmean(rpg)) if np.isfinite(rpg).any() else math.nan,
                     "rpg_n": int(np.isfinite(rpg).sum())})
    return pd.DataFrame(rows)
