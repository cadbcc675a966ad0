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

__all__ = ["INIT_ORDER", "seed_scores", "paired_gain", "findings_text", "case_gain_text"]

#: initialisations in the order every table and figure shows them
INIT_ORDER = ("pretrained", "scratch", "linear_probe", "ablated")


def _num(value) -> float:
    return float("nan") if value is None else float(value)


def seed_scores(points: Sequence[dict]) -> pd.DataFrame:
    """One row per point: ``objective``, ``objective_name``, ``seed``, ``<init>`` primary test scores,
    ``baseline``, ``sign`` (+1 where higher is better, −1 where lower is), ``diff`` (sign × (pretrained − scratch)),
    ``rpg``.

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
        row["sign"] = sign
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


def _fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if isinstance(x, (int, float)) and math.isfinite(x) else "undefined"


def case_gain_text(cases: pd.DataFrame | None, objective: str = "native") -> str:
    """The paired difference over seeds and test cases of one objective as the page prints it: ``"mean [95 % CI
    t over S seeds lo, hi; seed + case bootstrap lo, hi] (statistic, n cases per seed)"``, plus the mean per-seed
    DeLong SE for an AUROC; "undefined (reason)" where no seed has per-case records.

    Args:
        cases: :func:`transferlimits.study.pair_cases.case_differences` (None: undefined). objective: its row.
    """
    if cases is None or not (cases["objective"] == objective).any():
        return "undefined (no per-case records of this objective)"
    r = cases[cases["objective"] == objective].iloc[0]
    if not math.isfinite(r["mean"]):
        return f"undefined ({r['note'] or 'no per-case records'})"
    t = (f"t over {r['n_seeds']} seeds {_fmt(r['t_low'], 4)}, {_fmt(r['t_high'], 4)}" if r["n_seeds"] > 1
         else "one seed: no t-interval")
    text = (f"{_fmt(r['mean'], 4)} [95 % CI: {t}; seed + case bootstrap {_fmt(r['boot_low'], 4)}, "
            f"{_fmt(r['boot_high'], 4)}] ({r['statistic']}, {r['n_cases']} test cases per seed")
    if math.isfinite(r["delong_se"]):
        text += f"; DeLong SE of one seed's difference {_fmt(r['delong_se'], 4)}"
    return text + ")"


def findings_text(table: pd.DataFrame, gain: pd.DataFrame, model_label: str, metric: str,
                  cases: pd.DataFrame | None = None) -> str:
    """One paragraph of what a pair's points show (the task chapter opens with it): mean scores over seeds, how
    many seeds beat the trivial baseline, the paired difference with its interval and whether the interval
    excludes 0, and the swapped-objective control's difference where it ran.

    Args:
        table: :func:`seed_scores`. gain: :func:`paired_gain`. model_label: e.g. ``"ProFound"``. metric: the
            primary metric's name. cases: :func:`transferlimits.study.pair_cases.case_differences` (None: the
            sentence on the difference over seeds and test cases is left out).
    """
    nat = table[table["objective"] == "native"]
    n = len(nat)
    base = float(np.nanmean(nat["baseline"])) if np.isfinite(nat["baseline"]).any() else math.nan
    above = {init: int(((nat[init] - nat["baseline"]) * nat["sign"]).gt(0).sum()) for init in ("pretrained", "scratch")}
    g = gain.set_index("objective")
    row = g.loc["native"]
    if n > 1 and math.isfinite(row["ci_low"]):
        verdict = ("the interval excludes 0" if row["ci_low"] > 0 or row["ci_high"] < 0
                   else "the interval includes 0: pre-training made no difference these seeds can resolve")
        diff = f"{_fmt(row['mean'], 4)} [95 % CI {_fmt(row['ci_low'], 4)}, {_fmt(row['ci_high'], 4)}]; {verdict}"
    else:
        diff = f"{_fmt(row['mean'], 4)} (one seed: no interval)"
    text = (f"{model_label}, {metric} over {n} seed(s): pretrained {_fmt(float(np.nanmean(nat['pretrained'])))}, "
            f"scratch {_fmt(float(np.nanmean(nat['scratch'])))}, linear probe "
            f"{_fmt(float(np.nanmean(nat['linear_probe'])) if np.isfinite(nat['linear_probe']).any() else math.nan)}"
            f" against a trivial baseline of {_fmt(base)} (beaten by pretrained in {above['pretrained']} and by "
            f"scratch in {above['scratch']} of {n} seeds). Pretrained − scratch (positive = pre-training helped): "
            f"{diff}.")
    if cases is not None:
        text += f" Paired by seed and test case: {case_gain_text(cases)}."
    if "swapped" in g.index:
        sw = g.loc["swapped"]
        text += (f" With the swapped objective ({sw['objective_name']}) the difference is {_fmt(sw['mean'], 4)}"
                 + (f" [95 % CI {_fmt(sw['ci_low'], 4)}, {_fmt(sw['ci_high'], 4)}]." if sw["n"] > 1 else "."))
    for objective in [o for o in g.index if o not in ("native", "swapped")]:  # encoder controls, shorter runs
        c = g.loc[objective]
        text += (f" Point kind {objective} ({c['objective_name']}): pretrained − scratch {_fmt(c['mean'], 4)}"
                 + (f" [95 % CI {_fmt(c['ci_low'], 4)}, {_fmt(c['ci_high'], 4)}]." if c["n"] > 1 else "."))
    return text
