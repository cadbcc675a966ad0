"""NIfTI through nibabel: the second reader, and the raw-header shear check SimpleITK cannot do.

SimpleITK never shows a NIfTI's shear: with a sheared sform and a qform set it silently falls back to
the (always orthonormal) qform, and with no qform it refuses the file with "ITK only supports orthonormal
direction cosines". nibabel keeps the sheared affine. :func:`check_nifti_shear` reads the header's own
affine (sform when its code is set, else qform) so that both readers refuse the same files with the
same message.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from transferlimits.data.io_volume import DataError, Volume, check_finite, check_orthonormal, short_reason

__all__ = ["read_nifti_nibabel", "check_nifti_shear", "nifti_affine"]

#: RAS (NIfTI) -> LPS (ITK) world coordinates.
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def nifti_affine(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """The header's voxel-to-RAS affine and which one it is (``"sform"``, ``"qform"`` or ``"pixdim"``).

    Reads the header only (for ``.nii.gz`` the first few hundred bytes are decompressed).

    Raises:
        DataError: the header cannot be read.
    """
    try:
        header = nib.load(str(path)).header
    except Exception as exc:  # nibabel raises several types for corrupt input
        raise DataError(f"{path}: cannot read NIfTI header with nibabel: {short_reason(exc)}") from exc
    if int(header["sform_code"]) > 0:
        return np.asarray(header.get_sform(), np.float64), "sform"
    if int(header["qform_code"]) > 0:
        return np.asarray(header.get_qform(), np.float64), "qform"
    return np.asarray(header.get_base_affine(), np.float64), "pixdim"


def check_nifti_shear(path: str | os.PathLike) -> None:
    """Raise :class:`DataError` when the NIfTI header's affine is sheared (see :func:`check_orthonormal`)."""
    affine, which = nifti_affine(path)
    check_orthonormal(affine[:3, :3], path, what=f"{which} affine")


def read_nifti_nibabel(path: str | os.PathLike) -> Volume:
    """Read a NIfTI file with nibabel, converted to SimpleITK's convention (LPS, array [D, H, W]).

    nibabel's best affine (sform if set, else qform) maps voxel (i, j, k) to RAS; flipping the first
    two rows gives LPS. Spacing is the column norm of the affine, direction the normalised columns.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.

    Raises:
        DataError: missing or unreadable file, a sheared affine (naming the axes and the |cos| between
            them), NaN/inf voxels.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj)
    except Exception as exc:  # nibabel raises several types for corrupt input
        raise DataError(f"{path}: cannot read NIfTI with nibabel: {short_reason(exc)}") from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    affine = _RAS_TO_LPS @ np.asarray(img.affine, dtype=np.float64)
    check_orthonormal(affine[:3, :3], path, what="sform affine" if int(img.header["sform_code"]) > 0 else
                      "qform affine")
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    direction = affine[:3, :3] / spacing
    return check_finite(Volume(np.ascontiguousarray(data.transpose(2, 1, 0)), spacing, affine[:3, 3],
                               direction.ravel(), path))
