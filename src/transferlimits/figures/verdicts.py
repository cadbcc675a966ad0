"""The forest plot beside the verdict table: each hypothesis' estimate with its 95 % CI, in its own unit.

Correlations (H1–H3), the difference of correlations (H5) and the RPG effects in percentage points (H4, H6)
do not share a scale, so each unit gets its own panel; the side of 0 the hypothesis predicts is shaded, the
marker is coloured by the verdict, and an undefined statistic is a hatched "n/a" row (never a point at 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from transferlimits.figures.palette import draw_undefined, verdict_colour
from transferlimits.study.verdicts import DESIGN, Verdict, minimum_detectable_effect

__all__ = ["plot_forest", "UNIT_PANELS"]

#: panel per unit: (title, x label, default x limits).
UNIT_PANELS = {"r": ("correlations", "Pearson r (model fixed effect)", (-1.05, 1.05)),
               "Δr": ("pre-hoc minus post-hoc", "Δr = r(LogME, RPG) + r(MMD², RPG)", (-2.1, 2.1)),
               "pp of RPG": ("RPG effects", "percentage points of RPG", None)}


def plot_forest(verdicts: Sequence[Verdict]) -> Figure:
    """Forest plot of H1–H6: point = estimate, bar = 95 % bootstrap CI, one panel per unit.

    Args:
        verdicts: :func:`transferlimits.study.verdicts.all_verdicts`.

    Returns:
        The matplotlib ``Figure``.
    """
    groups: dict[str, list[Verdict]] = {}
    for v in verdicts:
        groups.setdefault(DESIGN.get(v.hypothesis, {}).get("unit", ""), []).append(v)
    units = [u for u in UNIT_PANELS if u in groups] + [u for u in groups if u not in UNIT_PANELS]
    heights = [len(groups[u]) + 0.6 for u in units]
    fig, axes = plt.subplots(len(units), 1, figsize=(6.4, 0.62 * sum(heights) + 0.9 * len(units)),
                             gridspec_kw={"height_ratios": heights}, constrained_layout=True, squeeze=False)
    for ax, unit in zip(axes[:, 0], units):
        title, xlabel, lim = UNIT_PANELS.get(unit, (unit, unit, None))
        rows = groups[unit]
        span = [x for v in rows for x in (v.ci_lo, v.ci_hi, v.estimate) if math.isfinite(x)]
        if lim is None:
            m = max([abs(x) for x in span] + [1.0]) * 1.15
            lim = (-m, m)
        ax.set_xlim(*lim)
        for i, v in enumerate(rows):
            y = len(rows) - 1 - i
            side = (0, lim[1]) if v.predicted == "positive" else (lim[0], 0)
            ax.fill_betweenx([y - 0.4, y + 0.4], *side, color="#dbe9f6", zorder=0, lw=0)
            if not math.isfinite(v.estimate):
                draw_undefined(ax, y, lim[1] - lim[0], 0.6, bottom=lim[0], text="n/a (undefined)", horizontal=True)
                continue
            colour = verdict_colour(v.verdict)
            if math.isfinite(v.ci_lo) and math.isfinite(v.ci_hi):
                ax.plot([v.ci_lo, v.ci_hi], [y, y], color=colour, lw=2, solid_capstyle="butt", zorder=2)
                ax.plot([v.ci_lo, v.ci_hi], [y, y], "|", color=colour, ms=9, zorder=2)
            ax.plot([v.estimate], [y], "D", color=colour, ms=7, zorder=3)
            mde = minimum_detectable_effect(v)[0]
            if math.isfinite(mde) and DESIGN.get(v.hypothesis, {}).get("kind") == "correlation":
                sign = 1 if v.predicted == "positive" else -1
                ax.plot([sign * mde], [y], marker=3 if sign > 0 else 2, color="0.35", ms=9, zorder=2)
        ax.axvline(0, color="0.3", lw=0.8, zorder=1)
        ax.set_yticks(range(len(rows)), [f"{v.hypothesis}: {v.verdict}" for v in reversed(rows)], fontsize=9)
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_title(title, fontsize=9, loc="left")
        ax.tick_params(axis="x", labelsize=8)
    return fig
