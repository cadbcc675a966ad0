"""Resampling label geometry and cases onto a profile grid: an axis-aligned crop centred on the gland.

Every grid in this project is axis-aligned in array order (z, y, x) (the PI-CAI T2W grids are axial), so
moving from a source grid to a target :class:`~transferlimits.config.GridSpec` is a diagonal affine map
(scale + shift) in voxel indices. The target crop is centred on the centre of mass of the gland, so the
gland lies in the middle of every crop whatever the source field of view::

    centre = gland_centre_index(zones, spacing)
    t2w = resample_array(case.t2w, case.spacing, grid, centre, order=1)

Voxels of the crop that fall outside the source field of view get ``cval`` (default 0). Because the map is
diagonal, interpolation is done separably, one axis at a time (much faster than a general affine).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from transferlimits.config import GridSpec
from transferlimits.data.case import MRCase

__all__ = ["gland_centre_index", "resample_array", "resample_onehot", "case_to_grid", "resize_to_shape"]


def gland_centre_index(zones: np.ndarray) -> np.ndarray:
    """Centre of mass (continuous voxel index, z, y, x) of ``zones > 0``; the array centre when empty."""
    mask = np.asarray(zones) > 0
    if not mask.any():
        return (np.asarray(mask.shape, dtype=np.float64) - 1.0) / 2.0
    return np.asarray(ndimage.center_of_mass(mask), dtype=np.float64)


def _affine(src_spacing, grid: GridSpec, centre_index) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) so that source index = scale * target index + offset."""
    scale = np.asarray(grid.spacing, dtype=np.float64) / np.asarray(src_spacing, dtype=np.float64)
    target_centre = (np.asarray(grid.shape, dtype=np.float64) - 1.0) / 2.0
    offset = np.asarray(centre_index, dtype=np.float64) - scale * target_centre
    return scale, offset


def resample_array(
    array: np.ndarray,
    src_spacing: tuple[float, float, float],
    grid: GridSpec,
    centre_index,
    order: int = 1,
    cval: float = 0.0,
) -> np.ndarray:
    """Resample a [D, H, W] array onto ``grid`` centred at ``centre_index`` of the source.

    Args:
        array: source [D, H, W] array.
        src_spacing: (z, y, x) mm of the source voxels.
        grid: target grid (shape and spacing).
        centre_index: continuous (z, y, x) source index mapped to the target's centre.
        order: 0 nearest (labels) or 1 linear (images), applied separably per axis (default 1).
        cval: value outside the source field of view (default 0).

    Returns:
        float32 (order >= 1) or the source dtype (order 0) array of shape ``grid.shape``.
    """
    if order not in (0, 1):
        raise ValueError(f"order must be 0 (nearest) or 1 (linear), got {order}")
    scale, offset = _affine(src_spacing, grid, centre_index)
    out = np.asarray(array) if order == 0 else np.asarray(array, dtype=np.float32)
    for axis, (n_out, sc, off) in enumerate(zip(grid.shape, scale, offset)):
        out = _resample_axis(out, axis, int(n_out), float(sc), float(off), order, cval)
    return np.ascontiguousarray(out)


def _resample_axis(arr: np.ndarray, axis: int, n_out: int, scale: float, offset: float, order: int,
                   cval: float) -> np.ndarray:
    """Separable 1D resampling along ``axis``: output i samples input position scale * i + offset."""
    n_in = arr.shape[axis]
    pos = scale * np.arange(n_out, dtype=np.float64) + offset
    shape = [1] * arr.ndim
    shape[axis] = n_out
    if order == 0:
        idx = np.rint(pos).astype(np.int64)
        valid = (idx >= 0) & (idx < n_in)
        out = np.take(arr, np.clip(idx, 0, n_in - 1), axis=axis)
    else:
        valid = (pos >= -0.5) & (pos <= n_in - 0.5)
        p = np.clip(pos, 0, n_in - 1)
        i0 = np.minimum(np.floor(p).astype(np.int64), max(n_in - 2, 0))
        i1 = np.minimum(i0 + 1, n_in - 1)
        w = (p - i0).astype(np.float32).reshape(shape)
        out = np.take(arr, i0, axis=axis) * (1 - w) + np.take(arr, i1, axis=axis) * w
    if not valid.all():
        out = np.where(valid.reshape(shape), out, np.asarray(cval, dtype=out.dtype))
    return out


def resample_onehot(labels: np.ndarray, n_classes: int, src_spacing, grid: GridSpec, centre_index) -> np.ndarray:
    """Soft class maps [K, D, H, W] (float32, sum 1): linear interpolation of the one-hot labels.

    Linear interpolation of one-hot maps gives smooth label boundaries (partial volume) on the target
    grid; the argmax gives the hard labels.
    """
    soft = np.empty((n_classes,) + tuple(grid.shape), np.float32)
    for k in range(1, n_classes):
        soft[k] = resample_array((labels == k).astype(np.float32), src_spacing, grid, centre_index, 1, 0.0)
    soft[0] = np.clip(1.0 - soft[1:].sum(0), 0.0, 1.0)
    return soft


def resize_to_shape(array: np.ndarray, shape: tuple[int, ...], order: int = 1) -> np.ndarray:
    """Resize an array to ``shape`` (voxel centres aligned, edges clamped); float32."""
    factors = [n / o for n, o in zip(shape, array.shape)]
    out = ndimage.zoom(np.asarray(array, np.float32), factors, order=order, mode="nearest", grid_mode=True,
                       prefilter=False)
    if out.shape != tuple(shape):  # zoom rounds; pad/crop by one voxel if needed
        out = out[tuple(slice(0, n) for n in shape)]
        out = np.pad(out, [(0, n - s) for n, s in zip(shape, out.shape)], mode="edge")
    return out


def case_to_grid(case: MRCase, grid: GridSpec) -> MRCase:
    """Resample a whole :class:`MRCase` onto ``grid`` (crop centred on its gland).

    Images are interpolated linearly, masks by nearest neighbour. ``extra["crop_centre_index"]`` keeps
    the source index of the crop centre.
    """
    centre = gland_centre_index(case.zones)
    sp = case.spacing
    img = {n: resample_array(getattr(case, n), sp, grid, centre, 1) for n in ("t2w", "hbv", "adc")}
    msk = {n: resample_array(getattr(case, n), sp, grid, centre, 0) for n in ("zones", "lesion", "body")}
    extra = {k: v for k, v in case.extra.items() if not isinstance(v, np.ndarray)}
    extra["crop_centre_index"] = centre.tolist()
    return MRCase(
        case_id=case.case_id, spacing=tuple(float(s) for s in grid.spacing), clinical=dict(case.clinical),
        source=case.source, extra=extra, **img, **msk,
    )
