"""Would more seeds let the design see its positive control? The control check of a finished run, re-read with
extra seeds of its controls trained outside the grid.

The design check (``study.control_check``) tests the paired gain encoder − scratch with a one-sided t over the
pair's seeds and Holm over the 10 (task, model) points of each control kind; with the ``cpu`` profile's 3 seeds
the first rejection needs t ≥ 9.92 (2 df). This script trains, for every (task, model) pair asked, the three runs
the check compares -- ``scratch``, ``positive`` and ``random`` (the negative control) -- at further seeds, with
the very calls of a grid point (``study.runs.load_data`` / ``scratch_encoder``, the controls' ``encoder.pt``
under ``results/<profile>/pretrain`` made by ``study.encoder_sources``, ``training.finetune`` with the task's
recipe), and prints the control table at the run's own seeds and at the run's seeds plus the extra ones, both
through ``control_check.control_table`` and ``design_check``. Asked for a seed the run has (e.g. ``--seeds 0``), it
prints how far its scores are from the run's (a reproduction check: 0 on the same machine and code).

Each finished training is appended to ``--out`` (JSON lines) at once and skipped on a re-run, so two processes
can share the pairs (``--pairs``) and a killed one resumes; ``--report`` only reads. Cost, seeds 3 and 4 of all 10 pairs:
41 core-minutes (two processes on the 2-core machine, partly beside other jobs).

    .venv/bin/python benchmarks/control_seeds.py --results results/cpu --seeds 3 4 --out seeds.jsonl \\
        --pairs super_resolution:provicnet distortion_correction:provicnet
    .venv/bin/python benchmarks/control_seeds.py --results results/cpu --out seeds.jsonl --report
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from transferlimits.config import get_profile
from transferlimits.runner.provenance import hardware_line
from transferlimits.study import runs as study_runs
from transferlimits.study.control_check import control_table, design_check
from transferlimits.study.encoder_sources import encoder_source
from transferlimits.study.schema import load_metrics
from transferlimits.training.finetune import finetune
from transferlimits.training.pretrain_record import load_pretrained_encoder

#: the runs the check compares: kind -> the point's init
KINDS = {"scratch": "scratch", "positive": "pretrained", "random": "pretrained"}


def _done(out: Path) -> dict[tuple, dict]:
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()] if out.is_file() else []
    return {(r["task"], r["model"], r["seed"], r["kind"]): r for r in rows}


def train(prof, task: str, model: str, seeds: list[int], out: Path) -> None:
    """Train the missing (seed, kind) runs of one pair and append each to ``out`` as it finishes."""
    done = _done(out)
    recipe, device = prof.finetune_for(task), torch.device("cpu")
    files = {k: encoder_source(k).encoder_file(prof, model, task, device) for k in KINDS if k != "scratch"}
    for seed in seeds:
        todo = [k for k in KINDS if (task, model, seed, k) not in done]
        if not todo:
            continue
        spec, data = study_runs.load_data(prof, task, model, seed)
        study_runs.warm_caches(data)
        for kind in todo:
            encoder = study_runs.scratch_encoder(prof, model, seed) if kind == "scratch" \
                else load_pretrained_encoder(files[kind], "cpu")[0]
            t0 = time.perf_counter()
            res = finetune(spec, model, encoder, KINDS[kind], data, recipe, device, seed=seed, progress=False,
                           spacing=tuple(float(s) for s in prof.grid.spacing))
            row = {"task": task, "model": model, "seed": seed, "kind": kind, "metric": spec.primary_metric,
                   "higher_is_better": bool(spec.higher_is_better),
                   "test": float(res.test_scores[spec.primary_metric]),
                   "seconds": round(time.perf_counter() - t0, 1)}
            print(json.dumps(row), flush=True)
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")


def _extra_points(rows: dict[tuple, dict]) -> list[dict]:
    """Minimal point dicts (the fields ``control_table`` reads) for the extra seeds, one per control kind."""
    points = []
    for (task, model, seed, kind), r in rows.items():
        scratch = rows.get((task, model, seed, "scratch"))
        if kind == "scratch" or scratch is None:
            continue
        metric = r["metric"]
        points.append({"task": task, "model": model, "seed": seed, "objective": kind, "objective_name": kind,
                       "task_spec": {"primary_metric": metric, "higher_is_better": r["higher_is_better"]},
                       "runs": {"pretrained": {"test": {metric: r["test"]}},
                                "scratch": {"test": {metric: scratch["test"]}}},
                       "baseline_primary": None, "rpg_primary": None})
    return points


def _run_score(run: list[dict], row: dict) -> float | None:
    """The run's own test score of an extra row's (task, model, seed, kind), or None where the run has none."""
    for m in run:
        if (m["task"], m["model"], m["seed"]) == (row["task"], row["model"], row["seed"]) and \
                (row["kind"] == "scratch" or m["objective"] == row["kind"]):
            init = "scratch" if row["kind"] == "scratch" else "pretrained"
            return m["runs"][init]["test"].get(row["metric"])
    return None


def report(results: Path, out: Path, load: Callable[[Path], dict] = load_metrics) -> int:
    """Print the control table at the run's seeds and with the extra ones (1 if the run has no control point);
    ``load`` reads one metrics.json (default the schema-checked reader)."""
    run = [load(p) for p in sorted((results / "runs").glob("*/metrics.json"))]
    run = [m for m in run if m["objective"] in ("positive", "random")]
    if not run:
        print(f"{results}: no positive or random control points", file=sys.stderr)
        return 1
    extra = [m for m in _extra_points(_done(out)) if m["seed"] not in {p["seed"] for p in run}]
    tables = {"run": control_table(run), "run + extra": control_table(run + extra)}
    for name, table in tables.items():
        seeds = sorted({p["seed"] for p in (run if name == "run" else run + extra)})
        print(f"\n== {name}: seeds {seeds}")
        cols = ["task", "model", "kind", "n", "mean", "sd", "p", "p_holm", "detected"]
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print(design_check(table)["text"])
    same = [(r["test"], _run_score(run, r)) for r in _done(out).values() if _run_score(run, r) is not None]
    if same:
        gap = max(abs(a - b) for a, b in same)
        print(f"\nreproduction: {len(same)} extra runs at the run's own seeds, max |difference| {gap:.3g}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="cpu",
                   help="the profile whose recipe, cohort and control encoders (results/<profile>/pretrain) are used")
    p.add_argument("--results", type=Path, required=True, help="a finished run's results folder (runs/*/metrics.json)")
    p.add_argument("--seeds", type=int, nargs="+", default=[3, 4], help="the extra seeds to train (default 3 4)")
    p.add_argument("--pairs", nargs="+", default=None, help="task:model pairs to train (default: every pair of the run)")
    p.add_argument("--out", type=Path, required=True, help="JSON lines of the extra runs (appended, resumed)")
    p.add_argument("--report", action="store_true", help="train nothing; print the tables")
    args = p.parse_args(argv)
    if not args.report:
        torch.set_num_threads(1)
        prof = get_profile(args.profile)
        bad = [s for s in args.pairs or [] if s.count(":") != 1]
        if bad:
            p.error(f"--pairs takes task:model, got {bad[0]!r}")
        pairs = [tuple(s.split(":")) for s in args.pairs] if args.pairs else sorted(
            {(m.parent.name.split("__")[0], m.parent.name.split("__")[1])
             for m in (args.results / "runs").glob("*/metrics.json")})
        print(hardware_line(), flush=True)
        for task, model in pairs:
            train(prof, task, model, args.seeds, args.out)
    return report(args.results, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
