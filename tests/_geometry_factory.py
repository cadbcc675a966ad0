"""Hand-made label geometries for the data tests (an ellipsoid gland with PZ/TZ and optional lesion)."""

from __future__ import annotations

import numpy as np

from transferlimits.data.geometry import CaseGeometry


def ellipsoid_geometry(case_id: str = "10001_1000001", pirads=4, isup: int = 3, lesion: bool = True,
                       shape=(20, 96, 96), spacing=(3.0, 0.75, 0.75)) -> CaseGeometry:
    """Gland: ellipsoid (radii 18 x 16 x 22 mm), TZ = inner anterior part, PZ = posterior rim; an ISUP
    lesion (radius 5 mm) in the posterior PZ when ``lesion``."""
    z, y, x = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)]
    z, y, x = z[:, None, None], y[None, :, None], x[None, None, :]
    r = (z / 18) ** 2 + (y / 16) ** 2 + (x / 22) ** 2
    zones = np.zeros(shape, np.uint8)
    zones[r <= 1] = 1
    zones[(r <= 0.45) & (y < 6)] = 2
    lesions = np.zeros(shape, np.uint8)
    if lesion:
        lr = (z / 6) ** 2 + ((y - 11) / 5) ** 2 + ((x - 8) / 5) ** 2
        lesions[(lr <= 1) & (zones == 1)] = isup
    clinical = {"pirads": pirads, "isup": isup if lesion else 0, "cspca": bool(lesion and isup >= 2),
                "center": "RUMC", "age": 65, "psa": 8.0, "volume": 40.0}
    return CaseGeometry(case_id, zones, lesions, tuple(spacing), clinical)
