"""Image degradations of the restoration tasks: through-plane resolution loss and EPI distortion.

* :func:`through_plane_degrade` - super-resolution input: average groups of ``factor`` adjacent axial
  slices (a thick-slice acquisition), then resample linearly back onto the original slice positions.
* :func:`epi_distortion` - distortion-correction input: a smooth B0 off-resonance field (a low-frequency
  random field plus a susceptibility bump around an optional mask, e.g. rectal gas) gives a displacement
  along the phase-encode axis, here H (anterior-posterior, axis 1), with Jacobian intensity modulation.
  The model is ``distorted(y) = image(y + u(y)) * (1 + du/dy)``, which conserves the integral of the
  signal along each phase-encode line. :func:`undistort` inverts it given ``u`` (fixed-point inverse).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from transferlimits.data.regrid import resize_to_shape

__all__ = ["through_plane_degrade", "epi_distortion", "undistort", "warp_along_axis"]

PE_AXIS = 1  # phase-encode axis of the [D, H, W] arrays: H = anterior-posterior


def through_plane_degrade(vol: np.ndarray, factor: int = 2, offset: int = 0) -> np.ndarray:
    """Reduce the through-plane (D) resolution by ``factor``, then resample back to the input shape.

    Args:
        vol: [D, H, W] image.
        factor: number of adjacent slices averaged into one thick slice (default 2; the first and last groups
            are padded by repeating the edge slice).
        offset: where the first thick slice starts, in slices (0 <= offset < factor; default 0): the thick
            slices cover ``[k * factor - offset, (k + 1) * factor - offset)``. A random offset per case keeps a
            model from learning the thick slices' position from the grid instead of from the image.

    Returns:
        float32 [D, H, W].
    """
    vol = np.asarray(vol, np.float32)
    if vol.ndim != 3:
        raise ValueError(f"vol must be [D, H, W], got shape {vol.shape}")
    if int(factor) < 1 or int(factor) != factor:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    factor = int(factor)
    if not 0 <= int(offset) < factor:
        raise ValueError(f"offset must be in [0, factor={factor}), got {offset}")
    offset = int(offset)
    if factor == 1:
        return vol.copy()
    d = vol.shape[0]
    n = -(-(d + offset) // factor)
    padded = np.pad(vol, [(offset, n * factor - d - offset), (0, 0), (0, 0)], mode="edge")
    thick = padded.reshape(n, factor, *vol.shape[1:]).mean(1)
    # thick slice i is centred at (i + 0.5) * factor - 0.5 - offset in original slice units
    z = (np.arange(d) + offset + 0.5) / factor - 0.5
    z = np.clip(z, 0, n - 1)
    lo = np.floor(z).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    w = (z - lo).astype(np.float32)[:, None, None]
    return (thick[lo] * (1 - w) + thick[hi] * w).astype(np.float32)


def warp_along_axis(vol: np.ndarray, shift: np.ndarray, axis: int = PE_AXIS, order: int = 3) -> np.ndarray:
    """Sample ``vol`` at index + ``shift`` along ``axis`` (cubic spline by default, edges clamped)."""
    coords = list(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in vol.shape], indexing="ij"))
    coords[axis] = coords[axis] + shift
    return ndimage.map_coordinates(np.asarray(vol, np.float32), coords, order=order, mode="nearest")


def epi_distortion(
    vol: np.ndarray,
    spacing: tuple[float, float, float],
    rng: np.random.Generator,
    max_shift_mm: float = 4.0,
    mask: np.ndarray | None = None,
    corr_mm: float = 40.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulated EPI susceptibility distortion along the phase-encode axis (H).

    Args:
        vol: [D, H, W] image to distort (e.g. high-b DWI).
        spacing: (z, y, x) voxel size in mm.
        rng: random generator (the field is drawn from it).
        max_shift_mm: largest |displacement| in mm (default 4.0).
        mask: optional bool [D, H, W] susceptibility source (e.g. rectal gas); a Gaussian bump of
            off-resonance (sigma 10 mm) is centred on it, holding about 60 % of ``max_shift_mm``.
        corr_mm: correlation length of the low-frequency field in mm (default 40).

    Returns:
        ``(distorted float32 [D, H, W], displacement float32 [D, H, W])``, the displacement in voxels
        along axis 1 (H).
    """
    vol = np.asarray(vol, np.float32)
    if vol.ndim != 3:
        raise ValueError(f"vol must be [D, H, W], got shape {vol.shape}")
    if max_shift_mm < 0:
        raise ValueError(f"max_shift_mm must be >= 0, got {max_shift_mm}")
    coarse = tuple(max(2, int(np.ceil(n * s / corr_mm)) + 1) for n, s in zip(vol.shape, spacing))
    field = resize_to_shape(rng.standard_normal(coarse).astype(np.float32), vol.shape, order=3)
    field /= max(float(np.abs(field).max()), 1e-6)
    shift_mm = (0.4 if mask is not None else 1.0) * field
    if mask is not None:
        if mask.shape != vol.shape:
            raise ValueError(f"mask shape {mask.shape} differs from vol {vol.shape}")
        sig = [10.0 / s for s in spacing]
        bump = ndimage.gaussian_filter(np.asarray(mask, np.float32), sig)
        if bump.max() > 0:
            shift_mm = shift_mm + 0.6 * rng.choice([-1.0, 1.0]) * bump / bump.max()
    peak = max(float(np.abs(shift_mm).max()), 1e-6)
    shift_vox = (shift_mm / peak * max_shift_mm / spacing[PE_AXIS]).astype(np.float32)
    jac = 1.0 + np.gradient(shift_vox, axis=PE_AXIS)
    distorted = warp_along_axis(vol, shift_vox) * np.clip(jac, 0.05, None)
    return distorted.astype(np.float32), shift_vox


def undistort(distorted: np.ndarray, displacement: np.ndarray, iterations: int = 8) -> np.ndarray:
    """Approximate inverse of :func:`epi_distortion` for a known displacement (voxels along H).

    The inverse map ``x -> x + v(x)`` solves ``v(x) = -u(x + v(x))`` by fixed-point iteration; the
    intensity is divided by the forward Jacobian at the pulled-back position.
    """
    if distorted.shape != displacement.shape:
        raise ValueError(f"shapes differ: distorted {distorted.shape} vs displacement {displacement.shape}")
    u = np.asarray(displacement, np.float32)
    v = -u.copy()
    for _ in range(int(iterations)):
        v = -warp_along_axis(u, v)
    jac = np.clip(1.0 + np.gradient(u, axis=PE_AXIS), 0.05, None)
    return (warp_along_axis(distorted, v) / warp_along_axis(jac, v)).astype(np.float32)
