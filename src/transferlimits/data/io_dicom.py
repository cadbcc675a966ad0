"""DICOM series folders: reading through SimpleITK, with the slice-integrity checks SimpleITK skips.

SimpleITK (GDCM) silently leaves out files it cannot parse and, on a series with a missing or a
duplicated slice, only warns and averages the slice spacing: one slice removed from the middle of
ProstateX-0218's T2W series reads as 19 slices at 3.8 mm instead of 20 at 3.6 mm, a duplicate as 21 at
3.42 mm, and ADC/high-b are then resampled onto that wrong grid. :func:`check_series_slices` refuses
such a series before it is read; each :class:`DataError` names the series folder, the gap in mm and the
file(s).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from transferlimits.data.io_volume import DataError, Volume, require_simpleitk, short_reason

if TYPE_CHECKING:
    import SimpleITK as sitk

__all__ = ["list_dicom_series", "read_dicom_series", "dicom_series_uid", "check_series_slices",
           "SLICE_TOLERANCE_MM", "NON_DICOM_SUFFIXES"]

#: Largest tolerated deviation of one slice step from the series' median step, in mm (absolute part;
#: :func:`check_series_slices` also allows 1 % of the step). ProstateX-0218's three series step 3.6 mm with
#: a spread of 3.9e-6 mm (IPP round-off); a missing slice makes a step of 2x, a duplicate one of 0.
SLICE_TOLERANCE_MM = 0.01
#: Files that may sit next to the DICOM files of a series without being part of it.
NON_DICOM_SUFFIXES: tuple[str, ...] = (".txt", ".md", ".json", ".xml", ".csv", ".html", ".pdf")
_IPP, _IOP = "0020|0032", "0020|0037"


def list_dicom_series(folder: str | os.PathLike) -> list[str]:
    """SeriesInstanceUIDs of the DICOM series directly inside ``folder`` (empty list if none)."""
    sitk = require_simpleitk("reading DICOM")
    return list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or [])


def dicom_series_uid(path: Path) -> str | None:
    """SeriesInstanceUID of one DICOM file (None if the tag is absent).

    Raises:
        DataError: the file cannot be parsed as DICOM.
    """
    sitk = require_simpleitk("reading DICOM")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise DataError(f"{path}: unreadable DICOM file: {short_reason(exc)}") from exc
    return reader.GetMetaData("0020|000e").strip() if reader.HasMetaDataKey("0020|000e") else None


def _numbers(reader: sitk.ImageFileReader, tag: str, count: int, path: str, name: str) -> np.ndarray:
    if not reader.HasMetaDataKey(tag):
        raise DataError(f"{path}: no {name} ({tag}): cannot check the slice positions of its series")
    try:
        values = np.array([float(v) for v in reader.GetMetaData(tag).strip().split("\\")], dtype=np.float64)
    except ValueError:
        raise DataError(f"{path}: malformed {name} ({tag}) {reader.GetMetaData(tag)!r}") from None
    if values.shape != (count,) or not np.all(np.isfinite(values)):
        raise DataError(f"{path}: {name} ({tag}) {reader.GetMetaData(tag)!r} is not {count} finite numbers")
    return values


def _slice_geometry(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(positions [N, 3] in mm, orientations [N, 6]) read from each file's header."""
    sitk = require_simpleitk("reading DICOM")
    positions, orientations = [], []
    for f in files:
        reader = sitk.ImageFileReader()
        reader.SetFileName(f)
        try:
            reader.ReadImageInformation()
        except RuntimeError as exc:
            raise DataError(f"{f}: unreadable DICOM file: {short_reason(exc)}") from exc
        positions.append(_numbers(reader, _IPP, 3, f, "ImagePositionPatient"))
        orientations.append(_numbers(reader, _IOP, 6, f, "ImageOrientationPatient"))
    return np.array(positions), np.array(orientations)


def _stray_files(folder: Path) -> list[str]:
    """Files of ``folder`` that belong to no DICOM series GDCM found there (unreadable or not DICOM)."""
    sitk = require_simpleitk("reading DICOM")
    listed = {os.path.realpath(f) for uid in list_dicom_series(folder)
              for f in sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)}
    return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.name != "DICOMDIR" and p.suffix.lower() not in NON_DICOM_SUFFIXES
                  and os.path.realpath(p) not in listed)


