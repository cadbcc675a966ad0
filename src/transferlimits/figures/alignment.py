"""Tables and plots of the final chapter (alignment vs performance) and of the 2x2 control.

Everything here reads ``metrics.json`` dicts (see :mod:`transferlimits.study`); nothing trains.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from transferlimits.models.adapters import PROFOUND, PROVICNET
from transferlimits.figures.palette import draw_undefined, model_colour, model_label, objective_style
from transferlimits.metrics.stats import correlate
from transferlimits.study import load_metrics
from transferlimits.study.sensitivity import headline_sensitivity

__all__ = [
    "PAPER_RPG",
    "load_points",
    "point_table",
    "sensitivity_table",
    "predictor_table",
    "correlation_row",
    "plot_alignment",
    "control_table",
    "plot_control",
]

#: RPG (%) the paper reports, as recovered from a secondary AI-written summary (ownyourai), NOT from the
#: paper's own tables: treat them as indicative.
PAPER_RPG = pd.DataFrame(
    [
        (PROFOUND.name, "distortion_correction", 20.72),
        (PROFOUND.name, "super_resolution", 15.91),
        (PROVICNET.name, "segmentation", 21.23),
        (PROVICNET.name, "classification", 8.99),
    ],
    columns=["model", "task", "rpg_paper"],
).assign(source="secondary AI-written summary (ownyourai), not the paper's tables")

_NAN = float("nan")


def load_points(results_root: str | Path, objective: str = "native") -> list[dict]:
    """All valid ``metrics.json`` under ``<results_root>/runs`` of one objective kind, sorted by folder.

    Args:
        results_root: ``paths.results_dir(profile)``.
        objective: ``"native"`` or ``"swapped"`` (default ``"native"``).
    """

    if objective not in ("native", "swapped"):
        raise ValueError(f"objective must be 'native' or 'swapped', got {objective!r}")
    out = []
    for path in sorted(Path(results_root).glob("runs/*/metrics.json")):
        m = load_metrics(path)
        if m["objective"] == objective:
            out.append(m)
    return out


def _num(x: Any) -> float:
    try:
        return float(x) if x is not None else _NAN
    except (TypeError, ValueError):
        return _NAN


def _probe(trans: dict) -> float:
    lp = trans.get("linear_probe") or {}
    for key in ("auroc", "r2", "accuracy"):
        if key in lp:
            return _num(lp[key])
    return _NAN


def point_table(
    points: Iterable[dict],
    init: str = "pretrained",
    pooling: str = "pooled",
    layer: str = "embedding",
    multiplier: str | None = None,
    fraction: str = "0.9",
) -> pd.DataFrame:
    """One row per point: label, task, model, seed, rpg, mmd2, cka, epochs_ratio, logme, linear_probe.

    Args:
        points: metrics dicts.
        init: ``"pretrained"`` or ``"scratch"`` alignment (default ``"pretrained"``).
        pooling: ``"pooled"`` (per image) or ``"tokens"`` (token/voxel samples) (default ``"pooled"``).
        layer: layer name (default ``"embedding"``, the encoder's pooled output).
        multiplier: bandwidth multiplier key of ``mmd2_multi`` (e.g. ``"2.0"``); None = median bandwidth.
        fraction: convergence fraction key (default ``"0.9"``).
    """
    if pooling not in ("pooled", "tokens"):
        raise ValueError(f"pooling must be 'pooled' or 'tokens', got {pooling!r}")
    rows = []
    for m in points:
        entry = (m["alignment"].get(init) or {}).get(pooling, {}).get(layer) or {}
        mmd2 = entry.get("mmd2") if multiplier is None else (entry.get("mmd2_multi") or {}).get(multiplier)
        conv = m.get("convergence", {}).get(fraction, {})
        rows.append({
            "label": f"{m['task']}/{m['model']}/s{m['seed']}", "task": m["task"], "model": m["model"],
            "seed": int(m["seed"]), "objective": m.get("objective_name", ""), "rpg": _num(m.get("rpg_primary")),
            "mmd2": _num(mmd2), "cka": _num(entry.get("cka")), "epochs_ratio": _num(conv.get("epochs_ratio")),
            "logme": _num(m.get("transferability", {}).get("logme")),
            "linear_probe": _probe(m.get("transferability", {})),
        })
    return pd.DataFrame(rows, columns=["label", "task", "model", "seed", "objective", "rpg", "mmd2", "cka",
                                       "epochs_ratio", "logme", "linear_probe"])


def correlation_row(x: Sequence[float], y: Sequence[float], n_perm: int = 200, n_boot: int = 200) -> dict:
    """``correlate`` reduced to the columns the book shows: n, r, r CI, p, rho, rho CI, p, max LOO change."""

    c = correlate(np.asarray(x, float), np.asarray(y, float), n_boot=n_boot, n_perm=n_perm)
    return {
        "n": int(c["n"]), "pearson_r": c["pearson_r"], "pearson_ci": tuple(np.round(c["pearson_ci"], 3)),
        "pearson_p": c["pearson_p_perm"], "spearman_rho": c["spearman_rho"],
        "spearman_ci": tuple(np.round(c["spearman_ci"], 3)), "spearman_p": c["spearman_p_perm"],
        "max_loo_change": c["max_loo_change"],
    }


def sensitivity_table(points: Sequence[dict], y: str = "rpg", n_perm: int = 1000, view: str = "auto",
                      calibration: Mapping[tuple[str, str, int, str], dict] | None = None) -> pd.DataFrame:
    """The headline statistic (H2's fixed-effect r, or H3's with ``y="epochs_ratio"``) under every analysis choice:
    calibration, bandwidth, layer, pooling and gain definition
    (:func:`transferlimits.study.sensitivity.headline_sensitivity`).

    Args:
        points: metrics dicts of every objective kind (the encoders of the within-task view).
        y: ``"rpg"``, ``"gain"`` or ``"epochs_ratio"`` (default ``"rpg"``). n_perm: permutations (default 1000).
        view: ``"auto"`` (as the verdict), ``"within"`` or ``"across"``.
        calibration: the pairs' calibration records, as the verdicts read them (then the baseline row is the
            calibrated alignment).
    """
    return headline_sensitivity(points, y, view, n_perm, calibration=calibration)


def predictor_table(df: pd.DataFrame, n_perm: int = 200, n_boot: int = 200) -> pd.DataFrame:
    """Pre-hoc (LogME, linear probe: frozen features) vs post-hoc (MMD², CKA) predictors of RPG."""
    rows = []
    for col, when in (("logme", "pre-hoc"), ("linear_probe", "pre-hoc"), ("mmd2", "post-hoc"), ("cka", "post-hoc")):
        rows.append({"predictor": col, "when": when, **correlation_row(df[col], df["rpg"], n_perm, n_boot)})
    return pd.DataFrame(rows)


def _scatter(ax, df: pd.DataFrame, x: str, y: str, xlabel: str, ylabel: str) -> None:

    for model, sub in df.groupby("model"):
        color = model_colour(model)  # a model registered only in its run's process is grey here
        ax.scatter(sub[x], sub[y], s=36, color=color, label=model, zorder=3)
    for _, row in df.iterrows():
        if np.isfinite(row[x]) and np.isfinite(row[y]):
            ax.annotate(row["label"], (row[x], row[y]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.axhline(0 if y == "rpg" else 1, color="0.7", lw=0.8, zorder=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)


def plot_alignment(df: pd.DataFrame, stats_rpg: dict | None = None, stats_conv: dict | None = None):
    """Two panels: MMD² vs RPG and MMD² vs convergence ratio, every point labelled task/model/seed.

    Returns:
        The matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    _scatter(axes[0], df, "mmd2", "rpg", "MMD² (pretrained vs fine-tuned, embedding)", "RPG vs scratch (%)")
    _scatter(axes[1], df, "mmd2", "epochs_ratio", "MMD² (pretrained vs fine-tuned, embedding)",
             "epochs to 90 % (pretrained / scratch)")
    for ax, st in zip(axes, (stats_rpg, stats_conv)):
        if st:
            ax.set_title(f"n={st['n']}, Pearson r={st['pearson_r']:.2f} (p={st['pearson_p']:.2f}), "
                         f"Spearman ρ={st['spearman_rho']:.2f}", fontsize=9)
    return fig


