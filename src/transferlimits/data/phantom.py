"""Deterministic synthesis of an mpMRI phantom (T2W, high-b DWI, ADC) on real PI-CAI label geometry.

:func:`synthesize` takes a :class:`~transferlimits.data.geometry.CaseGeometry` (real zones and csPCa
lesions of one PI-CAI case) and a target :class:`~transferlimits.config.GridSpec` and returns an
:class:`~transferlimits.data.case.MRCase`. The recipe (STUDY §3):

1. the label geometry is resampled onto a crop of ``grid`` centred on the gland (linear interpolation of
   the one-hot zone/lesion maps gives partial-volume boundaries);
2. a procedural pelvis is placed around it (:mod:`transferlimits.data.pelvis`);
3. csPCa lesions get a T2W/ADC drop that grows with ISUP grade; PI-RADS >= 3 cases without a csPCa mask
   get a seeded "PI-RADS-only" lesion (label 1, conspicuity following PI-RADS);
4. T2W = tissue T2W x texture (smooth random field) x smooth bias field + Rician noise;
5. ADC and S0 are averaged down to a DWI grid of ~2 x 2 x 3 mm, high-b = S0 exp(-b ADC) with b = 1400
   s/mm^2, noise is added at that resolution (Rician on high-b, Gaussian on ADC), then both are resampled
   back (linear) onto ``grid``.

Tissue values are in :mod:`transferlimits.data.tissues` (calibrated on the two real exams). The output
depends only on (``geom.case_id``, ``seed``, ``grid``): the generator is seeded by
``SeedSequence([seed, crc32(case_id)])``.
"""

from __future__ import annotations

import zlib

import numpy as np
from scipy import ndimage

from transferlimits.config import GridSpec
from transferlimits.data.case import MRCase
from transferlimits.data.geometry import CaseGeometry
from transferlimits.data.pelvis import TISSUE_NAMES, build_pelvis, grid_coordinates, smooth_field
from transferlimits.data.regrid import gland_centre_index, resample_array, resample_onehot, resize_to_shape
from transferlimits.data.tissues import (
    B_VALUE, GENERATOR_VERSION, HBV_SCALE, LESION_CONTRAST_ISUP, LESION_CONTRAST_PIRADS, T2W_SCALE, TISSUES,
)

__all__ = ["synthesize", "case_rng", "DWI_SPACING", "MAX_DROP", "MAX_CONSPICUITY"]

#: (z, y, x) mm of the simulated DWI/ADC acquisition grid (PI-CAI ADC/hbv are 3 x 2 x 2 mm).
DWI_SPACING: tuple[float, float, float] = (3.0, 2.0, 2.0)
#: the largest fractional T2W / ADC drop of a lesion after ``lesion_conspicuity`` (a lesion keeps some signal)
MAX_DROP: float = 0.8
#: the largest ``lesion_conspicuity`` accepted
MAX_CONSPICUITY: float = 3.0
_PARAMS = np.array([[TISSUES[n].t2w, TISSUES[n].adc, TISSUES[n].hbv, TISSUES[n].texture] for n in TISSUE_NAMES],
                   dtype=np.float32)