def check_series_slices(folder: Path, files: list[str]) -> None:
    """Refuse a series whose slices are not one uniform stack.

    Checks, from ImageOrientationPatient (IOP) and ImagePositionPatient (IPP) of every file: one
    orientation for all slices; the positions along the slice normal (row x column cosines) have no
    duplicates and no gaps, i.e. every step equals the median step within :data:`SLICE_TOLERANCE_MM`
    + 1 %; and every other file of the folder belongs to a series (a truncated or corrupt slice is left
    out by GDCM, so it shows up as a gap plus a stray file).

    Args:
        folder: the series folder (for messages and the stray-file check).
        files: the series' files as GDCM sorted them.

    Raises:
        DataError: naming the folder, the step(s) in mm, the missing/duplicated position and the files.
    """
    stray = _stray_files(folder)
    unreadable = f"; unreadable or non-DICOM file(s) in the folder: {stray[:10]}" if stray else ""
    if len(files) < 2:
        if stray:
            raise DataError(f"{folder}: {len(files)} readable slice(s){unreadable}")
        return
    pos, ori = _slice_geometry(files)
    bad_ori = np.flatnonzero(np.abs(ori - ori[0]).max(axis=1) > 1e-4)
    if bad_ori.size:
        raise DataError(f"{folder}: slices of one series with different ImageOrientationPatient: "
                        f"{Path(files[0]).name} {ori[0].round(4).tolist()} vs {Path(files[bad_ori[0]]).name} "
                        f"{ori[bad_ori[0]].round(4).tolist()}")
    normal = np.cross(ori[0, :3], ori[0, 3:])
    order = np.argsort(pos @ normal, kind="stable")
    dist = (pos @ normal)[order]
    names = [Path(files[i]).name for i in order]
    steps = np.diff(dist)
    step = float(np.median(steps))
    if step <= SLICE_TOLERANCE_MM:
        raise DataError(f"{folder}: {len(files)} slices at (nearly) one position (median step {step:.3g} mm)"
                        f"{unreadable}")
    off = np.flatnonzero(np.abs(steps - step) > SLICE_TOLERANCE_MM + 0.01 * step)
    if off.size or stray:
        raise DataError(f"{folder}: not a uniform stack of slices (median step {step:.4g} mm along the slice "
                        f"normal): " + "; ".join(_describe_step(steps[k], step, names[k], names[k + 1])
                                                 for k in off[:5]) + unreadable)


def _describe_step(gap: float, step: float, before: str, after: str) -> str:
    if gap <= SLICE_TOLERANCE_MM:
        return f"duplicate position: {before} and {after} are {gap:.3g} mm apart"
    missing = int(round(gap / step)) - 1
    what = f"{missing} slice(s) missing" if missing >= 1 and abs(gap - (missing + 1) * step) < 0.1 * step else \
        "non-uniform spacing"
    return f"gap of {gap:.4g} mm between {before} and {after} ({what})"


def read_dicom_series(folder: Path, series_uid: str | None) -> Volume:
    """One DICOM series of ``folder`` as a :class:`Volume`, after :func:`check_series_slices`.

    Args:
        folder: folder holding the series' files.
        series_uid: SeriesInstanceUID to pick (None: the folder must hold exactly one series).

    Raises:
        DataError: empty folder, no/ambiguous/unknown series, a series with missing, duplicated or
            unreadable slices, or one SimpleITK cannot read.
    """
    sitk = require_simpleitk("reading DICOM")
    if not any(p.is_file() for p in folder.iterdir()):
        subs = sorted(p.name for p in folder.iterdir() if p.is_dir())
        hint = f"; it holds sub-folders {subs[:5]}: pass one of them" if subs else ""
        raise DataError(f"{folder}: empty DICOM folder (no files){hint}")
    uids = list_dicom_series(folder)
    if not uids:
        raise DataError(f"{folder}: no DICOM series found in this folder (files are not DICOM)")
    if series_uid is None:
        if len(uids) > 1:
            raise DataError(f"{folder}: holds {len(uids)} DICOM series; pass series_uid= one of {uids}")
        series_uid = uids[0]
    elif series_uid not in uids:
        raise DataError(f"{folder}: no DICOM series with SeriesInstanceUID {series_uid!r}; found {uids}")
    files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_uid))
    check_series_slices(folder, files)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        img = reader.Execute()
    except RuntimeError as exc:
        raise DataError(f"{folder}: cannot read DICOM series {series_uid}: {short_reason(exc)}") from exc
    return Volume.from_sitk(img, folder)
