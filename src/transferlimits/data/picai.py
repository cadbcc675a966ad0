"""Real exams: the PI-CAI public-image layout joined with a ``picai_labels`` checkout.

Images (PI-CAI public archive layout)::

    <images_root>/<patient_id>/<patient_id>_<study_id>_{t2w,adc,hbv}.mha

Labels: a ``picai_labels`` checkout (layout, marksheet parsing and the mask-geometry rules live in
:mod:`transferlimits.data.picai_labels`; re-exported here).

Cases load lazily, one at a time, so the same code serves the 2 shipped cases and all 1500.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from transferlimits import paths
from transferlimits.data.case import MRCase
from transferlimits.data.io import MIN_OVERLAP, DataError, Volume, check_coverage, read_volume, resample_to
from transferlimits.data.io_exam import load_dicom_exam
from transferlimits.data.picai_labels import (
    GLAND_DIR,
    MARKSHEET,
    ZONE_DIR,
    clinical_from_row,
    lesion_mask_path,
    mask_on_grid,
    read_marksheet,
)

__all__ = [
    "PicaiDataset",
    "mask_on_grid",
    "load_real_cases",
    "load_dicom_exam",
    "read_marksheet",
    "clinical_from_row",
    "lesion_mask_path",
    "body_mask",
    "IMAGE_SEQUENCES",
]

IMAGE_SEQUENCES: tuple[str, ...] = ("t2w", "adc", "hbv")
#: Body mask threshold as a fraction of the T2W 99th percentile, and in-plane smoothing (see :func:`body_mask`).
BODY_THRESHOLD_FRACTION = 0.05
BODY_SMOOTHING_MM = 2.0


def body_mask(
    t2w: np.ndarray,
    spacing: tuple[float, float, float],
    fraction: float = BODY_THRESHOLD_FRACTION,
    sigma_mm: float = BODY_SMOOTHING_MM,
) -> np.ndarray:
    """uint8 [D, H, W] body mask from a T2W volume.

    Rule: the T2W smoothed in-plane (Gaussian, ``sigma_mm``), thresholded at ``fraction`` x the 99th
    percentile of the raw T2W, the largest 3D connected component kept (6-connectivity), then holes
    filled slice by slice (axial; closes rectal air and other dark structures inside the outline).
    Smoothing keeps dark muscle and fascia from punching holes that open onto the image border.

    Args:
        t2w: [D, H, W] T2W intensities.
        spacing: (z, y, x) voxel size in mm.
        fraction: threshold fraction of the 99th percentile (default 0.05).
        sigma_mm: in-plane Gaussian smoothing in mm (default 2.0).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if sigma_mm < 0:
        raise ValueError(f"sigma_mm must be >= 0, got {sigma_mm}")
    sigma = [0.0, sigma_mm / float(spacing[1]), sigma_mm / float(spacing[2])]
    smooth = ndimage.gaussian_filter(np.asarray(t2w, np.float32), sigma)
    fg = smooth > fraction * float(np.percentile(t2w, 99))
    labels, n = ndimage.label(fg)
    if n == 0:
        return np.zeros(t2w.shape, np.uint8)
    sizes = np.bincount(labels.ravel())[1:]
    body = labels == (1 + int(np.argmax(sizes)))
    body = np.stack([ndimage.binary_fill_holes(s) for s in body])
    return body.astype(np.uint8)


