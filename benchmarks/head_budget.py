"""How many optimiser steps a fresh head needs to read an encoder that already learned the task.

The positive control (``study.encoder_sources``: an encoder trained on the task on the pre-training pool, with its
own head, for ``POSITIVE_EPOCH_FACTOR`` x the task's epochs on ``POSITIVE_POOL_CASES`` cases) is only detected
when a point's fine-tuning can use it: every point starts a fresh head. This script re-trains, outside the grid,
the task's recipe at several epoch counts (everything else as the profile) from

* ``probe_positive``: the positive-control encoder frozen, only the fresh head trained (the linear-probe init);
* ``positive``: the positive-control encoder fine-tuned with the head (the point's ``pretrained`` init);
* ``scratch``: a random encoder and head,

and prints the test score of each (the primary metric) beside the trivial baselines, with the optimiser steps.
``--train-cases N`` fine-tunes every init on the first N train cases only (a label budget, ``FinetuneRecipe.
train_cases``; the positive-control encoder stays the profile's own), ``--recipe FIELD=VALUE ...`` changes the task
recipe (e.g. ``lr=2e-3 warmup_epochs=1``) for every init alike.
It uses the profile's cohort and positive-control encoder under ``results/<profile>`` (training the encoder
first if it is missing or stale; only when an init other than ``scratch`` needs it). Single-threaded; ProFound
super-resolution at 3, 6, 12 and 30 epochs, one seed, all three inits: ~6 min on one core.

    .venv/bin/python benchmarks/head_budget.py --task super_resolution --model profound --epochs 3 6 12 30
    .venv/bin/python benchmarks/head_budget.py --task segmentation --model provicnet --epochs 24 --train-cases 16 \
        --seeds 0 1 2 --inits positive scratch
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from transferlimits.config import get_profile
from transferlimits.runner.provenance import hardware_line
from transferlimits.study import runs as study_runs
from transferlimits.study.encoder_sources import encoder_source
from transferlimits.training.finetune import finetune
from transferlimits.training.pretrain_record import load_pretrained_encoder

INITS = {"probe_positive": "linear_probe", "positive": "pretrained", "scratch": "scratch"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="cpu")
    p.add_argument("--task", default="super_resolution")
    p.add_argument("--model", default="profound")
    p.add_argument("--epochs", type=int, nargs="+", default=[3, 6, 12, 30])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--inits", nargs="+", default=list(INITS), choices=list(INITS))
    p.add_argument("--light-decoder", choices=["profile", "on", "off"], default="profile",
                   help="the dense head: the profile's FinetuneRecipe.light_decoder (default), or forced on / off "
                        "(on: the adapter's light decoder where it has one)")
    p.add_argument("--train-cases", type=int, default=None, metavar="N",
                   help="fine-tune on the first N cases of the train split (a label budget); default: the recipe's")
    p.add_argument("--recipe", nargs="+", default=[], metavar="FIELD=VALUE",
                   help="change the task's FinetuneRecipe for every init (values parsed as JSON, e.g. lr=2e-3)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    prof, device = get_profile(args.profile), torch.device("cpu")
    changes = _recipe_changes(p, args.recipe)
    if args.train_cases is not None:
        changes["train_cases"] = args.train_cases
    try:  # the data follow the changed recipe (its label budget); the positive control stays the profile's own
        data_prof = prof.with_task_finetune(args.task, **changes) if changes else prof
    except ValueError as err:
        p.error(str(err))
    base = data_prof.finetune_for(args.task)
    if args.light_decoder != "profile":
        base = dataclasses.replace(base, light_decoder=args.light_decoder == "on")
    # the positive-control encoder (trained first if missing) only when an init reads it
    pos_file = (encoder_source("positive").encoder_file(prof, args.model, args.task, device)
                if set(args.inits) - {"scratch"} else None)
    rows = []
    for seed in args.seeds:
        try:
            spec, data = study_runs.load_data(data_prof, args.task, args.model, seed)
        except ValueError as err:  # e.g. a label budget beyond the train split
            p.error(f"--train-cases: {err}")
        study_runs.warm_caches(data)
        baselines = study_runs.baselines_of(spec, data, prof.grid.spacing)
        print(f"seed {seed} baselines", {k: round(v[spec.primary_metric], 4) for k, v in baselines.items()}, flush=True)
        for epochs in args.epochs:
            recipe = dataclasses.replace(base, epochs=int(epochs))
            for name in args.inits:
                enc = (study_runs.scratch_encoder(prof, args.model, seed) if name == "scratch"
                       else load_pretrained_encoder(pos_file, device)[0])
                t0 = time.perf_counter()
                res = finetune(spec, args.model, enc, INITS[name], data, recipe, device, seed=seed, progress=False,
                               spacing=prof.grid.spacing)
                steps = int(res.curve[-1].get("step", 0)) if res.curve else 0
                row = {"seed": seed, "epochs": epochs, "steps": steps, "init": name,
                       "score": float(res.test_scores[spec.primary_metric]), "best_epoch": res.best_epoch,
                       "seconds": time.perf_counter() - t0}
                rows.append(row)
                print(" ", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    out = {"profile": args.profile, "task": args.task, "model": args.model, "metric": spec.primary_metric,
           "light_decoder": bool(base.light_decoder), "recipe_changes": changes, "train_cases": len(data["train"]),
           "hardware": hardware_line(), "positive_encoder": str(pos_file) if pos_file else None, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


def _recipe_changes(parser: argparse.ArgumentParser, items: list[str]) -> dict:
    """``FIELD=VALUE`` items as a dict (values parsed as JSON, else kept as text); a malformed item is a usage error."""
    out = {}
    for item in items:
        field, sep, value = item.partition("=")
        if not sep or not field:
            parser.error(f"--recipe {item!r}: expected FIELD=VALUE, e.g. lr=2e-3")
        try:
            out[field] = json.loads(value)
        except ValueError:
            out[field] = value
    return out


if __name__ == "__main__":
    raise SystemExit(main())
