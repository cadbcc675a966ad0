"""Linear references on a profile's cohort, outside the grid: what a closed-form linear model learns of each task.

The grid writes ``results/<profile>/linear_references.json`` with the cohort (the data notebook;
:mod:`transferlimits.study.linear_reference`, each task kind's ``linear_reference``). This script recomputes it on
its own, e.g. to tell a point that misses its floor apart: a task a linear model fitted on the same training cases
learns (then the network lacked optimisation steps), or one it does not (then the margin asks for more than the
data hold). It prints one line per task. Single-threaded; about 35 s on the ``cpu`` cohort.

    .venv/bin/python benchmarks/linear_references.py --profile cpu [--out PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from transferlimits import paths
from transferlimits.config import get_profile
from transferlimits.data.cohort import open_cohort
from transferlimits.runner.provenance import hardware_line
from transferlimits.study.linear_reference import write_linear_references


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="cpu")
    p.add_argument("--out", type=Path, default=None, help="JSON output (default results/<profile>/linear_references.json)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    prof = get_profile(args.profile)
    path = args.out or paths.linear_references(args.profile)
    refs = write_linear_references(prof, open_cohort(prof), hardware_line(), path)
    for task, res in refs["tasks"].items():
        print(task, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items() if k != "model"})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
