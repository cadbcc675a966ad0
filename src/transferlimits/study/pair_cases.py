"""Paired pretrained − scratch differences of one (task, model) pair over seeds AND test cases.

The pair page's seed table (:mod:`transferlimits.study.pair_summary`) pairs runs by seed only. Here each seed's
two runs are also paired by test case (the same cases, read from the runs' ``per_case`` records by ``case_id``),
and the seed is the cluster: :func:`case_differences` per objective gives

* for a mean-type primary metric (PSNR, Dice, MAE, …): the mean over cases of the case-level difference per seed,
  then a t-interval over seeds (:func:`transferlimits.metrics.paired.seed_t_interval`, the headline) and a
  two-stage seed + case bootstrap beside it (:func:`~transferlimits.metrics.paired.cluster_bootstrap`);
* for an AUROC (not a mean of case scores): the AUROC difference on the same cases per seed, the same two
  intervals, and per seed the paired DeLong standard error (the case-level uncertainty of one seed).

Signs are flipped where lower is better (positive = pre-training helped). A point without ``per_case`` records
(older files), or whose runs do not share their cases, leaves its seed out and says so in ``note``.
:func:`linear_reference` reads the closed-form linear reference of a task (``linear_references.json``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from transferlimits.metrics.paired import auroc, cluster_bootstrap, delong_paired, mean_difference, seed_t_interval

__all__ = ["AUROC_SPLITS", "case_arrays", "case_differences", "linear_reference"]

#: AUROC metrics of the classification kind -> the first class counted positive (``metrics.tasks``).
AUROC_SPLITS = {"auroc_ge4": 2, "auroc_ge3": 1}


def _records(run: dict) -> dict[str, dict]:
    return {str(r["case_id"]): r for r in (run.get("per_case") or []) if "case_id" in r}


def _case_value(rec: dict, metric: str) -> float:
    if metric in AUROC_SPLITS:
        return float(sum(rec["probs"][AUROC_SPLITS[metric]:]))
    v = rec.get(metric)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def case_arrays(point: dict, init_a: str = "pretrained", init_b: str = "scratch") -> tuple | None:
    """Case-aligned arrays of one point: ``(a, b)`` of the primary metric per case (cases finite in both), or
    ``(labels, a, b)`` with binary labels and scores for an AUROC metric; None when the point has no per-case
    records for both runs or they share no case.

    Args:
        point: a metrics dict. init_a, init_b: the two runs (default pretrained, scratch).
    """
    spec = point["task_spec"]
    metric = spec["primary_metric"]
    ra, rb = (_records((point.get("runs") or {}).get(i) or {}) for i in (init_a, init_b))
    ids = [c for c in ra if c in rb]
    if not ids:
        return None
    a = np.asarray([_case_value(ra[c], metric) for c in ids])
    b = np.asarray([_case_value(rb[c], metric) for c in ids])
    if metric in AUROC_SPLITS:
        labels = np.asarray([int(ra[c]["label"]) >= AUROC_SPLITS[metric] for c in ids])
        return labels, a, b
    keep = np.isfinite(a) & np.isfinite(b)
    return (a[keep], b[keep]) if keep.any() else None


def _auroc_diff(labels: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return auroc(labels, a) - auroc(labels, b)


def case_differences(points: Sequence[dict], n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per objective, the paired pretrained − scratch difference over seeds and test cases.

    Args:
        points: metrics dicts of one (task, model) pair (every objective kind: native, swapped, controls).
        n_boot: draws of the two-stage bootstrap. level: confidence level. seed: the bootstrap's seed.

    Returns:
        One row per objective (in first-seen order): ``objective``, ``objective_name``, ``statistic`` (what a
        seed contributes), ``n_seeds``, ``n_cases`` (cases per seed, min–max as text), ``mean``, ``sd`` (over
        seeds), ``t_low``, ``t_high`` (t-interval over seeds), ``boot_low``, ``boot_high`` (seed + case
        bootstrap), ``delong_se`` (mean over seeds of the per-seed DeLong SE; AUROC only, else NaN), ``note``.

    Raises:
        ValueError: no points.
    """
    if not points:
        raise ValueError("points: no metrics dicts given")
    rows = []
    for objective in dict.fromkeys(m["objective"] for m in points):
        mine = sorted((m for m in points if m["objective"] == objective), key=lambda m: int(m["seed"]))
        spec = mine[0]["task_spec"]
        metric, sign = spec["primary_metric"], 1.0 if spec["higher_is_better"] else -1.0
        is_auroc = metric in AUROC_SPLITS
        clusters, missing, per_seed, ses = [], [], [], []
        for m in mine:
            arrays = case_arrays(m)
            if arrays is None:
                missing.append(int(m["seed"]))
                continue
            if not is_auroc:  # sign folded into the case values: positive = pre-training helped
                arrays = (sign * arrays[0], sign * arrays[1])
            clusters.append(arrays)
            per_seed.append(_auroc_diff(*arrays) if is_auroc else mean_difference(*arrays))
            if is_auroc:
                ses.append(delong_paired(*arrays, level=level)["se"])
        t = seed_t_interval(per_seed, level)
        boot = (cluster_bootstrap(clusters, _auroc_diff if is_auroc else mean_difference, n_boot, level, seed)
                if clusters else {"ci_low": math.nan, "ci_high": math.nan})
        sizes = [len(c[0]) for c in clusters]
        note = f"seed(s) {missing} without per-case records for both runs" if missing else ""
        rows.append({"objective": objective, "objective_name": mine[0].get("objective_name", objective),
                     "statistic": ("AUROC difference on the same cases" if is_auroc
                                   else "mean case-level difference"), "metric": metric,
                     "n_seeds": t["n_seeds"], "n_cases": (f"{min(sizes)}–{max(sizes)}" if sizes and min(sizes) != max(sizes)
                                                          else str(sizes[0]) if sizes else "0"),
                     "mean": t["mean"], "sd": t["sd"], "t_low": t["ci_low"], "t_high": t["ci_high"],
                     "boot_low": boot["ci_low"], "boot_high": boot["ci_high"],
                     "delong_se": float(np.mean(ses)) if ses else math.nan, "note": note})
    return pd.DataFrame(rows)


def linear_reference(results_root: str | Path, task: str) -> dict | None:
    """The closed-form linear reference of ``task`` from ``<results_root>/linear_references.json``
    (``benchmarks/linear_references.py``): ``{"metric", "value", "baseline", "model"}``, or None where the file
    or the task is absent (classification has none)."""
    path = Path(results_root) / "linear_references.json"
    if not path.is_file():
        return None
    entry = (json.loads(path.read_text()).get("tasks") or {}).get(task)
    if not entry:
        return None
    value = entry.get("linear_filter", entry.get("logistic_voxel"))
    if not isinstance(value, (int, float)):
        return None
    return {"metric": entry.get("metric"), "value": float(value), "model": entry.get("model", ""),
            "baseline": entry.get("identity", entry.get("empty_mask"))}
