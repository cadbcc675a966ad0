"""The summary table of one task's chapter, built from every point of that task (all models, all seeds).

Rows: per model, the three initialisations (pretrained, scratch, linear probe) and the trivial baseline the
runs must beat; columns: the primary metric first, then the secondary metrics, each on the test split as
mean ± seed SD, then (restoration tasks) the same on the real exams — the external test that needs no
labels. Cells are text: an undefined value is "—" and the table's note says why, never a bare NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from transferlimits.models.registry import MODEL_REGISTRY

__all__ = ["INIT_LABELS", "cell", "task_summary"]

INIT_LABELS = {"pretrained": "pretrained, fine-tuned", "scratch": "scratch, fine-tuned",
               "linear_probe": "linear probe (frozen)"}
DASH = "—"


def _finite(values: Iterable) -> np.ndarray:
    out = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    return np.asarray(out, dtype=np.float64)


def cell(values: Sequence, digits: int = 3) -> str:
    """``"mean ± SD"`` over seeds (``"mean"`` with one value, ``"—"`` with none finite).

    Args:
        values: one score per seed (None / NaN entries are skipped). digits: decimals (default 3).
    """
    v = _finite(values)
    if v.size == 0:
        return DASH
    if v.size == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def _model_label(name: str) -> str:
    adapter = MODEL_REGISTRY.get(name)
    return adapter.display_name if adapter is not None else name


def task_summary(points: Sequence[dict], task: str, digits: int = 3) -> tuple[pd.DataFrame, dict]:
    """The chapter table of ``task`` from its native metrics dicts (every model and seed).

    Args:
        points: metrics dicts of the profile (other tasks and swapped runs are ignored).
        task: the task name. digits: decimals of the cells (default 3).

    Returns:
        ``(table, info)``: ``table`` has a (model, run) index and one text column per metric (``"real: m"``
        columns for the real exams); ``info`` = ``{"n_seeds": {model: n}, "primary": str, "metrics": [...],
        "baseline": {model: name}}``.

    Raises:
        ValueError: no native point of ``task`` in ``points`` (names the task).
    """
    mine = [m for m in points if m["task"] == task and m["objective"] == "native"]
    if not mine:
        raise ValueError(f"task {task!r}: no native points among {len(points)} metrics files")
    spec = mine[0]["task_spec"]
    primary = spec["primary_metric"]
    metrics = [primary] + [k for k in spec.get("metrics", []) if k != primary]
    real = any((run.get("extra") or {}).get("real") for m in mine for run in m["runs"].values())
    rows, info = [], {"n_seeds": {}, "primary": primary, "metrics": metrics, "baseline": {}}
    for model in sorted({m["model"] for m in mine}):
        runs = [m for m in mine if m["model"] == model]
        info["n_seeds"][model] = len(runs)
        label = _model_label(model)
        for init, init_label in INIT_LABELS.items():
            row = {"model": label, "run": init_label}
            for k in metrics:
                row[k] = cell([(m["runs"][init]["test"]).get(k) for m in runs], digits)
                if real:
                    row[f"real: {k}"] = cell([((m["runs"][init].get("extra") or {}).get("real") or {}).get(k)
                                              for m in runs], digits)
            rows.append(row)
        name = (runs[0].get("baseline_primary") or {}).get("name")
        if name:
            info["baseline"][model] = name
            row = {"model": label, "run": f"trivial baseline: {name.replace('_', ' ')}"}
            for k in metrics:
                row[k] = cell([((m.get("baselines") or {}).get(name) or {}).get(k) for m in runs], digits)
                if real:
                    row[f"real: {k}"] = DASH
            rows.append(row)
    table = pd.DataFrame(rows).set_index(["model", "run"])
    return table, info
