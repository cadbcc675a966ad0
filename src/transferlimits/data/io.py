"""Reading medical volumes (.mha, .nii/.nii.gz, DICOM series) into one geometry-keeping type.

Every reader returns a :class:`Volume`: the voxel array in SimpleITK order ``[D, H, W]`` = (z, y, x)
plus the physical geometry in ITK (x, y, z) order and LPS world coordinates (spacing, origin, 3x3
direction cosines, row-major). Bad input raises :class:`DataError` naming the file and the problem::

    t2w = read_volume("11373/11373_1001396_t2w.mha")
    adc = read_volume("11373/11373_1001396_adc.mha")
    check_coverage(adc, t2w, "adc", gland=gland)                           # DataError if partly off the grid
    adc = resample_to(adc, t2w, min_overlap=MIN_OVERLAP)
    check_same_geometry(read_volume("mask.nii.gz"), t2w)                   # DataError if they differ

Refused, with the file named: NaN/inf voxels; empty, truncated or corrupt files; a sheared direction
matrix (:mod:`.io_volume`, checked on the raw NIfTI header too, :mod:`.io_nifti`); a DICOM series with a
missing, duplicated or unreadable slice (:mod:`.io_dicom`); a sequence that leaves too much of the T2W
grid or of the gland zero-filled when resampled onto it (:func:`check_coverage`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from transferlimits.data.io_dicom import dicom_series_uid, list_dicom_series, read_dicom_series
from transferlimits.data.io_nifti import check_nifti_shear, read_nifti_nibabel
from transferlimits.data.io_volume import (
    DataError,
    Volume,
    check_finite,
    check_orthonormal,
    file_suffix,
    have_simpleitk,
    require_simpleitk,
    short_reason,
)
from transferlimits.data.io_mha import read_mha

__all__ = [
    "DataError",
    "Volume",
    "read_volume",
    "read_nifti_nibabel",
    "list_dicom_series",
    "resample_to",
    "check_same_geometry",
    "check_coverage",
    "copy_geometry",
    "overlap_fraction",
    "coverage_fractions",
    "check_finite",
    "VOLUME_SUFFIXES",
    "MIN_OVERLAP",
    "MIN_FOV_COVERAGE",
    "MIN_GLAND_COVERAGE",
]

#: File suffixes :func:`read_volume` accepts (besides DICOM series folders).
VOLUME_SUFFIXES: tuple[str, ...] = (".mha", ".mhd", ".nii", ".nii.gz", ".nrrd")
#: interpolation name -> SimpleITK interpolator attribute (SimpleITK is imported where it resamples)
INTERPOLATIONS: dict[str, str] = {"linear": "sitkLinear", "nearest": "sitkNearestNeighbor"}
#: Floor on the fraction of the T2W grid a resampled sequence must cover, whatever else is known (a
#: sequence from another exam or with a wrong origin covers ~0).
MIN_OVERLAP = 0.25
#: Least fraction of the T2W field of view a sequence must cover when no gland mask is known (DICOM
#: exams), i.e. an error when more than 20 % of it would be zero-filled. Measured: ProstateX-0218 ADC and
#: high-b cover 1.000 of its T2W; the shipped PI-CAI ADC/hbv 0.875 (their in-plane field of view is
#: 168 mm against the T2W's 192 mm, as is common for DWI), so 10 % would refuse ordinary exams.
MIN_FOV_COVERAGE = 0.80
#: Least fraction of the gland mask's voxels a sequence must cover where the mask is known (PI-CAI cases),
#: i.e. an error when more than 5 % of the gland would be zero-filled. Measured: 1.000 for the ADC and hbv
#: of both shipped PI-CAI cases (10795_1000811, 11373_1001396); an ADC shifted 20 mm along z covers
#: 0.81 / 0.92 of it, 40 mm 0.21 / 0.08.
MIN_GLAND_COVERAGE = 0.95


def read_volume(path: str | os.PathLike, series_uid: str | None = None) -> Volume:
    """Read one 3D volume from a file (.mha, .mhd, .nii, .nii.gz, .nrrd) or a DICOM series folder.

    Args:
        path: an image file, or a folder holding the files of DICOM series.
        series_uid: SeriesInstanceUID to pick when a folder holds several series (default None: the
            folder must hold exactly one).

    Returns:
        The :class:`Volume` (array dtype as stored in the file).

    Raises:
        DataError: missing path, unsupported suffix, unreadable/corrupt file, empty DICOM folder, an
            ambiguous multi-series folder (the message lists the series), a DICOM series with missing,
            duplicated or unreadable slices, a sheared direction matrix, NaN/inf voxels.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        return read_dicom_series(path, series_uid)
    suffix = file_suffix(path)
    if suffix not in VOLUME_SUFFIXES and suffix != ".dcm":
        raise DataError(f"{path}: unsupported file type {suffix!r}; valid: {list(VOLUME_SUFFIXES)} or a DICOM folder")
    if suffix == ".dcm":  # the whole series this file belongs to
        if series_uid is None:
            series_uid = dicom_series_uid(path)
        return read_dicom_series(path.parent, series_uid)
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path}: empty image file (0 bytes): truncated copy?")
    if suffix in (".mha", ".mhd") and not have_simpleitk():  # the compute path: same Volume, bit for bit
        return _checked(read_mha(path))
    if suffix in (".nii", ".nii.gz"):
        check_nifti_shear(path)  # SimpleITK would hide it (falls back to the qform) or call the file corrupt
        if not have_simpleitk():  # same arrays; geometry within 1e-5 (tests/test_io_integrity.py)
            return read_nifti_nibabel(path)
    sitk = require_simpleitk(f"reading {path.name}")
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        reason = short_reason(exc)
        if "No such file" in reason or "Unable to determine ImageIO" in reason:  # ITK's words for a torn file
            reason = "the header or the voxel data is incomplete"
        raise DataError(f"{path}: truncated or corrupt image file ({size} bytes): {reason}") from exc
    return _checked(Volume.from_sitk(img, path))


