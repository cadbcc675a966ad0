"""Figures of the data chapter: phantom vs real side by side, and per-zone intensity histograms."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt  # no backend switch here: that would unregister a kernel's inline PNG formatter
import numpy as np
from matplotlib.figure import Figure

from transferlimits.data.calibration import normalised, zone_masks
from transferlimits.data.case import MRCase

__all__ = ["mid_gland_slice", "plot_phantom_vs_real", "plot_zone_histograms"]

_ZONE_COLOURS = {"PZ": "tab:cyan", "TZ": "tab:orange", "lesion": "red", "indolent": "yellow"}


def mid_gland_slice(case: MRCase) -> int:
    """Axial slice with the largest gland area among slices that show a lesion (any slice if none)."""
    area = (case.zones > 0).sum(axis=(1, 2)).astype(float)
    has_lesion = (case.lesion > 0).any(axis=(1, 2))
    if has_lesion.any():
        area = np.where(has_lesion, area, -1.0)
    return int(np.argmax(area)) if area.max() > 0 else case.shape[0] // 2


def _show(ax, img, title, cmap="gray", vmin=None, vmax=None, units=""):
    im = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    cb = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    cb.ax.tick_params(labelsize=7)
    if units:
        cb.set_label(units, fontsize=7)


def plot_phantom_vs_real(phantom: MRCase, real: MRCase, slice_index: tuple[int, int] | None = None) -> Figure:
    """Rows phantom / real; columns T2W, ADC, high-b, T2W with zone and lesion contours (mid-gland slice).

    Args:
        phantom, real: the two cases (ideally on the same grid, e.g. the phantom of the real geometry).
        slice_index: (phantom slice, real slice); default :func:`mid_gland_slice` of the real exam for
            both rows when the phantom is of the same case on the same grid, else of each case.
    """
    fig, axes = plt.subplots(2, 4, figsize=(13, 6.4), constrained_layout=True)
    same_anatomy = phantom.shape == real.shape and phantom.case_id == real.case_id
    for row, case in enumerate((phantom, real)):
        if slice_index:
            k = slice_index[row]
        else:  # the phantom of a real geometry: show the same slice (the real exam's) in both rows
            k = mid_gland_slice(real) if same_anatomy else mid_gland_slice(case)
        gland = case.zones > 0
        t2_ref = float(np.median(case.t2w[gland])) if gland.any() else float(np.median(case.t2w))
        label = f"{case.source}: {case.case_id} (slice {k})"
        _show(axes[row, 0], case.t2w[k] / t2_ref, f"{label}\nT2W / gland median", vmin=0, vmax=3.5)
        _show(axes[row, 1], case.adc[k], "ADC", vmin=0, vmax=3000, units="1e-6 mm²/s")
        hb = np.percentile(case.hbv[case.body > 0], 99.5) if case.body.any() else case.hbv.max()
        _show(axes[row, 2], case.hbv[k], "high-b DWI", vmin=0, vmax=hb)
        ax = axes[row, 3]
        _show(ax, case.t2w[k] / t2_ref, "T2W + zones / lesion", vmin=0, vmax=3.5)
        masks = zone_masks(case)
        for name, colour in _ZONE_COLOURS.items():
            m = masks[name][k] if name in ("lesion", "indolent") else (case.zones[k] == (1 if name == "PZ" else 2))
            if m.any():
                ax.contour(m.astype(float), levels=[0.5], colors=colour, linewidths=1.0)
        ax.contour(case.body[k].astype(float), levels=[0.5], colors="lime", linewidths=0.6, linestyles="dotted")
    handles = [plt.Line2D([], [], color=c, label=n) for n, c in _ZONE_COLOURS.items()]
    handles.append(plt.Line2D([], [], color="lime", linestyle="dotted", label="body"))
    axes[0, 3].legend(handles=handles, fontsize=7, loc="lower right", framealpha=0.7)
    fig.suptitle("Phantom (top) vs real exam (bottom), mid-gland axial slice", fontsize=11)
    return fig


def plot_zone_histograms(real_cases: Sequence[MRCase], phantom_cases: Sequence[MRCase],
                         zones: Sequence[str] = ("PZ", "TZ", "lesion", "outside"), bins: int = 40) -> Figure:
    """Per-zone intensity histograms (density) of real vs phantom cases: rows = zones, columns = T2W
    (/ gland median), ADC, high-b (/ gland median); voxels pooled over the cases of each group."""
    seqs = (("t2w", "T2W / gland median", (0, 4)), ("adc", "ADC (1e-6 mm²/s)", (0, 3500)),
            ("hbv", "high-b / gland median", (0, 3)))
    pooled = {}
    for group, cases in (("real", real_cases), ("phantom", phantom_cases)):
        for case in cases:
            arrs, masks = normalised(case), zone_masks(case)
            for z in zones:
                for s, _, _ in seqs:
                    pooled.setdefault((group, z, s), []).append(arrs[s][masks[z]])
    fig, axes = plt.subplots(len(zones), 3, figsize=(11, 2.2 * len(zones)), constrained_layout=True, squeeze=False)
    for i, z in enumerate(zones):
        for j, (s, label, rng) in enumerate(seqs):
            ax = axes[i, j]
            for group, colour in (("real", "black"), ("phantom", "tab:blue")):
                vals = np.concatenate(pooled.get((group, z, s), [np.empty(0)]))
                if vals.size:
                    ax.hist(vals, bins=bins, range=rng, density=True, histtype="step", color=colour, lw=1.4,
                            label=f"{group} (n={vals.size})")
            ax.set_title(f"{z}: {label}", fontsize=9)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=7)
    fig.suptitle(f"Per-zone intensities: {len(real_cases)} real vs {len(phantom_cases)} phantom cases", fontsize=11)
    return fig
