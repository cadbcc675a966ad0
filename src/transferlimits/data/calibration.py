"""Per-zone intensity statistics of real and phantom cases: the calibration table of the data chapter.

Normalisation (so that scanner gain drops out and real and phantom are comparable):

* T2W is divided by the median T2W inside the whole gland of the same case;
* high-b (hbv) is divided by the median hbv inside the whole gland of the same case;
* ADC is kept in absolute units (10^-6 mm^2/s), as it is a quantitative map.

Zones (disjoint): ``PZ`` = zones 1 without lesion, ``TZ`` = zones 2 without lesion, ``lesion`` = csPCa
(lesion 2), ``indolent`` = PI-RADS-only finding (lesion 1), ``other_gland`` = gland voxel without a zone
label (zones 3, no lesion), ``outside`` = body voxels outside the gland.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from transferlimits.data.case import MRCase
from transferlimits.data.geometry import CaseGeometry
from transferlimits.data.phantom import synthesize
from transferlimits.data.picai import load_real_cases
from transferlimits.data.regrid import case_to_grid

__all__ = ["ZONES", "zone_masks", "normalised", "zone_stats", "calibration_table", "phantom_of_real",
           "calibration_pairs"]

ZONES: tuple[str, ...] = ("PZ", "TZ", "lesion", "indolent", "other_gland", "outside")
_SEQS = ("t2w", "adc", "hbv")


def zone_masks(case: MRCase) -> dict[str, np.ndarray]:
    """Boolean [D, H, W] masks of :data:`ZONES` for one case."""
    z, les = case.zones, case.lesion
    return {
        "PZ": (z == 1) & (les == 0),
        "TZ": (z == 2) & (les == 0),
        "lesion": les == 2,
        "indolent": les == 1,
        "other_gland": (z == 3) & (les == 0),
        "outside": (case.body > 0) & (z == 0),
    }


def normalised(case: MRCase) -> dict[str, np.ndarray]:
    """t2w and hbv divided by their gland median (see module doc); adc unchanged."""
    gland = case.zones > 0
    out = {}
    for seq in _SEQS:
        arr = case.sequence(seq).astype(np.float64)
        if seq != "adc":
            ref = float(np.median(arr[gland])) if gland.any() else float(np.median(arr[case.body > 0]))
            arr = arr / max(ref, 1e-6)
        out[seq] = arr
    return out


def zone_stats(case: MRCase) -> pd.DataFrame:
    """Per-zone mean, std and voxel count of normalised T2W, ADC and normalised hbv.

    Returns:
        DataFrame indexed by zone (:data:`ZONES`, empty zones have n = 0 and NaN statistics) with columns
        ``n``, ``t2w_mean``, ``t2w_std``, ``adc_mean``, ``adc_std``, ``hbv_mean``, ``hbv_std``.
    """
    arrays = normalised(case)
    rows = []
    for zone, mask in zone_masks(case).items():
        row = {"zone": zone, "n": int(mask.sum())}
        for seq in _SEQS:
            vals = arrays[seq][mask]
            row[f"{seq}_mean"] = float(vals.mean()) if vals.size else np.nan
            row[f"{seq}_std"] = float(vals.std()) if vals.size else np.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("zone")


def _pooled(cases: Sequence[MRCase]) -> pd.DataFrame:
    """Voxel-pooled statistics over cases (means weighted by n; pooled std)."""
    frames = [zone_stats(c) for c in cases]
    out = []
    for zone in ZONES:
        rows = pd.DataFrame([f.loc[zone] for f in frames])
        n = rows["n"].to_numpy(float)
        rec = {"zone": zone, "n": int(n.sum())}
        for seq in _SEQS:
            m, s = rows[f"{seq}_mean"].to_numpy(float), rows[f"{seq}_std"].to_numpy(float)
            ok = n > 0
            if not ok.any():
                rec[f"{seq}_mean"] = rec[f"{seq}_std"] = np.nan
                continue
            w = n[ok] / n[ok].sum()
            mean = float(np.sum(w * m[ok]))
            rec[f"{seq}_mean"] = mean
            rec[f"{seq}_std"] = float(np.sqrt(max(np.sum(w * (s[ok] ** 2 + m[ok] ** 2)) - mean**2, 0.0)))
        out.append(rec)
    return pd.DataFrame(out).set_index("zone")


def calibration_table(real_cases: Sequence[MRCase], phantom_cases: Sequence[MRCase]) -> pd.DataFrame:
    """Real vs phantom per-zone statistics side by side (voxel-pooled over the cases of each group).

    Returns:
        Long DataFrame with one row per (zone, sequence): ``zone``, ``sequence``, ``real_mean``,
        ``real_std``, ``phantom_mean``, ``phantom_std``, ``ratio`` (phantom / real mean), ``n_real``,
        ``n_phantom``.
    """
    if not real_cases or not phantom_cases:
        raise ValueError(f"need >= 1 real and >= 1 phantom case, got {len(real_cases)} and {len(phantom_cases)}")
    real, ph = _pooled(real_cases), _pooled(phantom_cases)
    rows = []
    for zone in ZONES:
        for seq in _SEQS:
            rm, pm = real.loc[zone, f"{seq}_mean"], ph.loc[zone, f"{seq}_mean"]
            rows.append({
                "zone": zone, "sequence": seq,
                "real_mean": rm, "real_std": real.loc[zone, f"{seq}_std"],
                "phantom_mean": pm, "phantom_std": ph.loc[zone, f"{seq}_std"],
                "ratio": pm / rm if np.isfinite(rm) and rm != 0 else np.nan,
                "n_real": int(real.loc[zone, "n"]), "n_phantom": int(ph.loc[zone, "n"]),
            })
    return pd.DataFrame(rows)


def phantom_of_real(case: MRCase, grid, seed: int = 0) -> MRCase:
    """The phantom synthesised on a real case's own label geometry (zones + csPCa grades) on ``grid``.

    This is the like-for-like comparison the calibration uses: same anatomy, same clinical labels.
    """

    isup = case.extra.get("lesion_isup")
    lesions = np.asarray(isup if isup is not None else np.where(case.lesion == 2, 1, 0), dtype=np.uint8)
    geom = CaseGeometry(case.case_id, case.zones.astype(np.uint8), lesions, tuple(case.spacing), dict(case.clinical))
    return synthesize(geom, grid, seed)


def calibration_pairs(grid, seeds=(0, 1)) -> tuple[list[MRCase], list[MRCase]]:
    """The shipped real exams on ``grid`` and their phantoms (one per seed), for :func:`calibration_table`
    and :func:`transferlimits.figures.data.plot_phantom_vs_real`."""

    native = load_real_cases()
    return [case_to_grid(c, grid) for c in native], [phantom_of_real(c, grid, s) for c in native for s in seeds]
