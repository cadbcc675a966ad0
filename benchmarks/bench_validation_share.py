"""Share of a fine-tuning run's wall time spent validating, with the epoch-end evaluations only and with
``evals_per_run`` evaluations (STUDY §5.2 "Convergence": >= 10 per run).

For each (task, model) the script fine-tunes the point's inits (seed 0, the profile's recipe for the task) with
each ``evals_per_run:eval_subset`` setting (default: ``1:0`` epoch ends only, the former loop; ``10:0`` ten
evaluations on the full validation split; ``10:8`` the intermediate ones on 8 fixed cases) and prints per run
the evaluations after step 0, the training wall seconds (``wall_s`` of the last curve entry: training steps +
validations) and the validation seconds inside it (``val_s``).
Needs the profile's cohort and pre-trained encoders under ``results/<profile>/`` (made by the profile's run).

Run: ``.venv/bin/python benchmarks/bench_validation_share.py --profile cpu --pairs classification:profound``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from transferlimits import paths
from transferlimits.config import get_profile
from transferlimits.models.registry import get_model
from transferlimits.runtime import resolve_device, set_threads
from transferlimits.study import runs as study_runs
from transferlimits.training.finetune import finetune


def measure(profile: str, task: str, model: str, settings: list[tuple[int, int]], inits: list[str]) -> list[dict]:
    """One row per (init, (evals_per_run, eval_subset)): evaluations, wall seconds, validation seconds, share."""
    prof = get_profile(profile)
    set_threads(prof.num_threads)
    dev = resolve_device(prof.device)
    spec, data = study_runs.load_data(prof, task, model, 0)
    study_runs.warm_caches(data)
    pretrained = paths.pretrain_dir(prof.name, model, get_model(model).native_objective) / "encoder.pt"
    encoders = dict(zip(("pretrained", "scratch"), study_runs.load_encoders(prof, model, pretrained, 0, dev)))
    rows = []
    for init in inits:
        for n, subset in settings:
            recipe = replace(prof.finetune_for(task), evals_per_run=n, eval_subset=subset)
            res = finetune(spec, model, encoders[init], init, data, recipe, dev, seed=0, progress=False,
                           spacing=tuple(float(v) for v in prof.grid.spacing))
            last = res.curve[-1]
            rows.append({"task": task, "model": model, "init": init, "evals_per_run": n, "eval_subset": subset,
                         "evaluations": len(res.curve) - 1, "steps": last["step"], "n_val": len(data["val"]),
                         "wall_s": round(last["wall_s"], 2), "val_s": round(last["val_s"], 2),
                         "val_share": round(last["val_s"] / last["wall_s"], 3), "best_step": res.best_step})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--pairs", nargs="+", default=["classification:profound"], help="task:model ...")
    parser.add_argument("--settings", nargs="+", default=["1:0", "10:0", "10:8"],
                        help="evals_per_run:eval_subset ... (default 1:0 10:0 10:8)")
    parser.add_argument("--inits", nargs="+", default=["scratch"])
    args = parser.parse_args()
    for pair in args.pairs:
        task, model = pair.split(":")
        settings = [tuple(int(v) for v in s.split(":")) for s in args.settings]
        measure(args.profile, task, model, settings, args.inits)


if __name__ == "__main__":
    main()
