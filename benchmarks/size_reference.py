"""Size a profile's grid to a time budget from measured throughput (issue 27): the GPU command's first step.

In about ``--seconds`` it measures the device's matmul peak, then, for each level of a ladder (largest first),
the seconds per training step of each loop the grid runs (:func:`calibrate_gpu.calibrate`: pre-training and
fine-tuning of every model at that level's sizes; achieved TFLOP/s and MFU printed per loop). From the grid's
step counts at each level (:func:`pair_work`) it projects the level's wall time and picks the largest level that
fits ``--budget``; the chosen level's ``--set`` overrides are written one per line to ``--sets-out`` for the
compute command, and every level's rows, counts and projection to ``--out`` (``calibration.json``).

The ladder (``LADDERS["reference"]``) shrinks the inputs first, then the cases, never the seeds, the tasks,
the encoders' architectures or the experiment design's controls:

* ``published``: the profile as defined (64x224x224 at 1 x 0.5 x 0.5 mm, 448 px slices, every 3rd slice);
* ``half``: 32x112x112 at 2 x 1 x 1 mm, 224 px slices, every 2nd slice (the same field of view);
* ``cpu-grid``: the cpu profile's grid (16x64x64 at 3 x 1.5 x 1.5 mm, 112 px slices), published encoders;
* ``cpu-grid-fewer-cases``: the same with 128 pre-training-pool and 32 training cases (test and validation kept);
* ``cpu-grid-fewest-cases``: 96 pool, 24 training, 16 validation and 64 test cases (under the cpu profile's floor of
  100 test cases: the run page says so).

Projection (:func:`project`): the cohort, then the pre-trainings (one slice per model, in parallel), then the
pairs (one slice each, in parallel; the longest pair sets the wall). Inside the grid a step costs ``--contention``
times its calibrated seconds and each point ``--point-overhead`` seconds beside its fine-tunings; both defaults were
measured in the first GPU attempt (2026-12-04), where a projection from steps alone (x 2 overhead / 2 parallel)
under-estimated the wall several-fold.

Run: ``python benchmarks/size_reference.py --profile reference --seconds 60 --budget 350 --out cal.json
--sets-out sets.txt``; ``--ladder none`` calibrates the profile as given (the CPU rehearsal).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Callable

import torch

from calibrate_gpu import calibrate, matmul_peak
from transferlimits.config import get_profile
from transferlimits.runner.overrides import parse_overrides
from transferlimits.runtime import resolve_device
from transferlimits.paths import PROBED_KINDS
from transferlimits.study.encoder_sources import POSITIVE_POOL_CASES, positive_epochs

#: the cpu profile's grid and slices (with the published encoders)
CPU_GRID = ["grid.shape=[16,64,64]", "grid.spacing=[3,1.5,1.5]", "slice_size=112", "provicnet_slice_step=1"]
#: name -> ordered levels ``(level name, --set overrides)``, largest first
LADDERS: dict[str, list[tuple[str, list[str]]]] = {
    "reference": [
        ("published", []),
        ("half", ["grid.shape=[32,112,112]", "grid.spacing=[2,1,1]", "slice_size=224", "provicnet_slice_step=2"]),
        ("cpu-grid", CPU_GRID),
        ("cpu-grid-fewer-cases", CPU_GRID + ["splits={pretrain: 128, train: 32, val: 24, test: 100}"]),
        ("cpu-grid-fewest-cases", CPU_GRID + ["splits={pretrain: 96, train: 24, val: 16, test: 64}"]),
    ],
    "none": [("as-given", [])],
}
COHORT_S_PER_MVOXEL = 1.0 / 0.78 / 3.2  # seconds per million voxels of one case, one process
EVALUATIONS_PER_RUN = 11  # STUDY 5.2: >= 10 evaluations per run, plus the test pass
#: measured in the first GPU attempt (2026-12-04, H200, 10 slices sharing it; benchmarks/records/
#: reference_gpu_attempt_2026-12-04.json): a step inside the grid took 2.0-3.2x the calibrated step, and a point
#: spent 27-68 s (median 58) outside its fine-tunings (feature extraction, the alignment statistics on the CPU, the
#: test passes, examples)
CONTENTION = 3.0
POINT_OVERHEAD_S = 55.0


def pair_work(prof, task: str) -> dict[str, float]:
    """One (task, model) pair's fine-tuning steps (scaled to the calibrated batch) and its points.

    A seed's native point fine-tunes four runs (pretrained, scratch, linear probe, encoder-ablated), every other
    point its init, plus a linear probe where its kind is probed (``paths.PROBED_KINDS``: swapped, native_short);
    the positive control adds its encoder's training (``POSITIVE_POOL_CASES`` pool cases for
    :func:`~transferlimits.study.encoder_sources.positive_epochs`). A label-budgeted task (``train_cases``) steps
    over that many train cases.
    Each run adds its evaluation forwards (``EVALUATIONS_PER_RUN`` x the evaluation subset, plus the validation
    and test cases) at a third of a step per volume.
    """
    r = prof.finetune_for(task)
    cal_batch = max(2, prof.finetune_for("segmentation").batch_size)
    scale = r.batch_size / cal_batch
    n_train = min(r.train_cases or prof.splits.train, prof.splits.train)
    steps = math.ceil(n_train / r.batch_size) * r.epochs * scale
    evals = (EVALUATIONS_PER_RUN * (r.eval_subset or prof.splits.val) + prof.splits.val + prof.splits.test) \
        / (3.0 * cal_batch)
    kinds = (["swapped"] if task in prof.control_tasks else []) + list(prof.control_inits)
    others = len(kinds)
    runs = len(prof.seeds) * (4 + sum(1 + (k in PROBED_KINDS) for k in kinds))
    work = runs * (steps + evals)
    if "positive" in prof.control_inits:
        pool = min(POSITIVE_POOL_CASES, prof.splits.pretrain)
        work += math.ceil(pool / r.batch_size) * positive_epochs(r, prof.splits.train) * scale
    return {"steps": work, "points": len(prof.seeds) * (1 + others)}


def project(prof, rows: list[dict], contention: float, point_overhead: float, workers: int) -> dict:
    """Projected wall seconds of the staged grid at ``prof`` from calibrated ``rows``.

    The cohort (``COHORT_S_PER_MVOXEL`` per million voxels of a case, over ``workers``), then the pre-trainings
    (one slice per model, in parallel: the longest model's two objectives), then the pairs (one slice each, in
    parallel: the longest pair). Inside the grid a step costs ``contention`` x its calibrated seconds, and each
    point ``point_overhead`` seconds beside its fine-tunings.
    """
    s_step = {r["loop"]: r["s_per_step"] for r in rows}
    n_cases = prof.splits.pretrain + prof.splits.train + prof.splits.val + prof.splits.test
    cohort_s = n_cases * math.prod(prof.grid.shape) / 1e6 * COHORT_S_PER_MVOXEL / max(1, workers)
    pretrain_s = max(2.0 * prof.pretrain.steps * s_step[f"pretrain {m}"] for m in prof.models) * contention
    pairs = {}
    for model in prof.models:
        for task in prof.tasks:
            w = pair_work(prof, task)
            pairs[f"{task}__{model}"] = w["steps"] * s_step[f"finetune {model}"] * contention \
                + w["points"] * point_overhead
    longest = max(pairs, key=pairs.get)
    return {"cohort_s": cohort_s, "pretrain_s": pretrain_s, "pairs_s": pairs, "longest_pair": longest,
            "projected_s": cohort_s + pretrain_s + pairs[longest]}


def size(profile: str, base_sets: list[str], ladder: str, device: torch.device, seconds: float, budget: float,
         contention: float, point_overhead: float, workers: int, peak_tflops: float | None,
         calibrate_level: Callable = calibrate, peak_of: Callable = matmul_peak) -> dict:
    """Calibrate each level (largest first) and choose the largest whose projection fits ``budget`` seconds.

    ``calibrate_level(profile, device, seconds, peak_tflops, peak=...)`` and ``peak_of(device, seconds)`` are
    :func:`calibrate_gpu.calibrate` and :func:`calibrate_gpu.matmul_peak` (tests pass stand-ins)."""
    levels = LADDERS[ladder]
    peak = peak_of(device, min(5.0, seconds / 8))
    share = max(2.0, (seconds - min(5.0, seconds / 8)) / len(levels))
    out: dict = {"profile": profile, "device": str(device), "peak_tflops_measured": peak,
                 "peak_tflops_nominal": peak_tflops, "budget_s": budget, "contention": contention, "point_overhead_s": point_overhead,
                 "levels": [], "chosen": None, "sets": []}
    for name, sets in levels:
        prof = get_profile(profile, **parse_overrides(base_sets + sets, profile))
        print(f"[size] level {name}: grid {prof.grid.shape}, slices {prof.slice_size} px, "
              f"splits {prof.splits}", flush=True)
        t = time.time()
        try:
            cal = calibrate_level(prof, device, share, peak_tflops, peak=peak)
        except (torch.OutOfMemoryError, RuntimeError) as exc:  # e.g. out of memory, or a kernel refusing a size
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
            print(f"[size] level {name}: failed ({type(exc).__name__}: {first})", flush=True)
            out["levels"].append({"level": name, "sets": sets, "error": f"{type(exc).__name__}: {first}"})
            continue
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        proj = project(prof, cal["loops"], contention, point_overhead, workers)
        fits = proj["projected_s"] <= budget
        out["levels"].append({"level": name, "sets": sets, "loops": cal["loops"], **proj, "fits": fits,
                              "calibration_s": time.time() - t})
        print(f"[size] level {name}: projected {proj['projected_s']:.0f} s (cohort {proj['cohort_s']:.0f} s + "
              f"pre-training {proj['pretrain_s']:.0f} s + longest pair {proj['longest_pair']} "
              f"{proj['pairs_s'][proj['longest_pair']]:.0f} s) vs budget {budget:.0f} s: "
              f"{'fits' if fits else 'too long'}", flush=True)
        if fits:
            out["chosen"], out["sets"] = name, sets
            break  # smaller levels would fit too; the time is the grid's
    if out["chosen"] is None:
        name, sets = levels[-1]
        out["chosen"], out["sets"] = name, sets
        print(f"[size] no level fits {budget:.0f} s: the smallest ({name}) runs, and the compute command stops "
              "itself at its limit (a second call resumes)", flush=True)
    print(f"[size] chosen: {out['chosen']} {' '.join(out['sets'])}", flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="reference", help="study profile (default: reference)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="base profile override under every level (as `run --set`)")
    ap.add_argument("--ladder", default="reference", choices=sorted(LADDERS), help="levels to try (default reference)")
    ap.add_argument("--seconds", type=float, default=60.0, help="calibration budget in seconds (default 60)")
    ap.add_argument("--budget", type=float, required=True, help="seconds the grid may take")
    ap.add_argument("--contention", type=float, default=CONTENTION,
                    help=f"a step inside the grid / its calibrated time (default {CONTENTION}: measured 2026-12-04)")
    ap.add_argument("--point-overhead", type=float, default=POINT_OVERHEAD_S,
                    help=f"seconds of a point beside its fine-tunings (default {POINT_OVERHEAD_S}: measured 2026-12-04)")
    ap.add_argument("--workers", type=int, default=16, help="phantom synthesis processes (default 16)")
    ap.add_argument("--device", default="auto", help="torch device (default: cuda when present, else cpu)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="vendor dense bf16 peak, e.g. 989")
    ap.add_argument("--out", help="write every level's calibration and projection as JSON here")
    ap.add_argument("--sets-out", help="write the chosen level's --set overrides here, one per line")
    args = ap.parse_args(argv)
    result = size(args.profile, args.set, args.ladder, resolve_device(args.device), args.seconds, args.budget,
                  args.contention, args.point_overhead, args.workers, args.peak_tflops)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)
    if args.sets_out:
        with open(args.sets_out, "w") as fh:
            fh.write("".join(f"{s}\n" for s in result["sets"]))
    return result


if __name__ == "__main__":
    main()