def _checked(volume: Volume) -> Volume:
    """``volume`` when its direction is orthonormal and every voxel finite (:class:`DataError` otherwise)."""
    check_orthonormal(volume.direction_matrix, volume.path)
    return check_finite(volume)


def _covered(volume: Volume, reference: Volume) -> np.ndarray:
    """uint8 [D, H, W] on ``reference``'s grid: 1 where the voxel centre lies inside ``volume``."""
    ones = Volume(np.ones(volume.shape, np.uint8), volume.spacing, volume.origin, volume.direction, volume.path)
    sitk = require_simpleitk(f"resampling {volume.path} onto {reference.path}")
    out = sitk.Resample(ones.to_sitk(), reference.to_sitk(), sitk.Transform(), sitk.sitkNearestNeighbor, 0.0,
                        sitk.sitkUInt8)
    return sitk.GetArrayFromImage(out)


def overlap_fraction(volume: Volume, reference: Volume) -> float:
    """Fraction of ``reference``'s voxels whose centres lie inside ``volume``'s field of view."""
    return float(_covered(volume, reference).mean())


def coverage_fractions(volume: Volume, reference: Volume, mask: np.ndarray | None = None) -> tuple[float, float | None]:
    """``(field-of-view fraction, mask fraction)``: the fractions of ``reference``'s voxels, and of the
    voxels where ``mask`` [D, H, W] (on ``reference``'s grid) is non-zero, that ``volume`` covers (None
    without a mask or with an empty one)."""
    covered = _covered(volume, reference)
    inside = None
    if mask is not None:
        if tuple(mask.shape) != reference.shape:
            raise ValueError(f"mask shape {tuple(mask.shape)} is not the reference grid {reference.shape}")
        sel = np.asarray(mask) > 0
        inside = float(covered[sel].mean()) if sel.any() else None
    return float(covered.mean()), inside


def check_coverage(
    volume: Volume, reference: Volume, sequence: str, gland: np.ndarray | None = None,
    min_fov: float = MIN_FOV_COVERAGE, min_gland: float = MIN_GLAND_COVERAGE,
) -> tuple[float, float | None]:
    """Refuse a sequence that would be zero-filled over too much of the grid it is resampled onto.

    With a (non-empty) gland mask the gland decides: at least ``min_gland`` of its voxels must lie inside
    ``volume`` (and :data:`MIN_OVERLAP` of the whole grid); without one, at least ``min_fov`` of the
    reference grid must. See :data:`MIN_FOV_COVERAGE` and :data:`MIN_GLAND_COVERAGE` for the measured
    values behind the defaults.

    Args:
        volume: the sequence (e.g. the ADC) on its own grid.
        reference: the T2W it will be resampled onto.
        sequence: its name for the message (``"adc"``, ``"hbv"``).
        gland: optional [D, H, W] gland mask on ``reference``'s grid.
        min_fov, min_gland: the thresholds (fractions in [0, 1]).

    Returns:
        ``(field-of-view fraction, gland fraction or None)``.

    Raises:
        DataError: naming the file, the sequence, the reference and the covered fraction.
    """
    fov, inside = coverage_fractions(volume, reference, gland)
    dist = float(np.linalg.norm(np.subtract(volume.origin, reference.origin)))
    where = (f"origins {dist:.1f} mm apart: not the same exam, a wrong origin/direction in its header, or a "
             "field of view too small for this study")
    if inside is not None and (inside < min_gland or fov < MIN_OVERLAP):
        raise DataError(f"{volume.path}: {sequence} covers {inside:.1%} of the gland mask and {fov:.1%} of the "
                        f"grid of {reference.path} (need >= {min_gland:.0%} of the gland and >= {MIN_OVERLAP:.0%} "
                        f"of the grid): {1 - inside:.1%} of the gland would be zero-filled; {where}")
    if inside is None and fov < min_fov:
        raise DataError(f"{volume.path}: {sequence} covers {fov:.1%} of the grid of {reference.path} (need >= "
                        f"{min_fov:.0%}): {1 - fov:.1%} of the T2W field of view would be zero-filled; {where}")
    return fov, inside


