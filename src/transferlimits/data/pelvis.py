"""Procedural pelvis around the prostate and smooth random fields for the phantom generator.

Coordinates are mm relative to the crop centre (= gland centre), array order (z, y, x): z grows
toward the head (superior), y toward the back (posterior, LPS), x toward the patient's left. The
pelvis is a set of seeded ellipses/ellipsoids placed relative to the gland's extent:

* body outline: an axial ellipse (the ``body`` mask); outside it is air;
* bladder: an ellipsoid anterior-superior to the gland (urine);
* rectum: a tube posterior to the gland with a muscular wall and an air/gas lumen;
* muscle: obturator internus lateral to the gland and a levator-ani shell behind it;
* bone: pubic symphysis anterior to the gland (optional, drawn with probability 0.8);
* fat: the rest of the body.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sp_fft

from transferlimits.config import GridSpec

__all__ = ["TISSUE_NAMES", "build_pelvis", "smooth_field", "grid_coordinates"]

TISSUE_NAMES: tuple[str, ...] = (
    "air", "fat", "muscle", "urine", "rectal_wall", "rectal_air", "bone", "pz", "tz", "gland_other",
)
_T = {n: i for i, n in enumerate(TISSUE_NAMES)}


def grid_coordinates(grid: GridSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broadcastable (z, y, x) mm coordinates of the voxel centres relative to the grid centre."""
    axes = [(np.arange(n) - (n - 1) / 2.0) * s for n, s in zip(grid.shape, grid.spacing)]
    return axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :]


def smooth_field(grid: GridSpec, corr_mm: float, rng: np.random.Generator) -> np.ndarray:
    """A zero-mean, unit-std smooth random field on ``grid`` (float32 [D, H, W]).

    White noise low-pass filtered in Fourier space by a Gaussian of standard deviation ``corr_mm / 2``
    (periodic boundaries); the correlation length is about ``corr_mm``.
    """
    if corr_mm <= 0:
        raise ValueError(f"corr_mm must be > 0, got {corr_mm}")
    shape = tuple(grid.shape)
    spec = sp_fft.rfftn(rng.standard_normal(shape).astype(np.float32), workers=1)
    sigma = corr_mm / 2.0
    freqs = [sp_fft.fftfreq(n, d=s) for n, s in zip(shape[:-1], grid.spacing[:-1])]
    freqs.append(sp_fft.rfftfreq(shape[-1], d=grid.spacing[-1]))
    for axis, f in enumerate(freqs):
        gain = np.exp(-2.0 * (np.pi * f * sigma) ** 2).astype(np.float32)
        spec *= gain.reshape([-1 if i == axis else 1 for i in range(3)])
    field = sp_fft.irfftn(spec, s=shape, workers=1).astype(np.float32)
    field -= field.mean()
    return field / max(float(field.std()), 1e-6)


def _ellipse(coords, centre, radii) -> np.ndarray:
    r = sum(((c - c0) / rr) ** 2 for c, c0, rr in zip(coords, centre, radii))
    return r <= 1.0


def _gland_extent(coords, gland: np.ndarray) -> list[tuple[float, float]]:
    """(min, max) mm of the gland along z, y, x (a default box when the mask is empty)."""
    if not gland.any():
        return [(-15.0, 15.0), (-15.0, 15.0), (-20.0, 20.0)]
    idx = np.nonzero(gland)
    return [(float(a[i].min()), float(a[i].max())) for a, i in zip((c.ravel() for c in coords), idx)]


def _add_rectum(tissue: np.ndarray, coords, y1: float, rng: np.random.Generator) -> None:
    """Rectum: a tube behind the gland (posterior edge ``y1``), centre drifting slightly with z; wall + air lumen."""
    z, y, x = coords
    shape = tissue.shape
    r_ap, r_lr = rng.uniform(9, 14), rng.uniform(14, 20)
    rect_y = y1 + r_ap + rng.uniform(1, 4) + 0.1 * rng.uniform(-1, 1) * z
    rect_x = rng.uniform(-4, 4) + 0.05 * z
    wall = _ellipse((y, x), (rect_y, rect_x), (r_ap, r_lr))
    tissue[np.broadcast_to(wall, shape)] = _T["rectal_wall"]
    air_frac = rng.uniform(0.3, 0.75)
    lumen = _ellipse((y, x), (rect_y, rect_x), (r_ap * air_frac, r_lr * air_frac))
    tissue[np.broadcast_to(lumen, shape)] = _T["rectal_air"]


def build_pelvis(grid: GridSpec, gland: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Tissue labels (indices into :data:`TISSUE_NAMES`) of the pelvis and the body mask.

    Args:
        grid: the target grid.
        gland: bool [D, H, W] gland mask on ``grid`` (used to place organs around it).
        rng: the case's random generator.

    Returns:
        ``(tissue uint8 [D, H, W], body uint8 [D, H, W])``; gland voxels are left as fat here (the
        caller blends the gland in with partial volume).
    """
    z, y, x = grid_coordinates(grid)
    (z0, z1), (y0, y1), (x0, x1) = _gland_extent((z, y, x), gland)
    half_w = max(abs(x0), abs(x1))
    shape = tuple(grid.shape)
    tissue = np.full(shape, _T["fat"], np.uint8)

    # body outline (axial ellipse, all slices); anterior abdominal wall far in front of the gland
    ap, lr = rng.uniform(75, 110), rng.uniform(130, 180)
    body_cy = y1 + rng.uniform(35, 70) - ap
    body = np.broadcast_to(_ellipse((y, x), (body_cy, 0.0), (ap, lr)), shape)

    # muscle: obturator internus (both sides) and a levator-ani shell behind/beside the gland
    ox, oy = half_w + rng.uniform(18, 26), rng.uniform(-5, 10)
    for side in (-1.0, 1.0):
        obturator = _ellipse((y, x), (oy, side * ox), (rng.uniform(28, 38), rng.uniform(11, 16)))
        tissue[np.broadcast_to(obturator, shape)] = _T["muscle"]
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    ry, rx = (y1 - y0) / 2 + rng.uniform(6, 10), (x1 - x0) / 2 + rng.uniform(6, 10)
    thick = rng.uniform(5, 8)
    outer = _ellipse((y, x), (cy, cx), (ry + thick, rx + thick)) & ~_ellipse((y, x), (cy, cx), (ry, rx)) & (y > cy)
    tissue[np.broadcast_to(outer, shape)] = _T["muscle"]

    # bone: pubic symphysis anterior to the gland, upper part of the crop
    if rng.uniform() < 0.8:
        py = y0 - rng.uniform(15, 25)
        for side in (-1.0, 1.0):
            m = _ellipse((z, y, x), (z1, py, side * 9.0), (rng.uniform(20, 30), 9.0, 7.0))
            tissue[m] = _T["bone"]

    _add_rectum(tissue, (z, y, x), y1, rng)

    # bladder: ellipsoid anterior-superior to the gland
    bz, by = z1 + rng.uniform(10, 25), y0 + rng.uniform(0, 10)
    bladder = _ellipse((z, y, x), (bz, by, 0.0), (rng.uniform(18, 30), rng.uniform(22, 35), rng.uniform(28, 45)))
    tissue[bladder] = _T["urine"]

    tissue[~body] = _T["air"]
    return tissue, np.ascontiguousarray(body, dtype=np.uint8)
