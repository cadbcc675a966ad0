#!/usr/bin/env python
"""Build the PI-CAI label-geometry pack from a picai_labels checkout (deterministic, byte for byte).

For every marksheet case: the Bosma22b whole gland, the HeviAI23 zones and the csPCa lesion mask
(human_expert/resampled, values 2..5 = ISUP; else human_expert/Pooch25, binary -> code 1 = "csPCa of
unknown grade") are resampled onto a fixed pack grid with the axes of the case's T2W image, centred on
the whole-gland centroid. Label maps are resampled class by class (one-hot, linear interpolation,
argmax; ties go to the lower label, i.e. background), so shapes stay smooth; a lesion that would
vanish on the coarser grid keeps its most probable voxel. The pack stores one uint8 map per case,
``zone + 8 * lesion_code`` (see ``transferlimits.data.geometry``), and the marksheet table.

The zip is written by hand: fixed member timestamps (1980-01-01), fixed permissions, members in
sorted order, DEFLATE level 9, no pickles. Same inputs + same zlib -> identical bytes.

Usage::

    python scripts/build_geometry_pack.py --labels ../shared/data/picai_labels \\
        --out data/geometry/picai_geometry.npz [--cases N]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import SimpleITK as sitk

from transferlimits import paths
from transferlimits.data.geometry import LESION_FACTOR
from transferlimits.data.io import Volume, read_volume, resample_to
from transferlimits.data.picai_labels import (
    GLAND_DIR,
    ZONE_DIR,
    clinical_from_row,
    lesion_mask_path,
    mask_on_grid,
    read_marksheet,
)

PACK_SHAPE: tuple[int, int, int] = (24, 128, 128)  # (D, H, W)
PACK_SPACING: tuple[float, float, float] = (3.0, 0.75, 0.75)  # (z, y, x) mm
DEFAULT_LABELS = paths.ROOT.parent / "shared" / "data" / "picai_labels"
FORMAT = "transferlimits-geometry-pack/1"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def pack_reference(gland: Volume, centre_world: np.ndarray, shape=PACK_SHAPE, spacing=PACK_SPACING) -> Volume:
    """An empty pack grid with ``gland``'s axes whose centre lies at ``centre_world`` (LPS mm)."""
    sp_xyz = np.asarray(spacing[::-1], dtype=np.float64)
    half = (np.asarray(shape[::-1], dtype=np.float64) - 1.0) / 2.0
    origin = centre_world - gland.direction_matrix @ (half * sp_xyz)
    return Volume(np.zeros(shape, np.uint8), tuple(sp_xyz), tuple(origin), gland.direction)


