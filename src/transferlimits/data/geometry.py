"""Label geometry of the 1500 PI-CAI cases: the skeleton the phantom cohort is built on.

(The pack loader is added below the dataclass by the geometry-pack work.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["CaseGeometry"]


@dataclass
class CaseGeometry:
    """Real label geometry of one PI-CAI case on the pack grid.

    Attributes:
        case_id: ``"<patient_id>_<study_id>"``.
        zones: uint8 [D, H, W]: 0 background, 1 PZ, 2 TZ, 3 gland voxel without a zone label.
        lesions: uint8 [D, H, W]: 0 none, 1 csPCa lesion of unknown grade (binary masks), 2..5 ISUP grade.
        spacing: (z, y, x) mm of the pack grid.
        clinical: ``pirads`` (case max PI-RADS, int or None), ``isup`` (case ISUP, int), ``cspca`` (bool),
            ``center``, ``age``, ``psa``, ``volume`` (mL, reported), ``orig_spacing`` (z, y, x),
            ``orig_shape`` (D, H, W).
    """

    case_id: str
    zones: np.ndarray
    lesions: np.ndarray
    spacing: tuple[float, float, float]
    clinical: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.zones.shape != self.lesions.shape:
            raise ValueError(
                f"case {self.case_id}: zones {self.zones.shape} and lesions {self.lesions.shape} differ in shape"
            )