def case_rng(case_id: str, seed: int) -> np.random.Generator:
    """The generator of one (case, seed): ``SeedSequence([seed, crc32(case_id)])``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) % (2**32), zlib.crc32(case_id.encode())]))


def _pirads_lesion(grid: GridSpec, zones: np.ndarray, pirads: int, rng: np.random.Generator) -> np.ndarray:
    """A seeded ellipsoidal finding inside the gland (PZ with p = 0.7 when present), float mask."""
    t2_drop, adc_drop, (rmin, rmax) = LESION_CONTRAST_PIRADS[min(int(pirads), 5)]
    host = 1 if (rng.uniform() < 0.7 and (zones == 1).any()) or not (zones == 2).any() else 2
    cand = np.argwhere(zones == host) if (zones == host).any() else np.argwhere(zones > 0)
    if len(cand) == 0:
        return np.zeros(zones.shape, np.float32)
    centre = cand[rng.integers(len(cand))]
    radius = rng.uniform(rmin, rmax)
    z, y, x = grid_coordinates(grid)
    c_mm = [(c - (n - 1) / 2.0) * s for c, n, s in zip(centre, grid.shape, grid.spacing)]
    r2 = ((z - c_mm[0]) / max(radius, grid.spacing[0])) ** 2 + ((y - c_mm[1]) / radius) ** 2 + (
        (x - c_mm[2]) / (radius * rng.uniform(0.8, 1.25))) ** 2
    return ((r2 <= 1.0) & (zones > 0)).astype(np.float32)


def _lowres(arr: np.ndarray, grid: GridSpec, low_shape: tuple[int, ...]) -> np.ndarray:
    size = [max(1, int(round(n / m))) for n, m in zip(grid.shape, low_shape)]
    return resize_to_shape(ndimage.uniform_filter(arr, size=size, mode="nearest"), low_shape, order=1)


def _lesion_maps(geom: CaseGeometry, grid: GridSpec, centre, zones: np.ndarray, rng: np.random.Generator,
                 conspicuity: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lesion contrast and labels on ``grid``: soft maps per csPCa grade, else a seeded PI-RADS-only finding.

    ``conspicuity`` multiplies every lesion's T2W / ADC drop (capped at :data:`MAX_DROP`); 1 = the calibrated table.

    Returns:
        ``(t2_drop, adc_drop, lesion, isup_map)``: float32 T2W / ADC drop factors, uint8 lesion label (2 csPCa,
        1 PI-RADS-only) and uint8 ISUP grade map.
    """
    t2_drop = np.zeros(grid.shape, np.float32)
    adc_drop = np.zeros(grid.shape, np.float32)
    lesion = np.zeros(grid.shape, np.uint8)
    isup_map = np.zeros(grid.shape, np.uint8)
    for grade in (int(g) for g in np.unique(geom.lesions) if g > 0):
        p = resample_array((geom.lesions == grade).astype(np.float32), geom.spacing, grid, centre, 1)
        ct2, cadc = LESION_CONTRAST_ISUP[min(grade, 5)]
        t2_drop += ct2 * p
        adc_drop += cadc * p
        hard = (p > 0.5) & (zones > 0)
        lesion[hard], isup_map[hard] = 2, grade
    pirads = geom.clinical.get("pirads")
    if pirads is not None and int(pirads) >= 3 and not (lesion == 2).any():
        p = _pirads_lesion(grid, zones, int(pirads), rng)
        ct2, cadc, _ = LESION_CONTRAST_PIRADS[min(int(pirads), 5)]
        p_s = ndimage.gaussian_filter(p, 0.6)
        t2_drop += ct2 * p_s
        adc_drop += cadc * p_s
        lesion[p > 0.5] = 1
    if conspicuity != 1.0:
        t2_drop = np.minimum(t2_drop * np.float32(conspicuity), MAX_DROP)
        adc_drop = np.minimum(adc_drop * np.float32(conspicuity), MAX_DROP)
    return t2_drop, adc_drop, lesion, isup_map


