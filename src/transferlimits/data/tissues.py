"""Tissue parameters of the phantom generator, calibrated on the two real PI-CAI exams (STUDY §3).

Each tissue has a nominal T2W intensity (relative to the gland median of the real exams' T2W), a nominal
ADC (10^-6 mm^2/s), a nominal high-b intensity (relative to the gland median of the real hbv) and the
amplitude of its multiplicative T2W texture. Values were read off the real exams' per-zone statistics
(``transferlimits.data.calibration.zone_stats`` on ``11373_1001396`` and ``10795_1000811``: PZ T2W
1.43-1.64 x gland median, TZ 0.72-0.92, PZ ADC 1424-1634, TZ ADC 1247-1260, the ISUP-3 lesion 1157, hbv
PZ ~ TZ ~ gland median), then adjusted by hand so that the phantoms of the two real geometries match the
real exams' per-zone means on the smoke grid (``calibration_table``; partial volume and the low-resolution
DWI shift the nominal values) and from textbook pelvic MRI contrast for tissues outside the gland (urine very
bright on T2W with ADC ~ 2900; fat bright on T2W and suppressed on DWI; muscle dark). They were tuned
toward the real exams only, never toward the paper's results.

High-b signal follows S = S0 * exp(-b * ADC) with ``B_VALUE`` = 1400 s/mm^2 (the PI-CAI ``hbv`` is a
scanner-calculated high b-value image of about this b). S0 of a tissue is set so that at its nominal
ADC it gives its nominal high-b intensity; a lesion (lower ADC, same S0 as its host zone) then becomes
bright on high-b by exp(b * dADC), as in real csPCa.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Tissue",
    "TISSUES",
    "B_VALUE",
    "T2W_SCALE",
    "HBV_SCALE",
    "LESION_CONTRAST_ISUP",
    "LESION_CONTRAST_PIRADS",
    "GENERATOR_VERSION",
]

#: Bump when the generator's output changes: cached cohorts with another version are rebuilt.
GENERATOR_VERSION: str = "phantom-1.0"
#: b-value (s/mm^2) of the synthetic high-b image.
B_VALUE: float = 1400.0
#: Scanner-unit scale of T2W (the real exams' gland median T2W is 182-193).
T2W_SCALE: float = 185.0
#: Scanner-unit scale of high-b (the real exams' gland median hbv is 19-24).
HBV_SCALE: float = 21.0


@dataclass(frozen=True)
class Tissue:
    """Nominal contrast of one tissue: T2W (x gland median), ADC (1e-6 mm^2/s), hbv (x gland median)."""

    t2w: float
    adc: float
    hbv: float
    texture: float  # std of the log-multiplicative T2W texture


#: Tissue table; index order is the tissue label used inside the generator.
TISSUES: dict[str, Tissue] = {
    "air": Tissue(0.0, 0.0, 0.0, 0.0),
    "fat": Tissue(2.0, 450.0, 0.25, 0.10),
    "muscle": Tissue(0.7, 1450.0, 0.45, 0.10),
    "urine": Tissue(4.0, 2900.0, 0.15, 0.03),
    "rectal_wall": Tissue(0.75, 1250.0, 0.9, 0.12),
    "rectal_air": Tissue(0.02, 300.0, 0.05, 0.0),
    "bone": Tissue(1.3, 550.0, 0.2, 0.15),
    "pz": Tissue(1.85, 1680.0, 0.95, 0.38),
    "tz": Tissue(0.82, 1265.0, 1.05, 0.35),
    "gland_other": Tissue(0.95, 1260.0, 0.78, 0.40),
}

#: csPCa lesion contrast by ISUP grade (1 = csPCa of unknown grade): fractional drop of (T2W, ADC)
#: relative to the host zone. ISUP 3 gives the real exam's ratio after resampling to the
#: calibration grid (ADC 1186 / 1567 = 0.76, T2W 1.22 / 1.56 = 0.78); conspicuity grows with grade.
LESION_CONTRAST_ISUP: dict[int, tuple[float, float]] = {
    1: (0.20, 0.29),
    2: (0.16, 0.25),
    3: (0.20, 0.31),
    4: (0.24, 0.35),
    5: (0.28, 0.40),
}
#: PI-RADS-only (no csPCa mask) lesions: (T2W drop, ADC drop, radius range mm) by case PI-RADS.
LESION_CONTRAST_PIRADS: dict[int, tuple[float, float, tuple[float, float]]] = {
    3: (0.10, 0.12, (3.0, 5.0)),
    4: (0.18, 0.20, (4.0, 7.0)),
    5: (0.25, 0.27, (7.0, 10.0)),
}
