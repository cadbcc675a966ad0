"""The final chapter's scatter: one panel per model, seed-averaged points with seed-SD error bars, readable
labels, and the points whose RPG is undefined (scratch run not above its trivial baseline) marked apart."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from transferlimits.figures.palette import INIT_MARKERS, model_colour
from transferlimits.models.registry import MODEL_REGISTRY

__all__ = ["plot_alignment_by_model", "TASK_ABBREVIATIONS"]

#: Short labels of the study tasks (other tasks are labelled by their name).
TASK_ABBREVIATIONS = {"classification": "CLS", "segmentation": "SEG", "super_resolution": "SR",
                      "distortion_correction": "DC", "modality_translation": "MT"}


def _label_offsets(y: np.ndarray) -> list[tuple[int, int]]:
    """Label offsets (points) alternating right/left and up/down by rank of y, so neighbours do not collide."""
    order = np.argsort(np.argsort(np.nan_to_num(y)))
    return [((6 if r % 2 == 0 else -6), (5 if (r // 2) % 2 == 0 else -9)) for r in order]


def plot_alignment_by_model(points: pd.DataFrame, y: str = "rpg", ylabel: str = "RPG vs scratch (%)",
                            stats: dict | None = None) -> Figure:
    """MMD² (x) vs ``y`` per model, one panel each.

    Args:
        points: seed-averaged points (:func:`transferlimits.study.analysis.average_points`) with columns
            model, task, mmd2, mmd2_sd, ``y``, ``y``_sd, n_seeds, n_excluded.
        y: column on the y axis (default ``"rpg"``). ylabel: its axis label.
        stats: optional per-model correlation dicts ``{model: {"n", "pearson_r", "pearson_ci"}}`` for the titles.

    Returns:
        The matplotlib ``Figure``. Points whose ``y`` is undefined for every seed are drawn as grey crosses on
        the lower edge of the panel and labelled "(excluded)".

    Raises:
        ValueError: ``points`` lacks a needed column (named).
    """
    for col in ("model", "task", "mmd2", y):
        if col not in points.columns:
            raise ValueError(f"points has no column {col!r}")
    models = sorted(points["model"].unique()) or ["(none)"]
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 4.2), constrained_layout=True,
                             squeeze=False)
    for ax, model in zip(axes[0], models):
        sub = points[points["model"] == model]
        adapter = MODEL_REGISTRY.get(model)
        colour = model_colour(model)
        ok = np.isfinite(sub[y].to_numpy(float))
        good, bad = sub[ok], sub[~ok]
        xerr = good.get("mmd2_sd", pd.Series(np.nan, index=good.index)).fillna(0).to_numpy(float)
        yerr = good.get(f"{y}_sd", pd.Series(np.nan, index=good.index)).fillna(0).to_numpy(float)
        ax.errorbar(good["mmd2"], good[y], xerr=xerr, yerr=yerr, fmt=INIT_MARKERS["pretrained"], color=colour,
                    ecolor=colour,
                    elinewidth=1, capsize=3, ms=6, label="mean over seeds ± SD", zorder=3)
        for (_, row), off in zip(good.iterrows(), _label_offsets(good[y].to_numpy(float))):
            ax.annotate(TASK_ABBREVIATIONS.get(row["task"], row["task"]), (row["mmd2"], row[y]), fontsize=9,
                        xytext=off, textcoords="offset points", ha="left" if off[0] > 0 else "right")
        if len(bad):
            lo = float(np.nanmin(good[y])) if len(good) else 0.0
            ax.scatter(bad["mmd2"], np.full(len(bad), lo), marker="x", color="0.45", s=50, zorder=3,
                       label="RPG undefined (excluded)")
            for _, row in bad.iterrows():
                ax.annotate(f"{TASK_ABBREVIATIONS.get(row['task'], row['task'])} (excluded)", (row["mmd2"], lo),
                            fontsize=8, color="0.35", xytext=(4, -12), textcoords="offset points")
        ax.axhline(0 if y == "rpg" else 1, color="0.75", lw=0.8, zorder=1)
        ax.set_xlabel("MMD², pretrained vs fine-tuned (embedding)")
        ax.set_ylabel(ylabel)
        name = adapter.display_name if adapter is not None else model
        st = (stats or {}).get(model)
        if st and np.isfinite(st.get("pearson_r", np.nan)):
            title = f"{name}: n = {st['n']}, Pearson r = {st['pearson_r']:.2f}"
        else:
            title = name if not st else f"{name}: n = {st['n']}, r undefined (fewer than 3 points)"
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, loc="best")
    fig.text(0.5, -0.02, "CLS classification, SEG segmentation, SR super-resolution, DC distortion correction, "
             "MT modality translation", ha="center", fontsize=8)
    return fig