def _tissue_maps(grid: GridSpec, soft: np.ndarray, zones: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pelvis + gland parameter maps with partial-volume blending of the gland classes.

    Returns:
        ``(maps [D, H, W, 4] of (T2W, ADC, high-b, texture), body mask)``.
    """
    tissue, body = build_pelvis(grid, zones > 0, rng)
    jitter = rng.uniform(0.93, 1.07, size=(len(TISSUE_NAMES), 3)).astype(np.float32)
    params = _PARAMS.copy()
    params[:, :3] *= jitter
    pelvis = params[tissue]  # [D, H, W, 4]
    gland_p = params[[7, 8, 9]]  # pz, tz, gland_other
    return soft[0][..., None] * pelvis + np.einsum("kdhw,kc->dhwc", soft[1:], gland_p), body


def _t2w(grid: GridSpec, t2_rel: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """T2W from the relative T2W map: smooth bias field, scanner gain and Rician noise."""
    z, y, x = (c / (0.5 * max(e, 1e-6)) for c, e in zip(grid_coordinates(grid), grid.extent_mm))
    a = rng.normal(0, 0.12, size=5)
    bias = np.exp(a[0] * y + a[1] * x + a[2] * y * y + a[3] * x * x + a[4] * z)
    gain = T2W_SCALE * rng.uniform(0.85, 1.15)
    t2 = t2_rel * bias * gain
    sigma = 0.025 * gain * rng.uniform(0.7, 1.3)
    return np.hypot(t2 + rng.normal(0, sigma, grid.shape), rng.normal(0, sigma, grid.shape))


def _dwi(grid: GridSpec, adc: np.ndarray, s0: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """ADC and high-b at the lower DWI resolution with their noise, then back onto ``grid``: ``(adc, hbv)``."""
    dwi_sp = [max(a_, b_) for a_, b_ in zip(DWI_SPACING, grid.spacing)]
    low = tuple(max(2, int(round(n * s / d))) for n, s, d in zip(grid.shape, grid.spacing, dwi_sp))
    adc_lo = _lowres(adc.astype(np.float32), grid, low)
    s0_lo = _lowres(s0.astype(np.float32), grid, low)
    hbv_lo = HBV_SCALE * s0_lo * np.exp(-B_VALUE * 1e-6 * np.clip(adc_lo, 0, None))
    hs = 0.07 * HBV_SCALE
    hbv_lo = np.hypot(hbv_lo + rng.normal(0, hs, low), rng.normal(0, hs, low))
    adc_lo = np.clip(adc_lo + rng.normal(0, 60.0, low), 0.0, 4000.0)
    return resize_to_shape(adc_lo, grid.shape, order=1), resize_to_shape(hbv_lo, grid.shape, order=1)


def synthesize(geom: CaseGeometry, grid: GridSpec, seed: int, lesion_conspicuity: float = 1.0) -> MRCase:
    """Synthesise the phantom of one case on ``grid``.

    Args:
        geom: real label geometry (zones 1 PZ / 2 TZ / 3 gland w/o zone; lesions 0, 1 = csPCa of unknown
            grade, 2..5 ISUP) with its spacing and clinical fields (``pirads``, ``isup``, ``cspca`` ...).
        grid: target grid (shape (D, H, W), spacing (z, y, x) mm); the crop is centred on the gland.
        seed: phantom seed; together with ``geom.case_id`` it fixes every random choice.
        lesion_conspicuity: factor on every lesion's T2W / ADC drop (default 1: the table calibrated on the real
            exams; ``Profile.lesion_conspicuity``). The random draws do not depend on it.

    Returns:
        :class:`MRCase` (``source="phantom"``): float32 t2w/hbv/adc [D, H, W]; zones; lesion (2 csPCa,
        1 PI-RADS-only finding); body; ``extra["lesion_isup"]`` (uint8 grade map, 0 elsewhere),
        ``extra["generator_version"]``.

    Raises:
        ValueError: ``grid`` is not a :class:`GridSpec`.
    """
    if not isinstance(grid, GridSpec):
        raise ValueError(f"grid must be a GridSpec, got {type(grid).__name__}")
    if not 0.0 < float(lesion_conspicuity) <= MAX_CONSPICUITY:
        raise ValueError(f"lesion_conspicuity must be in (0, {MAX_CONSPICUITY}], got {lesion_conspicuity}")
    rng = case_rng(geom.case_id, seed)
    centre = gland_centre_index(geom.zones)
    soft = resample_onehot(geom.zones, 4, geom.spacing, grid, centre)  # bg, PZ, TZ, other
    zones = soft.argmax(0).astype(np.uint8)
    t2_drop, adc_drop, lesion, isup_map = _lesion_maps(geom, grid, centre, zones, rng, float(lesion_conspicuity))
    maps, body = _tissue_maps(grid, soft, zones, rng)
    t2_rel, adc, hbv_rel, tex = (maps[..., i] for i in range(4))

    # texture and lesion contrast
    f1, f2 = smooth_field(grid, 3.0, rng), smooth_field(grid, 8.0, rng)
    field = 0.6 * f1 + 0.8 * f2
    homogeneous = 1.0 - 0.8 * np.clip(t2_drop / 0.15, 0.0, 1.0)  # dense tumour: less texture
    t2_rel = t2_rel * np.exp(tex * homogeneous * field) * (1.0 - t2_drop)
    s0 = hbv_rel * np.exp(B_VALUE * 1e-6 * adc)  # S0 at the nominal ADC of the tissue
    adc = adc * (1.0 + 0.12 * (0.5 * field + 0.87 * smooth_field(grid, 5.0, rng))) * (1.0 - adc_drop)
    t2 = _t2w(grid, t2_rel, rng)
    adc_g, hbv_g = _dwi(grid, adc, s0, rng)
    return MRCase(
        case_id=geom.case_id,
        t2w=t2.astype(np.float32),
        hbv=hbv_g.astype(np.float32),
        adc=adc_g.astype(np.float32),
        zones=zones,
        lesion=lesion,
        body=body,
        spacing=tuple(float(s) for s in grid.spacing),
        clinical=dict(geom.clinical),
        source="phantom",
        extra={"lesion_isup": isup_map, "generator_version": GENERATOR_VERSION, "seed": int(seed)},
    )
