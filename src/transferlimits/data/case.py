"""One mpMRI case on one grid: the common currency of real exams and phantoms.

Both :func:`transferlimits.data.picai.load_case` (real PI-CAI layout) and
:func:`transferlimits.data.phantom.synthesize` return an :class:`MRCase`, so every task, view and
figure works on either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["MRCase", "SEQUENCES"]

#: Sequence names; ProFound's stem channel order is exactly this: [T2W, high-b DWI, ADC].
SEQUENCES: tuple[str, str, str] = ("t2w", "hbv", "adc")


@dataclass
class MRCase:
    """An mpMRI case resampled onto one (D, H, W) grid.

    Attributes:
        case_id: ``"<patient_id>_<study_id>"`` (PI-CAI naming).
        t2w: float32 [D, H, W], T2-weighted intensity (scanner units, ~0-1500 for PI-CAI uint16 data).
        hbv: float32 [D, H, W], high-b DWI intensity (scanner units).
        adc: float32 [D, H, W], ADC in 10^-6 mm^2/s.
        zones: uint8 [D, H, W], 0 background, 1 PZ, 2 TZ, 3 gland voxel without a zone label.
        lesion: uint8 [D, H, W], 0 none, 1 indolent / PI-RADS-only finding, 2 csPCa (ISUP >= 2).
        body: uint8 [D, H, W], 1 inside the body (evaluation mask for restoration tasks).
        spacing: (z, y, x) voxel size in mm.
        clinical: marksheet-derived fields: ``pirads`` (case max, int or None), ``isup`` (case ISUP),
            ``cspca`` (bool), ``center``, ``age``, ``psa``, ``volume`` (mL) ...
        source: ``"phantom"`` or ``"real"``.
        extra: anything else (e.g. lesion ISUP map, provenance).
    """

    case_id: str
    t2w: np.ndarray
    hbv: np.ndarray
    adc: np.ndarray
    zones: np.ndarray
    lesion: np.ndarray
    body: np.ndarray
    spacing: tuple[float, float, float]
    clinical: dict[str, Any] = field(default_factory=dict)
    source: str = "phantom"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = self.t2w.shape
        for name in ("hbv", "adc", "zones", "lesion", "body"):
            arr = getattr(self, name)
            if arr.shape != shape:
                raise ValueError(
                    f"case {self.case_id}: {name} has shape {arr.shape}, expected {shape} (the t2w grid)"
                )

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.t2w.shape)  # type: ignore[return-value]

    @property
    def gland(self) -> np.ndarray:
        """uint8 [D, H, W] whole-gland mask (any zone)."""
        return (self.zones > 0).astype(np.uint8)

    def sequence(self, name: str) -> np.ndarray:
        if name not in SEQUENCES:
            raise ValueError(f"unknown sequence {name!r}; valid: {list(SEQUENCES)}")
        return getattr(self, name)