def control_table(native: Sequence[dict], swapped: Sequence[dict]) -> pd.DataFrame:
    """The 2x2 objective x architecture control: RPG and MMD² per (task, model, objective kind)."""
    df = pd.concat([point_table(native).assign(kind="native"), point_table(swapped).assign(kind="swapped")])
    tasks = set(point_table(swapped)["task"])
    return df[df["task"].isin(tasks)].sort_values(["task", "model", "kind"]).reset_index(drop=True)


def plot_control(table: pd.DataFrame):
    """Bars of RPG per task for the four (architecture, objective) pairs: mean over the seeds whose RPG is defined
    with the seed SD as error bar; colour = backbone, hatching = objective family (palette); a pair whose RPG is
    undefined in every seed is a hatched "n/a" box, never a bar at 0."""
    import matplotlib.pyplot as plt


    tasks = sorted(table["task"].unique())
    pairs = list(table.groupby(["model", "objective"]).groups)
    fig, ax = plt.subplots(figsize=(max(5, 2.4 * len(tasks)), 3.6), constrained_layout=True)
    width = 0.8 / max(1, len(pairs))
    finite = table["rpg"].to_numpy(float)
    finite = finite[np.isfinite(finite)]
    span = float(np.ptp(finite)) if finite.size else 1.0
    for i, (model, obj) in enumerate(pairs):
        sub = table[(table["model"] == model) & (table["objective"] == obj)].groupby("task")["rpg"]
        mean, sd = sub.mean(), sub.std(ddof=1)
        xs = np.arange(len(tasks)) + i * width
        ys = np.array([mean.get(t, np.nan) for t in tasks], float)
        err = np.nan_to_num(np.array([sd.get(t, np.nan) for t in tasks], float))
        ok = np.isfinite(ys)
        ax.bar(xs[ok], ys[ok], width, yerr=err[ok], capsize=2, color=model_colour(model), edgecolor="white",
               hatch=objective_style(obj)["hatch"], label=f"{model_label(model)} + {obj}", zorder=2)
        for x in xs[~ok]:
            draw_undefined(ax, x, width, height=max(span, 1e-9) * 0.3, bottom=0.0)
    ax.set_xticks(np.arange(len(tasks)) + width * (len(pairs) - 1) / 2, [t.replace("_", " ") for t in tasks])
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_ylabel("RPG vs scratch (%), mean ± seed SD")
    ax.legend(fontsize=8)
    return fig


