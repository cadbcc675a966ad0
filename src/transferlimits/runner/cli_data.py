"""``python -m transferlimits data``: build a profile's cohort (phantoms, splits, manifest) with
:func:`transferlimits.data.cohort.build_cohort` and print its split sizes.

Example::

    python -m transferlimits data --profile smoke
    python -m transferlimits data --profile picai --data <PI-CAI image folder>
"""

from __future__ import annotations

import argparse
import time

from transferlimits.data.cohort import build_cohort
from transferlimits.data.splits import SPLIT_NAMES

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CLI options of ``python -m transferlimits data``."""
    parser.add_argument("--profile", default="smoke", help="profile name (smoke, reference, picai); default smoke")
    parser.add_argument("--seed", type=int, default=0, help="split and phantom seed (default 0)")
    parser.add_argument("--workers", type=int, default=1, help="processes for phantom synthesis (default 1)")
    parser.add_argument("--data", default=None, help="PI-CAI public-image folder (profile picai only)")
    parser.add_argument("--labels", default=None, help="picai_labels checkout (profile picai; default shipped subset)")
    parser.add_argument("--skip-incomplete", action="store_true",
                        help="profile picai: leave out cases that lack a sequence (their count and ids are printed) "
                             "instead of stopping with an error naming them")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def main(args: argparse.Namespace) -> int:
    """Build the cohort from parsed CLI arguments and print its splits. Returns 0."""
    t0 = time.perf_counter()
    cohort = build_cohort(args.profile, seed=args.seed, progress=not args.no_progress, workers=args.workers,
                          images_root=args.data, labels_root=args.labels,
                          skip_incomplete=bool(getattr(args, "skip_incomplete", False)))
    print(f"cohort of profile {cohort.profile.name!r} in {cohort.root} ({time.perf_counter() - t0:.1f} s)")
    print(f"grid {cohort.manifest['grid']}, generator {cohort.manifest['generator_version']}, seed {args.seed}")
    for split in SPLIT_NAMES:
        print(f"  {split:9s} {len(cohort.case_ids(split)):5d} cases, {cohort.manifest['patients'][split]:5d} patients")
    print(f"  real      {len(cohort.case_ids('real')):5d} exams (external test of the restoration tasks)")
    return 0