def crop_to(volume: Volume, reference: Volume, margin: int = 2) -> Volume:
    """The part of ``volume`` that covers ``reference``'s field of view (plus ``margin`` voxels).

    Resampling the crop gives the same values as resampling the whole volume (linear and nearest
    interpolation only read the neighbouring voxels), at a fraction of the cost.
    """
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], np.float64)
    corners *= np.asarray(reference.shape, np.float64) - 1.0  # (z, y, x) indices of the 8 corners
    world = np.stack([reference.index_to_world(c) for c in corners])
    inv = np.linalg.inv(volume.direction_matrix)
    idx_xyz = (inv @ (world - np.asarray(volume.origin)).T).T / np.asarray(volume.spacing)
    idx_zyx = idx_xyz[:, ::-1]
    lo = np.clip(np.floor(idx_zyx.min(axis=0)).astype(int) - margin, 0, np.asarray(volume.shape))
    hi = np.clip(np.ceil(idx_zyx.max(axis=0)).astype(int) + margin + 1, 0, np.asarray(volume.shape))
    if np.any(hi <= lo):  # no overlap: keep one voxel so resampling still yields the default value
        lo, hi = np.zeros(3, int), np.ones(3, int)
    arr = volume.array[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    origin = volume.index_to_world(lo.astype(np.float64))
    return Volume(arr, volume.spacing, tuple(origin), volume.direction, volume.path)


def onehot_resample(labels: Volume, reference: Volume, classes: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
    """Resample a label map class by class (linear) and take the argmax.

    Returns:
        (labels on the reference grid [D, H, W] uint8, class probabilities [K, D, H, W] float32).
    """
    classes = list(classes)
    probs = []
    for k in classes:
        chan = Volume((labels.array == k).astype(np.float32), labels.spacing, labels.origin, labels.direction)
        probs.append(resample_to(chan, reference, "linear", default=1.0 if k == 0 else 0.0).array)
    prob = np.stack(probs)
    return np.asarray(classes, np.uint8)[np.argmax(prob, axis=0)], prob


def build_case(labels_root: Path, case_id: str, shape=PACK_SHAPE, spacing=PACK_SPACING) -> tuple[np.ndarray, dict]:
    """Pack label map (uint8 [D, H, W]) and geometry facts of one case."""
    gland = read_volume(labels_root / GLAND_DIR / "Bosma22b" / f"{case_id}.nii.gz")
    zone_src, zone_how = mask_on_grid(read_volume(labels_root / ZONE_DIR / "HeviAI23" / f"{case_id}.nii.gz"), gland)
    lesion_path, kind = lesion_mask_path(labels_root, case_id)
    lesion_src, lesion_how = mask_on_grid(read_volume(lesion_path), gland)

    zones = np.zeros(gland.shape, np.uint8)
    zones[gland.array > 0] = 3
    zones[zone_src == 1] = 1
    zones[zone_src == 2] = 2
    raw = np.rint(lesion_src.astype(np.float64)).astype(np.int64)
    codes = np.clip(raw, 0, 5) if kind == "isup" else (raw > 0).astype(np.int64)
    codes = codes.astype(np.uint8)

    fg = np.argwhere(gland.array > 0) if (gland.array > 0).any() else np.argwhere(zones > 0)
    centre_idx = fg.mean(axis=0) if len(fg) else (np.asarray(gland.shape) - 1) / 2.0
    ref = pack_reference(gland, gland.index_to_world(centre_idx), shape, spacing)

    zone_vol = crop_to(Volume(zones, gland.spacing, gland.origin, gland.direction), ref)
    zone_pack, _ = onehot_resample(zone_vol, ref, range(4))
    present = [int(v) for v in np.unique(codes)]
    code_vol = crop_to(Volume(codes, gland.spacing, gland.origin, gland.direction), ref)
    lesion_pack, prob = onehot_resample(code_vol, ref, sorted(set(present) | {0}))
    restored = False
    if len(present) > 1 and not lesion_pack.any():  # tiny lesion lost on the coarser grid
        fg_prob = prob[1:].max(axis=0)
        if fg_prob.max() > 0:
            idx = np.unravel_index(int(np.argmax(fg_prob)), fg_prob.shape)
            lesion_pack[idx] = sorted(set(present) | {0})[1 + int(np.argmax(prob[1:, idx[0], idx[1], idx[2]]))]
            restored = True
    voxel_ml = float(np.prod(gland.spacing)) / 1000.0
    pack_ml = float(np.prod(spacing)) / 1000.0
    gland_ml = float((zones > 0).sum()) * voxel_ml
    info = {
        "orig_spacing": gland.spacing_zyx,
        "orig_shape": gland.shape,
        "gland_ml": gland_ml,
        "lesion_ml": float((codes > 0).sum()) * voxel_ml,
        "lesion_kind": kind,
        "gland_in_pack": float((zone_pack > 0).sum()) * pack_ml / gland_ml if gland_ml > 0 else float("nan"),
        "zone_mask": zone_how,
        "lesion_mask": lesion_how,
        "lesion_restored": restored,
    }
    return (zone_pack + LESION_FACTOR * lesion_pack).astype(np.uint8), info


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def _write_member(zf: zipfile.ZipFile, name: str, arr: np.ndarray) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    info.create_system = 3
    zf.writestr(info, _npy_bytes(arr), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)


def _labels_commit(labels_root: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(labels_root), "rev-parse", "HEAD"], capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except OSError:
        return "unknown"


def _table(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    def num(key: str) -> np.ndarray:
        return np.asarray([np.nan if r[key] is None else r[key] for r in rows], np.float64)

    return {
        "age": num("age"),
        "case_id": np.asarray([r["case_id"] for r in rows], dtype="U"),
        "center": np.asarray([r["center"] for r in rows], dtype="U"),
        "cspca": np.asarray([r["cspca"] for r in rows], bool),
        "gland_in_pack": num("gland_in_pack"),
        "gland_ml": num("gland_ml"),
        "histopath_type": np.asarray([r["histopath_type"] or "" for r in rows], dtype="U"),
        "isup": np.asarray([r["isup"] for r in rows], np.int8),
        "lesion_kind": np.asarray([r["lesion_kind"] for r in rows], dtype="U"),
        "lesion_mask_grid": np.asarray([r["lesion_mask"] for r in rows], dtype="U"),
        "lesion_ml": num("lesion_ml"),
        "orig_shape": np.asarray([r["orig_shape"] for r in rows], np.int32).reshape(-1, 3),
        "orig_spacing": np.asarray([r["orig_spacing"] for r in rows], np.float64).reshape(-1, 3),
        "pirads": np.asarray([r["pirads"] or 0 for r in rows], np.int8),
        "psa": num("psa"),
        "psad": num("psad"),
        "volume": num("volume"),
        "zone_mask_grid": np.asarray([r["zone_mask"] for r in rows], dtype="U"),
    }


def build_pack(
    labels_root: str | os.PathLike,
    out: str | os.PathLike,
    case_ids: list[str] | None = None,
    n_cases: int | None = None,
    labels_commit: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Build the pack for ``case_ids`` (default: all marksheet cases, or the first ``n_cases`` sorted).

    Returns:
        Build statistics: n_cases, bytes, sha256, seconds, counts of resampled masks / restored lesions.
    """
    labels_root = Path(labels_root)
    sheet = read_marksheet(labels_root)
    ids = sorted(case_ids) if case_ids is not None else sorted(sheet.index)
    unknown = [c for c in ids if c not in sheet.index]
    if unknown:
        raise ValueError(f"case ids not in the marksheet: {unknown[:5]}")
    if n_cases is not None:
        if n_cases < 1:
            raise ValueError(f"n_cases must be >= 1, got {n_cases}")
        ids = ids[:n_cases]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    iterator: Iterable[str] = ids
    if progress:
        from tqdm import tqdm

        iterator = tqdm(ids, desc="geometry pack", unit="case")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for cid in iterator:  # member names sort as labels/ < meta.json.npy < table/
            labels, info = build_case(labels_root, cid)
            _write_member(zf, f"labels/{cid}.npy", labels)
            rows.append({"case_id": cid, **clinical_from_row(sheet.loc[cid]), **info})
        meta = {
            "format": FORMAT,
            "shape": list(PACK_SHAPE),
            "spacing": list(PACK_SPACING),
            "encoding": f"label = zone + {LESION_FACTOR} * lesion_code; zone 0 bg, 1 PZ, 2 TZ, 3 gland without "
            "zone; lesion_code 0 none, 1 csPCa of unknown grade (Pooch25 binary), 2..5 ISUP",
            "grid": "T2W image axes, centred on the Bosma22b whole-gland centroid",
            "sources": {"gland": "Bosma22b", "zones": "HeviAI23", "lesions": "human_expert/resampled, Pooch25"},
            "labels_commit": labels_commit or _labels_commit(labels_root),
            "n_cases": len(ids),
        }
        _write_member(zf, "meta.json.npy", np.asarray(json.dumps(meta, sort_keys=True)))
        for name, arr in sorted(_table(rows).items()):
            _write_member(zf, f"table/{name}.npy", arr)
    os.replace(tmp, out)
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    out.with_name(out.name + ".sha256").write_text(f"{sha}  {out.name}\n")
    return {
        "n_cases": len(ids),
        "bytes": out.stat().st_size,
        "sha256": sha,
        "seconds": time.perf_counter() - t0,
        "zone_masks": dict(Counter(r["zone_mask"] for r in rows)),
        "lesion_masks": dict(Counter(r["lesion_mask"] for r in rows)),
        "lesions_restored": int(sum(r["lesion_restored"] for r in rows)),
        "min_gland_in_pack": float(np.nanmin([r["gland_in_pack"] for r in rows])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS, help="picai_labels checkout")
    parser.add_argument("--out", type=Path, default=paths.GEOMETRY_PACK, help="output .npz")
    parser.add_argument("--cases", type=int, default=None, help="only the first N cases (sorted ids)")
    parser.add_argument("--labels-commit", default=None, help="picai_labels commit recorded in the pack")
    parser.add_argument("--threads", type=int, default=1, help="SimpleITK threads (default 1)")
    args = parser.parse_args(argv)
    if not (args.labels / "clinical_information" / "marksheet.csv").is_file():
        parser.error(f"--labels {args.labels}: not a picai_labels checkout (no clinical_information/marksheet.csv)")
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, args.threads))
    stats = build_pack(args.labels, args.out, n_cases=args.cases, labels_commit=args.labels_commit)
    print(json.dumps(stats, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
