"""The ``picai_labels`` checkout: its layout, the marksheet, and how a mask meets its T2W grid.

Layout (masks ``<patient_id>_<study_id>.nii.gz``, nominally on the axial T2W grid)::

    anatomical_delineations/whole_gland/AI/Bosma22b/     gland: 1 (AI-derived)
    anatomical_delineations/zonal_pz_tz/AI/HeviAI23/     zones: 1 PZ, 2 TZ (AI-derived)
    csPCa_lesion_delineations/human_expert/resampled/    csPCa lesions: 2..5 = ISUP (1295 cases)
    csPCa_lesion_delineations/human_expert/Pooch25/      csPCa lesions: binary (the other 205 cases)
    clinical_information/marksheet.csv
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from transferlimits.data.io import DataError, Volume, check_same_geometry, copy_geometry, resample_to

__all__ = [
    "GLAND_DIR",
    "ZONE_DIR",
    "LESION_DIRS",
    "MARKSHEET",
    "read_marksheet",
    "clinical_from_row",
    "lesion_mask_path",
    "mask_on_grid",
]

GLAND_DIR = "anatomical_delineations/whole_gland/AI"
ZONE_DIR = "anatomical_delineations/zonal_pz_tz/AI"
LESION_DIRS: tuple[str, ...] = (
    "csPCa_lesion_delineations/human_expert/resampled",  # values 2..5 = ISUP grade
    "csPCa_lesion_delineations/human_expert/Pooch25",  # binary
)
MARKSHEET = "clinical_information/marksheet.csv"


def read_marksheet(labels_root: str | os.PathLike) -> pd.DataFrame:
    """The PI-CAI marksheet as strings, indexed by ``case_id`` = ``<patient_id>_<study_id>``."""
    path = Path(labels_root) / MARKSHEET
    if not path.is_file():
        raise DataError(f"{path}: marksheet not found (is {labels_root} a picai_labels checkout?)")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.index = df["patient_id"] + "_" + df["study_id"]
    df.index.name = "case_id"
    return df


def _number(text: str) -> float | None:
    text = str(text).strip()
    return float(text) if text and text.upper() != "N/A" else None


def clinical_from_row(row: pd.Series) -> dict[str, Any]:
    """Marksheet row -> ``pirads`` (max of lesion_PIRADS, None if none/N/A), ``isup``, ``cspca``,
    ``center``, ``age``, ``psa``, ``psad``, ``volume`` (mL), ``histopath_type`` (None = not given)."""
    tokens = [t.strip() for t in str(row["lesion_PIRADS"]).split(",")]
    pirads = [int(t) for t in tokens if t.isdigit()]
    age = _number(row["patient_age"])
    return {
        "pirads": max(pirads) if pirads else None,
        "isup": int(row["case_ISUP"]),
        "cspca": str(row["case_csPCa"]).strip().upper() == "YES",
        "center": str(row["center"]),
        "age": int(age) if age is not None else None,
        "psa": _number(row["psa"]),
        "psad": _number(row["psad"]),
        "volume": _number(row["prostate_volume"]),
        "histopath_type": str(row["histopath_type"]) or None,
    }


def lesion_mask_path(labels_root: str | os.PathLike, case_id: str) -> tuple[Path, str]:
    """(path, kind) of a case's csPCa lesion mask: kind ``"isup"`` (resampled) or ``"binary"`` (Pooch25)."""
    tried = []
    for sub, kind in zip(LESION_DIRS, ("isup", "binary")):
        path = Path(labels_root) / sub / f"{case_id}.nii.gz"
        if path.is_file():
            return path, kind
        tried.append(str(path))
    raise DataError(f"case {case_id}: no csPCa lesion mask; tried {tried}")


def mask_on_grid(mask: Volume, t2w: Volume) -> tuple[np.ndarray, str]:
    """A label mask put on the T2W grid, checked.

    Rules (they cover every mask of the 1500 picai_labels cases):

    * same shape as the T2W: the geometry must agree within the tolerances of
      :func:`check_same_geometry`; then the T2W geometry is copied onto the mask (absorbing e.g. the
      2e-4 direction-cosine differences of 11373_1001396). An **all-zero** mask whose header disagrees
      is accepted as all-zero (its geometry carries no information; 7 empty human_expert/resampled
      masks have direction cosines off by up to 0.12). A non-empty one raises :class:`DataError`.
    * another shape: the mask is on its own grid (346 HeviAI23 zone masks are crops of the T2W grid,
      2 Pooch25 masks have half the in-plane resolution); with the same direction cosines it is
      placed by nearest-neighbour resampling in world space; a non-empty mask that lands entirely
      outside the T2W, or one with other direction cosines, raises :class:`DataError`.

    Returns:
        (mask array [D, H, W] on the T2W grid, how: ``"same"``, ``"resampled"`` or ``"empty"``).
    """
    if mask.shape == t2w.shape:
        try:
            check_same_geometry(mask, t2w)
        except DataError:
            if np.any(mask.array):
                raise
            return np.zeros(t2w.shape, mask.array.dtype), "empty"
        return copy_geometry(mask, t2w).array, "same"
    dd = float(np.max(np.abs(np.subtract(mask.direction, t2w.direction))))
    if dd > 1e-3:
        raise DataError(
            f"{mask.path}: grid {mask.shape} differs from {t2w.path} {t2w.shape} and its direction cosines "
            f"differ by {dd:.3g} > 1e-3: not a mask of this image"
        )
    out = resample_to(mask, t2w, "nearest").array
    if np.any(mask.array) and not np.any(out):
        raise DataError(f"{mask.path}: non-empty mask lies entirely outside the field of view of {t2w.path}")
    return out, "resampled"
