"""Reading medical volumes (.mha, .nii/.nii.gz, DICOM series) into one geometry-keeping type.

Every reader returns a :class:`Volume`: the voxel array in SimpleITK order ``[D, H, W]`` = (z, y, x)
plus the physical geometry in ITK (x, y, z) order and LPS world coordinates (spacing, origin, 3x3
direction cosines, row-major). Bad input raises :class:`DataError` naming the file and the problem::

    t2w = read_volume("11373/11373_1001396_t2w.mha")
    adc = resample_to(read_volume("11373/11373_1001396_adc.mha"), t2w, min_overlap=MIN_OVERLAP)
    check_same_geometry(read_volume("mask.nii.gz"), t2w)                   # DataError if they differ

Images with NaN/inf voxels, empty, truncated or corrupt files, and a sequence that covers less than
``min_overlap`` of the grid it is resampled onto (an ADC whose origin is 500 mm off would otherwise
become all zeros) are refused with the file named.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

__all__ = [
    "DataError",
    "Volume",
    "read_volume",
    "read_nifti_nibabel",
    "list_dicom_series",
    "resample_to",
    "check_same_geometry",
    "copy_geometry",
    "overlap_fraction",
    "check_finite",
    "VOLUME_SUFFIXES",
    "MIN_OVERLAP",
]

#: File suffixes :func:`read_volume` accepts (besides DICOM series folders).
VOLUME_SUFFIXES: tuple[str, ...] = (".mha", ".mhd", ".nii", ".nii.gz", ".nrrd")
INTERPOLATIONS: dict[str, int] = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor}
#: Least fraction of the T2W grid a resampled sequence must cover (the shipped ADC/hbv cover 0.875;
#: a sequence from another exam or with a wrong origin covers ~0).
MIN_OVERLAP = 0.25


class DataError(ValueError):
    """Input data that cannot be used: missing, unreadable or corrupt file, or mismatched geometry."""


@dataclass
class Volume:
    """A 3D image with its physical geometry.

    Attributes:
        array: [D, H, W] voxel values (SimpleITK array order, i.e. (z, y, x)).
        spacing: (x, y, z) voxel size in mm (ITK order).
        origin: (x, y, z) LPS position of voxel (0, 0, 0) in mm.
        direction: 9 direction cosines, row-major 3x3 (ITK convention, columns = image axes).
        path: the file or folder it was read from (None for derived volumes without a file).
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    path: Path | None = None

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise DataError(f"{self.path}: expected a 3D volume, got array shape {self.array.shape}")
        self.spacing = tuple(float(s) for s in self.spacing)  # type: ignore[assignment]
        self.origin = tuple(float(o) for o in self.origin)  # type: ignore[assignment]
        self.direction = tuple(float(d) for d in self.direction)
        if len(self.spacing) != 3 or len(self.origin) != 3 or len(self.direction) != 9:
            raise DataError(
                f"{self.path}: need 3 spacings, 3 origin values and 9 direction cosines, got "
                f"{len(self.spacing)}, {len(self.origin)}, {len(self.direction)}"
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        """(D, H, W) voxels."""
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        """Voxel size in mm in array order (z, y, x)."""
        return tuple(reversed(self.spacing))  # type: ignore[return-value]

    @property
    def direction_matrix(self) -> np.ndarray:
        """[3, 3] direction cosines (columns are the x, y, z image axes in LPS)."""
        return np.asarray(self.direction, dtype=np.float64).reshape(3, 3)

    @classmethod
    def from_sitk(cls, img: sitk.Image, path: str | os.PathLike | None = None) -> "Volume":
        """Wrap a 3D single-component SimpleITK image (the array is copied out of ITK)."""
        if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
            raise DataError(
                f"{path}: expected a 3D scalar image, got dimension {img.GetDimension()} with "
                f"{img.GetNumberOfComponentsPerPixel()} component(s)"
            )
        return cls(
            array=sitk.GetArrayFromImage(img),
            spacing=img.GetSpacing(),
            origin=img.GetOrigin(),
            direction=img.GetDirection(),
            path=Path(path) if path is not None else None,
        )

    def to_sitk(self) -> sitk.Image:
        """A SimpleITK image with this array and geometry."""
        img = sitk.GetImageFromArray(np.ascontiguousarray(self.array))
        img.SetSpacing(self.spacing)
        img.SetOrigin(self.origin)
        img.SetDirection(self.direction)
        return img

    def index_to_world(self, index_zyx: Sequence[float]) -> np.ndarray:
        """LPS (x, y, z) mm of a continuous voxel index given in array order (z, y, x)."""
        ijk = np.asarray(index_zyx, dtype=np.float64)[::-1]
        return np.asarray(self.origin) + self.direction_matrix @ (ijk * np.asarray(self.spacing))


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def list_dicom_series(folder: str | os.PathLike) -> list[str]:
    """SeriesInstanceUIDs of the DICOM series directly inside ``folder`` (empty list if none)."""
    return list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or [])