class PicaiDataset:
    """Cases of a PI-CAI public-image folder with their picai_labels masks and marksheet rows.

    Args:
        images_root: folder in the PI-CAI layout ``<patient>/<patient>_<study>_<seq>.mha``.
        labels_root: a picai_labels checkout (or a subset with the same relative paths).
        gland_source: whole-gland mask folder under ``anatomical_delineations/whole_gland/AI``
            (default ``"Bosma22b"``).
        zone_source: zonal mask folder under ``anatomical_delineations/zonal_pz_tz/AI``
            (default ``"HeviAI23"``).
        skip_incomplete: leave out cases that lack one of t2w/adc/hbv (listed in ``skipped``) instead
            of raising (default False).

    Raises:
        DataError: a missing folder, or (unless ``skip_incomplete``) cases that lack a sequence: the
            message gives their count, ids and missing sequences.
    """

    def __init__(
        self,
        images_root: str | os.PathLike,
        labels_root: str | os.PathLike,
        gland_source: str = "Bosma22b",
        zone_source: str = "HeviAI23",
        skip_incomplete: bool = False,
    ) -> None:
        self.images_root = Path(images_root)
        self.labels_root = Path(labels_root)
        if not self.images_root.is_dir():
            raise DataError(f"{self.images_root}: images folder not found")
        if not self.labels_root.is_dir():
            raise DataError(f"{self.labels_root}: picai_labels folder not found")
        self.gland_dir = self._source_dir(GLAND_DIR, gland_source, "gland_source")
        self.zone_dir = self._source_dir(ZONE_DIR, zone_source, "zone_source")
        self.skip_incomplete = bool(skip_incomplete)
        self.case_ids, self.skipped = self._scan()

    def _source_dir(self, parent: str, source: str, arg: str) -> Path:
        folder = self.labels_root / parent / source
        if not folder.is_dir():
            base = self.labels_root / parent
            valid = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
            raise ValueError(f"{arg}={source!r}: {folder} not found; valid: {valid}")
        return folder

    def _scan(self) -> tuple[list[str], dict[str, list[str]]]:
        """(sorted complete case ids, {incomplete case id: missing sequences})."""
        found: dict[str, set[str]] = {}
        for seq in IMAGE_SEQUENCES:
            for f in self.images_root.glob(f"*/*_{seq}.mha"):
                found.setdefault(f.name[: -len(f"_{seq}.mha")], set()).add(seq)
        incomplete = {c: [q for q in IMAGE_SEQUENCES if q not in have] for c, have in found.items()
                      if len(have) < len(IMAGE_SEQUENCES)}
        if incomplete and not self.skip_incomplete:
            listed = ", ".join(f"{c} (no {'/'.join(m)})" for c, m in sorted(incomplete.items())[:10])
            raise DataError(
                f"{self.images_root}: {len(incomplete)} case(s) lack a sequence: {listed}"
                f"{' ...' if len(incomplete) > 10 else ''}; add the files, or pass skip_incomplete=True "
                "(CLI: --skip-incomplete) to leave these cases out"
            )
        return sorted(c for c in found if c not in incomplete), dict(sorted(incomplete.items()))

    @cached_property
    def marksheet(self) -> pd.DataFrame:
        return read_marksheet(self.labels_root)

    def __len__(self) -> int:
        return len(self.case_ids)

    def image_path(self, case_id: str, seq: str) -> Path:
        patient = case_id.split("_")[0]
        return self.images_root / patient / f"{case_id}_{seq}.mha"

    def input_files(self, case_id: str) -> dict[str, Path]:
        """Every file :meth:`load_case` reads for ``case_id``: ``{"t2w", "adc", "hbv", "gland", "zones",
        "lesion"}`` -> path (for content-keyed caching)."""
        self._check_id(case_id)
        files = {seq: self.image_path(case_id, seq) for seq in IMAGE_SEQUENCES}
        files["gland"] = self.gland_dir / f"{case_id}.nii.gz"
        files["zones"] = self.zone_dir / f"{case_id}.nii.gz"
        files["lesion"] = lesion_mask_path(self.labels_root, case_id)[0]
        return files

    def marksheet_row(self, case_id: str) -> dict[str, str]:
        """The case's raw marksheet values (column -> text), for content-keyed caching."""
        if case_id not in self.marksheet.index:
            raise DataError(f"case {case_id}: no row in {self.labels_root / MARKSHEET}")
        row = self.marksheet.loc[case_id]
        return {k: str(v) for k, v in row.items() if k != "_line"}

    def _check_id(self, case_id: str) -> None:
        if case_id in self.skipped:
            raise DataError(f"case {case_id} was left out (skip_incomplete=True): no {'/'.join(self.skipped[case_id])} "
                            f"in {self.images_root}")
        if case_id not in self.case_ids:
            raise DataError(
                f"unknown case id {case_id!r} in {self.images_root}; {len(self.case_ids)} valid, e.g. "
                f"{self.case_ids[:5]}"
            )

    def _mask(self, path: Path, t2w: Volume) -> np.ndarray:
        """Read a mask and put it on the T2W grid (see :func:`mask_on_grid`)."""
        return mask_on_grid(read_volume(path), t2w)[0]

    def clinical(self, case_id: str) -> dict[str, Any]:
        """Marksheet fields of one case (see :func:`clinical_from_row`)."""
        if case_id not in self.marksheet.index:
            raise DataError(f"case {case_id}: no row in {self.labels_root / MARKSHEET}")
        return clinical_from_row(self.marksheet.loc[case_id], where=self.marksheet.attrs.get("path", MARKSHEET))

    def load_case(self, case_id: str) -> MRCase:
        """Load one case on its native T2W grid (ADC/hbv resampled linearly, masks checked).

        Returns:
            :class:`MRCase` with float32 t2w/adc/hbv [D, H, W]; zones 1 PZ, 2 TZ, 3 gland without
            zone; lesion 2 where the csPCa mask > 0; ``extra["lesion_isup"]`` the ISUP map (0, 2..5; 1 =
            csPCa of unknown grade for Pooch25 binary masks); ``source="real"``.

        Raises:
            DataError: unknown or skipped id, missing/truncated/corrupt file, NaN/inf voxels, a sheared
                direction matrix, an ADC/hbv covering less than ``MIN_GLAND_COVERAGE`` (95 %) of the gland
                mask (or less than ``MIN_OVERLAP`` of the T2W grid; see :func:`~.io.check_coverage`), or a
                mask whose geometry differs from the T2W (each message names the file).
        """
        self._check_id(case_id)
        t2w = read_volume(self.image_path(case_id, "t2w"))
        gland = self._mask(self.gland_dir / f"{case_id}.nii.gz", t2w) > 0
        seqs = {"t2w": t2w.array.astype(np.float32)}
        for seq in ("adc", "hbv"):
            moving = read_volume(self.image_path(case_id, seq))
            check_coverage(moving, t2w, seq, gland=gland)
            seqs[seq] = resample_to(moving, t2w, "linear", min_overlap=MIN_OVERLAP).array
        zone_map = self._mask(self.zone_dir / f"{case_id}.nii.gz", t2w)
        zones = np.zeros(t2w.shape, np.uint8)
        zones[gland] = 3
        zones[zone_map == 1] = 1
        zones[zone_map == 2] = 2
        lesion_path, kind = lesion_mask_path(self.labels_root, case_id)
        raw = np.rint(self._mask(lesion_path, t2w)).astype(np.int64)
        isup = np.clip(raw, 0, 5).astype(np.uint8) if kind == "isup" else (raw > 0).astype(np.uint8)
        lesion = np.where(raw > 0, 2, 0).astype(np.uint8)
        return MRCase(
            case_id=case_id,
            t2w=seqs["t2w"],
            hbv=seqs["hbv"],
            adc=seqs["adc"],
            zones=zones,
            lesion=lesion,
            body=body_mask(seqs["t2w"], t2w.spacing_zyx),
            spacing=t2w.spacing_zyx,
            clinical=self.clinical(case_id),
            source="real",
            extra={"lesion_isup": isup, "lesion_kind": kind, "lesion_path": str(lesion_path),
                   "t2w_geometry": {"spacing": t2w.spacing, "origin": t2w.origin, "direction": t2w.direction}},
        )


def load_real_cases() -> list[MRCase]:
    """The two shipped real cases (``paths.REAL_CASES`` + ``paths.PICAI_LABELS``), sorted by id."""
    ds = PicaiDataset(paths.REAL_CASES, paths.PICAI_LABELS)
    return [ds.load_case(cid) for cid in ds.case_ids]
