"""The seed spread of one (task, model) pair: every seed's primary test score of every initialisation (controls
included) against the trivial baseline and the closed-form linear reference, and beside it the paired
pretrained − scratch differences with their intervals over seeds and test cases (the pair notebook's first
figure)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from transferlimits.figures.palette import INIT_MARKERS, draw_undefined, model_colour, objective_style
from transferlimits.study.pair_summary import INIT_ORDER

__all__ = ["KIND_ORDER", "plot_seed_scores", "seed_series", "plot_case_differences"]

#: point kinds in the order the columns show them (then any other, as first seen)
KIND_ORDER = ("native", "swapped", "native_short", "random", "transfusion", "positive")
_ALWAYS = ("pretrained", "scratch", "linear_probe")  # native columns drawn even when undefined ("n/a")
_SHORT = {"pretrained": "pretrained", "scratch": "scratch", "linear_probe": "linear probe", "ablated": "ablated"}


def seed_series(table: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """The (initialisation, objective) columns the dot plot draws, in :data:`INIT_ORDER`, native first: every
    one with a finite score, except a run that repeats the native point's run of the same seeds (the scratch run
    that the swapped objective and the controls reuse).

    Args:
        table: :func:`transferlimits.study.pair_summary.seed_scores`.

    Returns:
        ``[(init, objective, rows of that objective)]``.
    """
    objectives = list(dict.fromkeys([*KIND_ORDER, *table["objective"]]))
    objectives = [o for o in objectives if (table["objective"] == o).any()]
    native = table[table["objective"] == "native"].set_index("seed")
    out = []
    for init in INIT_ORDER:
        if init not in table:
            continue
        for objective in objectives:
            grp = table[table["objective"] == objective]
            vals = grp[init].to_numpy(float)
            if not np.isfinite(vals).any() and not (objective == "native" and init in _ALWAYS):
                continue  # a run this pair does not have (an older file without the ablated run)
            if objective != "native" and not native.empty:
                same = native[init].reindex(grp["seed"]).to_numpy(float)
                if np.array_equal(vals, same, equal_nan=True):
                    continue  # a reused run: already drawn under the native objective
            out.append((init, objective, grp))
    return out


def _dots(ax, series, colour: str) -> None:
    undefined = []
    for x, (init, objective, grp) in enumerate(series):
        vals = grp[init].to_numpy(float)
        finite = vals[np.isfinite(vals)]
        if not len(finite):
            undefined.append(x)
            continue
        face = colour if objective == "native" else "none"
        jitter = np.linspace(-0.15, 0.15, len(vals)) if len(vals) > 1 else np.zeros(len(vals))
        ax.scatter(x + jitter, vals, marker=INIT_MARKERS.get(init, "D"), facecolor=face, edgecolor=colour, zorder=3)
        style = objective_style(str(grp["objective_name"].iloc[0]))["linestyle"]
        ax.hlines(finite.mean(), x - 0.3, x + 0.3, color=colour, lw=2, ls=style, zorder=2)
        if len(finite) > 1:
            ax.errorbar(x, finite.mean(), yerr=finite.std(ddof=1), color=colour, capsize=3, lw=1, zorder=2)
    lo, hi = ax.get_ylim()
    for x in undefined:  # after the dots and reference lines: the box sits inside the final y range
        draw_undefined(ax, x, 0.5, height=(hi - lo) * 0.3, bottom=lo + (hi - lo) * 0.35, text="n/a (undefined)")
    if undefined:
        ax.set_ylim(lo, hi)


def plot_case_differences(ax, cases: pd.DataFrame, colour: str, metric: str) -> None:
    """Paired pretrained − scratch per objective on ``ax``: the mean over seeds (dot), the t-interval over seeds
    (thick bar) and the two-stage seed + case bootstrap interval (thin bar); 0 dashed; an objective without a
    defined interval is labelled "n/a".

    Args:
        ax: a matplotlib axis. cases: :func:`transferlimits.study.pair_cases.case_differences`. colour: the
            model's colour. metric: the primary metric (axis label).
    """
    for y, row in enumerate(cases.itertuples()):
        if not math.isfinite(row.mean):
            ax.text(0, y, "n/a (no per-case records)", ha="center", va="center", fontsize=8, color="0.3")
            continue
        face = colour if row.objective == "native" else "white"
        if math.isfinite(row.boot_low):
            ax.hlines(y, row.boot_low, row.boot_high, color=colour, lw=1, zorder=2)
        if math.isfinite(row.t_low):
            ax.hlines(y, row.t_low, row.t_high, color=colour, lw=4, alpha=0.5, zorder=2)
        ax.scatter([row.mean], [y], marker=INIT_MARKERS["pretrained"], facecolor=face, edgecolor=colour, zorder=3)
    ax.axvline(0, color="0.4", ls="--", lw=1)
    ax.set_yticks(range(len(cases)), [f"{o}\n({n})" for o, n in zip(cases["objective"], cases["objective_name"])],
                  fontsize=8)
    ax.set_ylim(-0.6, len(cases) - 0.4)
    ax.invert_yaxis()
    ax.set_xlabel(f"pretrained − scratch, {metric}\n(+ = pre-training helped)", fontsize=8)
    ax.set_title("paired difference: t over seeds (thick),\nseed + case bootstrap (thin)", fontsize=8)
    ax.grid(axis="x", alpha=0.3)


def plot_seed_scores(table: pd.DataFrame, metric: str, model: str, linear_ref: float | None = None,
                     cases: pd.DataFrame | None = None):
    """Dots = seeds, bar = mean over seeds with its seed SD; one column per (initialisation, objective) that has
    its own runs (marker = initialisation, colour = model: the book's palette; filled = native objective, open =
    the swapped objective and the encoder controls; the mean bar's line style = the objective's family); the
    dashed line is the trivial baseline of the test split, the dotted one the closed-form linear reference.
    With ``cases``, a right panel shows the paired differences (:func:`plot_case_differences`).

    Args:
        table: :func:`transferlimits.study.pair_summary.seed_scores`. metric: the primary metric's name (y label).
        model: the registered model (its colour). linear_ref: the linear reference's score (None: not drawn).
        cases: :func:`transferlimits.study.pair_cases.case_differences` (None: no right panel).
    """
    colour = model_colour(model)
    series = seed_series(table)
    width = max(6.4, 0.8 * len(series) + 1.5)
    if cases is not None and len(cases):
        fig, (ax, ax_d) = plt.subplots(1, 2, figsize=(width + 3.4, 3.6), gridspec_kw={"width_ratios": [width, 3.0]})
    else:
        fig, ax = plt.subplots(figsize=(width, 3.6))
        ax_d = None
    base = table["baseline"].to_numpy(float)
    if np.isfinite(base).any():
        spread = np.nanmax(base) - np.nanmin(base)
        label = "trivial baseline" + (f" (mean of seeds; range {spread:.3g})" if spread > 1e-9 else "")
        ax.axhline(float(np.nanmean(base)), color="0.4", ls="--", lw=1, label=label)
    if linear_ref is not None and math.isfinite(linear_ref):
        ax.axhline(linear_ref, color="k", ls=":", lw=1.2, label="closed-form linear reference")
    _dots(ax, series, colour)
    ax.set_xticks(range(len(series)), [f"{_SHORT.get(i, i)}\n{o}" for i, o, _ in series], fontsize=8)
    ax.set_xlim(-0.6, len(series) - 0.4)
    ax.set_ylabel(f"test {metric}")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, frameon=False, loc="best")
    ax.grid(axis="y", alpha=0.3)
    if ax_d is not None:
        plot_case_differences(ax_d, cases, colour, metric)
    fig.tight_layout()
    return fig
