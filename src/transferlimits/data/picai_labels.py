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


#: Marksheet texts that mean "not given" in a numeric column.
MISSING = ("", "N/A", "NA", "NAN")


def read_marksheet(labels_root: str | os.PathLike) -> pd.DataFrame:
    """The PI-CAI marksheet as strings, indexed by ``case_id`` = ``<patient_id>_<study_id>``.

    ``df.attrs["path"]`` is the file; column ``_line`` the CSV line number of each row (header = 1).

    Raises:
        DataError: no marksheet, a required column missing, or a case listed twice.
    """
    path = Path(labels_root) / MARKSHEET
    if not path.is_file():
        raise DataError(f"{path}: marksheet not found (is {labels_root} a picai_labels checkout?)")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    need = ["patient_id", "study_id", "patient_age", "psa", "psad", "prostate_volume", "histopath_type",
            "lesion_PIRADS", "case_ISUP", "case_csPCa", "center"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DataError(f"{path}: column(s) {missing} missing; found {list(df.columns)}")
    df["_line"] = [str(i + 2) for i in range(len(df))]
    df.index = df["patient_id"].str.strip() + "_" + df["study_id"].str.strip()
    df.index.name = "case_id"
    dup = df.index[df.index.duplicated()].unique().tolist()
    if dup:
        raise DataError(f"{path}: case(s) listed more than once: {dup[:5]}")
    df.attrs["path"] = str(path)
    return df


def _where(row: pd.Series, where: str, column: str) -> str:
    line = f" line {row['_line']}" if "_line" in row.index else ""
    return f"{where}{line}, case {row.name}, column {column!r}"


def _number(row: pd.Series, column: str, where: str) -> float | None:
    text = str(row[column]).strip()
    if text.upper() in MISSING:
        return None
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{_where(row, where, column)}: value {text!r} is not a number") from None
    if not np.isfinite(value) or value < 0:
        raise DataError(f"{_where(row, where, column)}: value {text!r} is not a finite number >= 0")
    return value


def _int_in(row: pd.Series, column: str, where: str, lo: int, hi: int) -> int:
    text = str(row[column]).strip()
    if not text.isdigit() or not lo <= int(text) <= hi:
        raise DataError(f"{_where(row, where, column)}: value {text!r} is not an integer in {lo}..{hi}")
    return int(text)


def clinical_from_row(row: pd.Series, where: str = "marksheet") -> dict[str, Any]:
    """Marksheet row -> ``pirads`` (max of lesion_PIRADS, None if none/N/A), ``isup``, ``cspca``,
    ``center``, ``age``, ``psa``, ``psad``, ``volume`` (mL), ``histopath_type`` (None = not given).

    Args:
        row: one marksheet row (``row.name`` = case id; ``_line`` its CSV line, if present).
        where: the marksheet file, for messages (default ``"marksheet"``).

    Raises:
        DataError: a malformed value (the message names the file, line, case, column and value);
            ``case_ISUP`` (0..5) and ``case_csPCa`` (YES/NO) are required.
    """
    pirads = []
    for token in str(row["lesion_PIRADS"]).split(","):
        token = token.strip()
        if token.upper() in MISSING:
            continue
        if not token.isdigit() or not 1 <= int(token) <= 5:
            raise DataError(f"{_where(row, where, 'lesion_PIRADS')}: value {row['lesion_PIRADS']!r} holds "
                            f"{token!r}, not a PI-RADS score 1..5 or N/A")
        pirads.append(int(token))
    cspca = str(row["case_csPCa"]).strip().upper()
    if cspca not in ("YES", "NO"):
        raise DataError(f"{_where(row, where, 'case_csPCa')}: value {row['case_csPCa']!r} is not YES or NO")
    age = _number(row, "patient_age", where)
    return {
        "pirads": max(pirads) if pirads else None,
        "isup": _int_in(row, "case_ISUP", where, 0, 5),
        "cspca": cspca == "YES",
        "center": str(row["center"]),
        "age": int(age) if age is not None else None,
        "psa": _number(row, "psa", where),
        "psad": _number(row, "psad", where),
        "volume": _number(row, "prostate_volume", where),
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