def paper_beside(rows: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """The paper's four RPG numbers (:data:`PAPER_RPG`, a secondary source) beside this run's, with units and CIs.

    Args:
        rows: :func:`transferlimits.study.analysis.point_rows` (one row per seed; native rows are used).
        level: confidence level of the t interval over seeds (default 0.95).

    Returns:
        Text DataFrame: model, task, paper RPG (%), this run's mean RPG (%) over the seeds whose RPG is defined,
        its t interval over those seeds (n − 1 degrees of freedom; "—" with fewer than 2 seeds), seeds used of
        seeds run. An undefined value is "—" with the reason, never 0.
    """
    from scipy import stats as sps


    native = rows[rows["objective_kind"] == "native"] if len(rows) else rows
    out = []
    for _, ref in PAPER_RPG.iterrows():
        sel = native[(native["model"] == ref["model"]) & (native["task"] == ref["task"])] if len(native) else native
        vals = sel["rpg"].to_numpy(float) if len(sel) else np.array([])
        vals = vals[np.isfinite(vals)]
        if vals.size == 0:
            mean, ci = "— (RPG undefined: scratch not above its baseline)" if len(sel) else "— (not run)", "—"
        else:
            mean = f"{vals.mean():+.2f} %".replace("-", "−")
            if vals.size >= 2:
                half = sps.t.ppf((1 + level) / 2, vals.size - 1) * vals.std(ddof=1) / math.sqrt(vals.size)
                ci = f"[{vals.mean() - half:+.2f}, {vals.mean() + half:+.2f}] %".replace("-", "−")
            else:
                ci = "— (one seed)"
        out.append({"model": model_label(ref["model"]), "task": ref["task"].replace("_", " "),
                    "paper (secondary summary)": f"{ref['rpg_paper']:+.2f} %",
                    "this run, mean": mean, f"{level:.0%} CI over seeds".replace("%", " %"): ci,
                    "seeds used": f"{vals.size} of {len(sel)}"})
    return pd.DataFrame(out)
