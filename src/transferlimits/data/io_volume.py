"""The geometry-keeping volume type shared by every reader, its error type and the shear check.

:class:`Volume` holds the voxel array in SimpleITK order ``[D, H, W]`` = (z, y, x) plus the physical
geometry in ITK (x, y, z) order and LPS world coordinates (spacing, origin, 3x3 direction cosines,
row-major). Readers live in :mod:`transferlimits.data.io` (files), :mod:`.io_dicom` (DICOM series)
and :mod:`.io_nifti` (nibabel); all of them are re-exported by :mod:`transferlimits.data.io`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    import SimpleITK as sitk

__all__ = ["DataError", "Volume", "MAX_SHEAR", "off_orthogonality", "check_orthonormal", "check_finite",
           "short_reason", "file_suffix", "require_simpleitk", "have_simpleitk"]

#: Largest tolerated off-orthogonality of a direction matrix (max |D^T D - I| over the off-diagonal
#: entries, D = the unit-normalised columns). Measured on the shipped data: 6000 picai_labels masks
#: (sform/qform of /work/shared/data/picai_labels) <= 8.1e-8, the six shipped .mha and the three ProstateX-0218
#: series <= 2.7e-17 (float32 / float64 round-off); a real shear is ~1e-2 and more (0.1 mm per mm gives 0.196). 1e-4 leaves three
#: orders of magnitude on both sides.
MAX_SHEAR = 1e-4


class DataError(ValueError):
    """Input data that cannot be used: missing, unreadable or corrupt file, or mismatched geometry."""


def have_simpleitk() -> bool:
    """Whether SimpleITK can be imported (the compute path on an accelerator runs without it)."""
    try:
        import SimpleITK  # noqa: F401  (optional heavy package, imported only where it is used)
    except ImportError:
        return False
    return True


def require_simpleitk(what: str) -> Any:
    """The SimpleITK module, imported on first use; a one-line :class:`DataError` saying ``what`` needs it.

    Args:
        what: what needs it, for the message (e.g. ``"reading DICOM series"``).
    """
    try:
        import SimpleITK
    except ImportError as exc:
        raise DataError(f"SimpleITK is needed for {what} but is not installed ({exc}); pip install SimpleITK") from exc
    return SimpleITK


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
        sitk = require_simpleitk("converting an image")
        return cls(
            array=sitk.GetArrayFromImage(img),
            spacing=img.GetSpacing(),
            origin=img.GetOrigin(),
            direction=img.GetDirection(),
            path=Path(path) if path is not None else None,
        )

    def to_sitk(self) -> sitk.Image:
        """A SimpleITK image with this array and geometry."""
        sitk = require_simpleitk("converting a volume to a SimpleITK image")
        img = sitk.GetImageFromArray(np.ascontiguousarray(self.array))
        img.SetSpacing(self.spacing)
        img.SetOrigin(self.origin)
        img.SetDirection(self.direction)
        return img

    def index_to_world(self, index_zyx: Sequence[float]) -> np.ndarray:
        """LPS (x, y, z) mm of a continuous voxel index given in array order (z, y, x)."""
        ijk = np.asarray(index_zyx, dtype=np.float64)[::-1]
        return np.asarray(self.origin) + self.direction_matrix @ (ijk * np.asarray(self.spacing))


def off_orthogonality(matrix: np.ndarray) -> tuple[float, tuple[int, int]]:
    """How far the columns of a 3x3 matrix are from mutually orthogonal.

    Args:
        matrix: [3, 3] direction cosines or an affine's linear part (columns = image axes; their
            lengths are ignored).

    Returns:
        ``(value, (i, j))``: the largest |cos| of the angle between two columns i < j (0 for an
        orthonormal matrix; 0.196 for a shear of 0.1 mm per mm at 0.5 mm spacing) and the pair.
    """
    m = np.asarray(matrix, dtype=np.float64).reshape(3, 3)
    norms = np.linalg.norm(m, axis=0)
    if np.any(norms == 0) or not np.all(np.isfinite(m)):
        return float("inf"), (0, 0)
    d = m / norms
    gram = np.abs(d.T @ d - np.eye(3))
    i, j = np.unravel_index(int(np.argmax(np.triu(gram, 1))), gram.shape)
    return float(gram[i, j]), (int(i), int(j))


def check_orthonormal(matrix: np.ndarray, path: str | os.PathLike | None, what: str = "direction matrix",
                      tol: float = MAX_SHEAR) -> None:
    """Raise :class:`DataError` when ``matrix`` is sheared (columns not orthogonal within ``tol``).

    Args:
        matrix: [3, 3] direction cosines or an affine's linear part (columns = image axes).
        path: the file, for the message.
        what: what the matrix is, for the message (e.g. ``"sform affine"``).
        tol: largest tolerated |cos| between two axes (default :data:`MAX_SHEAR`).
    """
    value, (i, j) = off_orthogonality(matrix)
    if value > tol:
        axes = "xyz"
        angle = float(np.degrees(np.arcsin(min(1.0, value)))) if np.isfinite(value) else float("nan")
        raise DataError(
            f"{path}: sheared {what}: image axes {axes[i]} and {axes[j]} are not orthogonal (|cos| = {value:.3g}, "
            f"{angle:.2f} deg off 90; tolerance {tol:g}); SimpleITK would silently orthonormalise or refuse it and "
            "nibabel keeps the shear, so voxels would land at different places: fix the header (re-save the "
            "image with an orthonormal direction)"
        )


def check_finite(volume: Volume, what: str = "") -> Volume:
    """Return ``volume`` if all voxels are finite, else raise :class:`DataError` naming the file (or
    ``what``, e.g. a case id) and the number of NaN/inf voxels."""
    arr = volume.array
    if np.issubdtype(arr.dtype, np.floating):
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise DataError(f"{what or volume.path}: {bad} of {arr.size} voxels are NaN or infinite")
    return volume


def short_reason(exc: Exception) -> str:
    """The last non-empty line of an exception's text (ITK puts the reason there)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


def file_suffix(path: Path) -> str:
    """Lower-case suffix, ``.nii.gz`` kept whole."""
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()
