"""A whole exam stored as DICOM series, one per sub-folder (the shipped ProstateX-0218).

Series are told apart by SeriesDescription; each is read with the slice-integrity checks of
:mod:`transferlimits.data.io_dicom`, and ADC/high-b are resampled onto the T2W grid after
:func:`~transferlimits.data.io.check_coverage` (no gland mask here, so the T2W field of view decides).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from transferlimits import paths
from transferlimits.data.io import (
    MIN_FOV_COVERAGE,
    MIN_OVERLAP,
    DataError,
    Volume,
    check_coverage,
    read_volume,
    resample_to,
)
from transferlimits.data.io_volume import require_simpleitk, short_reason

__all__ = ["load_dicom_exam", "EXAM_SEQUENCES"]

EXAM_SEQUENCES: tuple[str, ...] = ("t2w", "adc", "hbv")


def _series_kind(description: str) -> str | None:
    d = description.lower()
    if "adc" in d:
        return "adc"
    if "bval" in d:
        return "hbv"
    if "t2" in d and "tra" in d:
        return "t2w"
    return None


def load_dicom_exam(folder: str | os.PathLike = paths.DICOM_0218) -> dict[str, Volume]:
    """Read an exam stored as one DICOM series per sub-folder (e.g. ProstateX-0218).

    Series are recognised by SeriesDescription: ``*ADC*`` -> adc, ``*BVAL*`` (scanner-calculated
    high b) -> hbv, ``*t2*tra*`` -> t2w. ADC and hbv are resampled (linear) onto the T2W grid.

    Args:
        folder: exam folder (default ``paths.DICOM_0218``).

    Returns:
        ``{"t2w", "adc", "hbv"}`` -> float32 :class:`Volume` on the T2W grid.

    Raises:
        DataError: missing folder, an unreadable file, a series with missing/duplicated/unreadable
            slices (:func:`~.io_dicom.check_series_slices`), a series not found, or an ADC/hbv covering less
            than :data:`~.io.MIN_FOV_COVERAGE` (80 %) of the T2W field of view (ProstateX-0218: 100 %).
    """
    sitk = require_simpleitk("reading DICOM")
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: DICOM exam folder not found")
    found: dict[str, Volume] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(sub.glob("*.dcm")) or sorted(p for p in sub.iterdir() if p.is_file())
        if not files:
            continue
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(files[0]))
        try:
            reader.ReadImageInformation()
        except RuntimeError as exc:
            raise DataError(f"{files[0]}: unreadable DICOM file (series folder {sub}): {short_reason(exc)}") from exc
        desc = reader.GetMetaData("0008|103e") if reader.HasMetaDataKey("0008|103e") else sub.name
        kind = _series_kind(desc)
        if kind is not None and kind not in found:
            found[kind] = read_volume(sub)
    missing = [s for s in EXAM_SEQUENCES if s not in found]
    if missing:
        raise DataError(f"{folder}: no DICOM series recognised as {missing} (found {sorted(found)})")
    t2w = found["t2w"]
    t2w = Volume(t2w.array.astype(np.float32), t2w.spacing, t2w.origin, t2w.direction, t2w.path)
    out = {"t2w": t2w}
    for seq in ("adc", "hbv"):
        check_coverage(found[seq], t2w, seq, min_fov=MIN_FOV_COVERAGE)
        out[seq] = resample_to(found[seq], t2w, "linear", min_overlap=MIN_OVERLAP)
    return out