def resample_to(
    volume: Volume, reference: Volume, interpolation: str = "linear", default: float = 0.0,
    min_overlap: float | None = None,
) -> Volume:
    """Resample ``volume`` onto the grid of ``reference`` (identity transform in world space).

    Args:
        volume: the moving image.
        reference: the image whose grid (shape, spacing, origin, direction) the result takes.
        interpolation: ``"linear"`` (result float32; images) or ``"nearest"`` (keeps the dtype; masks).
        default: value outside ``volume``'s field of view (default 0).
        min_overlap: least fraction of ``reference``'s voxels ``volume`` must cover (e.g.
            :data:`MIN_OVERLAP`); default None: no check. :func:`check_coverage` is the stricter check
            the loaders use.

    Returns:
        A :class:`Volume` on the reference grid, ``path`` = ``volume.path``.

    Raises:
        DataError: ``volume`` covers less than ``min_overlap`` of the reference grid (message: both files,
            the fraction and the distance of the origins).
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {interpolation!r}; valid: {sorted(INTERPOLATIONS)}")
    if min_overlap is not None:
        if not 0.0 <= float(min_overlap) <= 1.0:
            raise ValueError(f"min_overlap must be in [0, 1], got {min_overlap}")
        frac = overlap_fraction(volume, reference)
        if frac < float(min_overlap) or frac == 0.0:
            dist = float(np.linalg.norm(np.subtract(volume.origin, reference.origin)))
            raise DataError(
                f"{volume.path}: covers {frac:.1%} of the grid of {reference.path} (need >= {min_overlap:.0%}; "
                f"origins {dist:.1f} mm apart): not the same exam, or a wrong origin/direction in its header"
            )
    sitk = require_simpleitk(f"resampling {volume.path} onto {reference.path}")
    moving = volume.to_sitk()
    if interpolation == "linear":
        moving = sitk.Cast(moving, sitk.sitkFloat32)
    out = sitk.Resample(
        moving, reference.to_sitk(), sitk.Transform(), getattr(sitk, INTERPOLATIONS[interpolation]), float(default),
        moving.GetPixelID(),
    )
    return Volume.from_sitk(out, volume.path)


def _geometry_differences(
    a: Volume, b: Volume, atol_spacing: float, atol_origin_mm: float, atol_direction: float
) -> list[str]:
    diffs = []
    if a.shape != b.shape:
        diffs.append(f"shape (D,H,W) {a.shape} vs {b.shape}")
    ds = np.max(np.abs(np.subtract(a.spacing, b.spacing)))
    if ds > atol_spacing:
        diffs.append(f"spacing (x,y,z) {a.spacing} vs {b.spacing} (max diff {ds:.3g} mm > {atol_spacing})")
    do = float(np.linalg.norm(np.subtract(a.origin, b.origin)))
    if do > atol_origin_mm:
        diffs.append(f"origin (x,y,z) {a.origin} vs {b.origin} ({do:.3g} mm apart > {atol_origin_mm})")
    dd = np.max(np.abs(np.subtract(a.direction, b.direction)))
    if dd > atol_direction:
        diffs.append(f"direction cosines differ by up to {dd:.3g} > {atol_direction}")
    return diffs


def check_same_geometry(
    a: Volume,
    b: Volume,
    atol_spacing: float = 1e-3,
    atol_origin_mm: float = 0.5,
    atol_direction: float = 1e-3,
) -> None:
    """Raise :class:`DataError` unless ``a`` and ``b`` share a voxel grid within tolerance.

    Args:
        a, b: the two volumes (their ``path`` is named in the message).
        atol_spacing: max abs difference of any spacing component in mm (default 1e-3).
        atol_origin_mm: max Euclidean distance of the origins in mm (default 0.5).
        atol_direction: max abs difference of any direction cosine (default 1e-3; the PI-CAI
            masks of 11373_1001396 differ from their T2W by 2e-4).
    """
    diffs = _geometry_differences(a, b, atol_spacing, atol_origin_mm, atol_direction)
    if diffs:
        raise DataError(f"geometry of {a.path} differs from {b.path}: " + "; ".join(diffs))


def copy_geometry(volume: Volume, reference: Volume) -> Volume:
    """``volume``'s array with ``reference``'s spacing/origin/direction (shapes must match)."""
    if volume.shape != reference.shape:
        raise DataError(f"{volume.path}: shape {volume.shape} differs from {reference.path} {reference.shape}")
    return Volume(volume.array, reference.spacing, reference.origin, reference.direction, volume.path)

