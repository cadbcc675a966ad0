"""The seed spread of one (task, model) pair: every seed's primary test score per initialisation and objective,
against the trivial baseline (the pair notebook's first figure)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from transferlimits.figures.palette import INIT_MARKERS, INIT_LABELS, model_colour
from transferlimits.study.pair_summary import INIT_ORDER

__all__ = ["plot_seed_scores"]



def plot_seed_scores(table: pd.DataFrame, metric: str, model: str):
    """Dots = seeds, bar = mean over seeds with its seed SD; one column per initialisation (marker =
    initialisation, colour = model: the book's palette), native and swapped side by side (filled = native
    objective, open = swapped); the dashed line is the trivial baseline of the test split; a column without a
    finite score says "undefined".

    Args:
        table: :func:`transferlimits.study.pair_summary.seed_scores`. metric: the primary metric's name (y label).
        model: the registered model (its colour).
    """
    color = model_colour(model)
    objectives = list(dict.fromkeys(table["objective"]))
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    width = 0.8 / max(1, len(objectives))
    for i, init in enumerate(INIT_ORDER):
        for j, objective in enumerate(objectives):
            grp = table[table["objective"] == objective]
            vals = grp[init].to_numpy(float)
            x = i - 0.4 + width * (j + 0.5)
            finite = vals[np.isfinite(vals)]
            face = color if objective == "native" else "none"
            jitter = np.linspace(-width / 4, width / 4, len(vals)) if len(vals) > 1 else np.zeros(len(vals))
            ax.scatter(x + jitter, vals, marker=INIT_MARKERS[init], facecolor=face, edgecolor=color, zorder=3,
                       label=f"{grp['objective_name'].iloc[0]} ({objective})" if i == 0 else None)
            if len(finite):
                ax.hlines(finite.mean(), x - width / 2.5, x + width / 2.5, color=color, lw=2, zorder=2)
                if len(finite) > 1:
                    ax.errorbar(x, finite.mean(), yerr=finite.std(ddof=1), color=color, capsize=3, lw=1, zorder=2)
            if len(vals) and not len(finite):
                ax.text(x, 0.5, "undefined", rotation=90, ha="center", va="center", transform=ax.get_xaxis_transform())
    base = table["baseline"].to_numpy(float)
    if np.isfinite(base).any():
        ax.axhline(float(np.nanmean(base)), color="0.4", ls="--", lw=1, label="trivial baseline")
    ax.set_xticks(range(len(INIT_ORDER)), [INIT_LABELS[i] for i in INIT_ORDER])
    ax.set_ylabel(f"test {metric}")
    ax.legend(fontsize=8, frameon=False, loc="best")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
