"""Check a finished ``cpu`` study against its scientific floor; exit non-zero naming every failing item.

The rules live in :mod:`transferlimits.reporting.floor` (the book's run page tabulates the same rows). Checks,
over the metrics.json files under ``--results`` (default ``results/cpu``; the committed run is published to
``book/generated/cpu/results``):

* every point's ``pretrained`` and ``scratch`` runs beat the task's trivial baseline on the test split by the
  stated margin (:data:`MARGINS`): >= 1 dB PSNR over the identity for super-resolution and distortion correction,
  gland MAE below the train-median constant for modality translation, AUROC >= 0.6 for classification, Dice
  above the empty mask for segmentation; other tasks: strictly better than their baseline. The primary metric
  and its direction come from each file's ``task_spec``; the baseline from ``baselines`` ({name: {metric:
  value}}; the baseline of a task is its only entry, or the entry named in :data:`BASELINE_NAMES`);
* ``contrastive_active_fraction`` >= 0.5 in the ``pretrain.json`` of every contrastive pre-training, so for both
  backbones (``pretrain/<model>__contrastive/pretrain.json``);
* the whole-grid wall time <= 90 min, from ``grid.json`` (``wall_s``; written by ``transferlimits run``).

A run below the baseline floor that ``--explanations`` (the book's ``book/floor_explanations.yml``) explains is
printed as EXPLAINED and does not fail the check; the book prints the same reason beside it.

Run: ``.venv/bin/python scripts/check_cpu_profile.py [--results results/cpu] [--max-wall-min 90]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from transferlimits.reporting.floor import (BASELINE_NAMES, EXPLANATIONS, MARGINS, check_tree,  # noqa: F401
                                            explained_rule_failures, load_explanations, split_explained)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results/cpu"), help="tree of the cpu study")
    parser.add_argument("--max-wall-min", type=float, default=90.0)
    parser.add_argument("--min-active", type=float, default=0.5, help="minimum contrastive_active_fraction")
    parser.add_argument("--explanations", type=Path, default=EXPLANATIONS,
                        help="the book's explanations of points below the floor (default book/floor_explanations.yml; "
                             "pass /dev/null to count every failure)")
    args = parser.parse_args(argv)
    failures, n = check_tree(args.results, args.max_wall_min, args.min_active)
    entries = load_explanations(args.explanations)
    _, explained = split_explained(args.results, entries)
    explained += explained_rule_failures(failures, entries)
    for line in explained:
        print(f"EXPLAINED {line}")
    failures = [f for f in failures if f not in explained]
    for line in failures:
        print(f"FAIL {line}")
    print(f"{n} point(s) checked under {args.results}: {'OK' if not failures else f'{len(failures)} failure(s)'}"
          + (f"; {len(explained)} run(s) below the floor, each explained in {args.explanations}" if explained else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