def _read_dicom_series(folder: Path, series_uid: str | None) -> Volume:
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
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_uid)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        img = reader.Execute()
    except RuntimeError as exc:
        raise DataError(f"{folder}: cannot read DICOM series {series_uid}: {_short(exc)}") from exc
    return Volume.from_sitk(img, folder)


def _dicom_series_uid(path: Path) -> str | None:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise DataError(f"{path}: unreadable DICOM file: {_short(exc)}") from exc
    return reader.GetMetaData("0020|000e").strip() if reader.HasMetaDataKey("0020|000e") else None


def _short(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


def read_nifti_nibabel(path: str | os.PathLike) -> Volume:
    """Read a NIfTI file with nibabel, converted to SimpleITK's convention (LPS, array [D, H, W]).

    nibabel's best affine (sform if set, else qform) maps voxel (i, j, k) to RAS; flipping the first
    two rows gives LPS. Spacing is the column norm of the affine, direction the normalised columns.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj)
    except Exception as exc:  # nibabel raises several types for corrupt input
        raise DataError(f"{path}: cannot read NIfTI with nibabel: {_short(exc)}") from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(img.affine, dtype=np.float64)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    direction = affine[:3, :3] / spacing
    return check_finite(Volume(np.ascontiguousarray(data.transpose(2, 1, 0)), spacing, affine[:3, 3],
                               direction.ravel(), path))


def read_volume(path: str | os.PathLike, series_uid: str | None = None) -> Volume:
    """Read one 3D volume from a file (.mha, .mhd, .nii, .nii.gz, .nrrd) or a DICOM series folder.

    Args:
        path: an image file, or a folder holding the files of DICOM series.
        series_uid: SeriesInstanceUID to pick when a folder holds several series (default None: the
            folder must hold exactly one).

    Returns:
        The :class:`Volume` (array dtype as stored in the file).

    Raises:
        DataError: missing path, unsupported suffix, unreadable/corrupt file, empty DICOM folder, or
            an ambiguous multi-series folder (the message lists the series).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        return _read_dicom_series(path, series_uid)
    suffix = _suffix(path)
    if suffix not in VOLUME_SUFFIXES and suffix != ".dcm":
        raise DataError(f"{path}: unsupported file type {suffix!r}; valid: {list(VOLUME_SUFFIXES)} or a DICOM folder")
    if suffix == ".dcm":  # the whole series this file belongs to
        if series_uid is None:
            series_uid = _dicom_series_uid(path)
        return _read_dicom_series(path.parent, series_uid)
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path}: empty image file (0 bytes): truncated copy?")
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        reason = _short(exc)
        if "No such file" in reason or "Unable to determine ImageIO" in reason:  # ITK's words for a torn file
            reason = "the header or the voxel data is incomplete"
        raise DataError(f"{path}: truncated or corrupt image file ({size} bytes): {reason}") from exc
    return check_finite(Volume.from_sitk(img, path))


def check_finite(volume: Volume, what: str = "") -> Volume:
    """Return ``volume`` if all voxels are finite, else raise :class:`DataError` naming the file (or
    ``what``, e.g. a case id) and the number of NaN/inf voxels."""
    arr = volume.array
    if np.issubdtype(arr.dtype, np.floating):
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise DataError(f"{what or volume.path}: {bad} of {arr.size} voxels are NaN or infinite")
    return volume


def overlap_fraction(volume: Volume, reference: Volume) -> float:
    """Fraction of ``reference``'s voxels whose centres lie inside ``volume``'s field of view."""
    ones = Volume(np.ones(volume.shape, np.uint8), volume.spacing, volume.origin, volume.direction, volume.path)
    out = sitk.Resample(ones.to_sitk(), reference.to_sitk(), sitk.Transform(), sitk.sitkNearestNeighbor, 0.0,
                        sitk.sitkUInt8)
    return float(sitk.GetArrayViewFromImage(out).mean())


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
            :data:`MIN_OVERLAP`); default None: no check.

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
    moving = volume.to_sitk()
    if interpolation == "linear":
        moving = sitk.Cast(moving, sitk.sitkFloat32)
    out = sitk.Resample(
        moving, reference.to_sitk(), sitk.Transform(), INTERPOLATIONS[interpolation], float(default),
        moving.GetPixelID(),
    )
    res = Volume.from_sitk(out, volume.path)
    return res


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

