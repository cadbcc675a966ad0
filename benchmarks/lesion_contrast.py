"""Lesion contrast per sequence on a profile's cohort: which sequence shows the csPCa lesions a model must find.

For every case of a split with a csPCa lesion (label 2), the contrast-to-noise ratio of the lesion against a ring
of gland voxels around it (``--ring`` voxels wide, lesion excluded): (mean lesion - mean ring) / SD of the ring,
per sequence (T2W, high-b DWI, ADC), then the mean and median over cases. A sequence whose CNR is well under 1 in
magnitude shows a lesion only as a shift hidden in the host tissue's texture; a 2.5D model that reads one sequence
needs the one where the lesions stand out (the ProViCNet lesion tasks read ``hbv``: ``tasks.registry``).
Single-threaded; a few seconds on the ``cpu`` cohort (built first if missing).

    .venv/bin/python benchmarks/lesion_contrast.py --profile cpu [--split train] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from transferlimits.config import get_profile
from transferlimits.data.cohort import open_cohort
from transferlimits.runner.provenance import hardware_line

SEQUENCES = ("t2w", "hbv", "adc")


def lesion_cnr(image: np.ndarray, lesion: np.ndarray, gland: np.ndarray, ring: int) -> float | None:
    """CNR of ``lesion`` (bool [D, H, W]) in ``image`` against the gland ring around it; None without a ring."""
    around = ndimage.binary_dilation(lesion, iterations=int(ring)) & ~lesion & gland
    if not lesion.any() or around.sum() < 2:
        return None
    sd = float(image[around].std())
    return (float(image[lesion].mean()) - float(image[around].mean())) / sd if sd > 0 else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="cpu")
    p.add_argument("--split", default="train", help="cohort split (default train)")
    p.add_argument("--ring", type=int, default=3, help="ring width in voxels (default 3)")
    p.add_argument("--json", type=Path, default=None, help="also write the summary here")
    args = p.parse_args(argv)
    if args.ring < 1:
        raise SystemExit(f"--ring must be >= 1, got {args.ring}")
    cohort = open_cohort(get_profile(args.profile))
    if args.split not in cohort.splits:
        raise SystemExit(f"--split {args.split!r}: the cohort has {sorted(cohort.splits)}")
    cnr: dict[str, list[float]] = {s: [] for s in SEQUENCES}
    for cid in cohort.splits[args.split]:
        case = cohort.case(cid)
        lesion, gland = case.lesion == 2, case.zones > 0
        for s in SEQUENCES:
            v = lesion_cnr(np.asarray(case.sequence(s), np.float64), lesion, gland, args.ring)
            if v is not None:
                cnr[s].append(v)
    out = {"profile": args.profile, "split": args.split, "ring_voxels": args.ring, "hardware": hardware_line(),
           "n_cases": len(cnr["t2w"]),
           "cnr": {s: {"mean": float(np.mean(v)), "median": float(np.median(v))} for s, v in cnr.items() if v}}
    for s, v in out["cnr"].items():
        print(f"{s}: lesion CNR vs a {args.ring}-voxel gland ring over {out['n_cases']} cases: "
              f"mean {v['mean']:+.2f}, median {v['median']:+.2f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
