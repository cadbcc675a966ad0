"""Label geometry of the 1500 PI-CAI cases: the skeleton the phantom cohort is built on.

The geometry pack (``data/geometry/picai_geometry.npz``, built by ``scripts/build_geometry_pack.py``
from a picai_labels checkout) is a plain zip of ``.npy`` members, no pickles:

* ``labels/<case_id>.npy``: uint8 [D, H, W] on the pack grid, ``zone + 8 * lesion_code`` with zone
  0 background, 1 PZ, 2 TZ, 3 gland without zone and lesion_code 0 none, 1 csPCa of unknown grade
  (Pooch25 binary masks), 2..5 ISUP grade (human_expert/resampled masks);
* ``table/<field>.npy``: one array per marksheet/geometry field, aligned with ``table/case_id.npy``;
* ``meta.json.npy``: the grid and provenance as a JSON string (a 1-element unicode array).

The pack grid has the axes of the case's T2W image and is centred on the whole-gland centroid.
Cases decode lazily, one member at a time::

    pack = load_geometry_pack()
    geom = pack.case("11373_1001396")          # CaseGeometry
    pack.clinical.loc["11373_1001396", "isup"]  # 3
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from transferlimits import paths

__all__ = ["CaseGeometry", "GeometryPack", "load_geometry_pack", "pack_sha256", "LESION_FACTOR"]

#: Label encoding of the pack: ``label = zone + LESION_FACTOR * lesion_code``; zone = label % 8.
LESION_FACTOR = 8


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


def pack_sha256(path: str | os.PathLike = paths.GEOMETRY_PACK) -> str:
    """Hex SHA-256 of the pack file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _load_npy(zf: zipfile.ZipFile, name: str) -> np.ndarray:
    with zf.open(name) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


class GeometryPack:
    """Read access to a geometry pack; per-case label maps are decoded only when asked for.

    Args:
        path: the ``.npz`` pack (default ``paths.GEOMETRY_PACK``).
    """

    def __init__(self, path: str | os.PathLike = paths.GEOMETRY_PACK) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"{self.path}: geometry pack not found (build it with scripts/build_geometry_pack.py)"
            )
        with zipfile.ZipFile(self.path) as zf:
            self.meta: dict[str, Any] = json.loads(str(_load_npy(zf, "meta.json.npy").reshape(-1)[0]))
            self._columns = {
                n[len("table/") : -len(".npy")]: _load_npy(zf, n) for n in zf.namelist() if n.startswith("table/")
            }
        self.shape: tuple[int, int, int] = tuple(self.meta["shape"])  # type: ignore[assignment]
        spacing = tuple(float(s) for s in self.meta["spacing"])
        self.spacing: tuple[float, float, float] = spacing  # type: ignore[assignment]
        self._case_ids = [str(c) for c in self._columns["case_id"]]
        self._index = {cid: i for i, cid in enumerate(self._case_ids)}

    @property
    def case_ids(self) -> list[str]:
        """Case ids in pack order (sorted)."""
        return list(self._case_ids)

    def __len__(self) -> int:
        return len(self._columns["case_id"])

    def __contains__(self, case_id: object) -> bool:
        return case_id in self._index

    @cached_property
    def clinical(self):
        """pandas DataFrame indexed by ``case_id``, one row per case, columns sorted by name.

        Columns: ``pirads`` (case max, **0 = none given**), ``isup``, ``cspca`` (bool), ``center``,
        ``age``, ``psa``, ``psad``, ``volume`` (reported mL; NaN = missing), ``histopath_type``,
        ``orig_spacing_{z,y,x}`` (mm), ``orig_shape_{d,h,w}``, ``gland_ml`` (measured),
        ``gland_in_pack`` (fraction of the gland inside the pack grid), ``lesion_kind`` (``isup`` or
        ``binary``), ``lesion_ml``, ``zone_mask_grid`` / ``lesion_mask_grid`` (``same``, ``resampled``,
        ``empty``: how the mask met the T2W grid).
        """
        import pandas as pd

        cols: dict[str, Any] = {}
        for name, arr in self._columns.items():
            if name == "case_id":
                continue
            if arr.ndim == 2:
                axes = "zyx" if "spacing" in name else "dhw"
                for j in range(arr.shape[1]):
                    cols[f"{name}_{axes[j]}"] = arr[:, j]
            else:
                cols[name] = arr
        df = pd.DataFrame(cols, index=pd.Index(self.case_ids, name="case_id"))
        return df[sorted(df.columns)]

    def clinical_dict(self, case_id: str) -> dict[str, Any]:
        """Clinical fields of one case as plain python values (``pirads`` None when absent)."""
        i = self._position(case_id)
        c = self._columns
        pirads = int(c["pirads"][i])
        out: dict[str, Any] = {
            "pirads": pirads if pirads > 0 else None,
            "isup": int(c["isup"][i]),
            "cspca": bool(c["cspca"][i]),
            "center": str(c["center"][i]),
            "age": None if np.isnan(c["age"][i]) else int(c["age"][i]),
            "orig_spacing": tuple(float(v) for v in c["orig_spacing"][i]),
            "orig_shape": tuple(int(v) for v in c["orig_shape"][i]),
        }
        for name in ("psa", "psad", "volume", "gland_ml"):
            val = float(c[name][i])
            out[name] = None if np.isnan(val) else val
        out["lesion_kind"] = str(c["lesion_kind"][i])
        return out

    def _position(self, case_id: str) -> int:
        if case_id not in self._index:
            raise ValueError(
                f"unknown case id {case_id!r} in {self.path}; {len(self)} cases, e.g. {self.case_ids[:5]}"
            )
        return self._index[case_id]

    def labels(self, case_id: str) -> np.ndarray:
        """The raw uint8 [D, H, W] label map (``zone + 8 * lesion_code``) of one case."""
        self._position(case_id)
        with zipfile.ZipFile(self.path) as zf:
            return _load_npy(zf, f"labels/{case_id}.npy")

    def case(self, case_id: str) -> CaseGeometry:
        """Decode one case into a :class:`CaseGeometry` (raises ValueError for an unknown id)."""
        lab = self.labels(case_id)
        return CaseGeometry(
            case_id=case_id,
            zones=(lab % LESION_FACTOR).astype(np.uint8),
            lesions=(lab // LESION_FACTOR).astype(np.uint8),
            spacing=self.spacing,
            clinical=self.clinical_dict(case_id),
        )


def load_geometry_pack(path: str | os.PathLike = paths.GEOMETRY_PACK) -> GeometryPack:
    """Open the geometry pack at ``path`` (default ``paths.GEOMETRY_PACK``)."""
    return GeometryPack(path)
