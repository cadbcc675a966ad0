"""What the experiment design costs, measured on a finished run, and what a cut would save (issue "an experiment
that can see the encoder", item 10: the ``cpu`` run must fit 90 minutes on two cores).

Reads a results tree (``results/<profile>``: every ``runs/*/metrics.json`` with its ``provenance.timings``, the
pre-trainings' ``pretrain.json``, the positive controls' ``positive.json`` and, when present, ``grid.json``) and
prints the core-minutes of each part of the design:

* per (task, model) pair and per objective kind (``native``, ``swapped``, ``native_short``, the controls): the
  fine-tunings by init (``pretrained``, ``scratch``, ``linear_probe``, ``ablated``), the measurements and the
  rest of the point (data loading, calibration, writing);
* the pre-trainings and the positive controls' own training;

then projects the whole grid (every pair of the profile, from the pairs measured so far: a pair not yet run is
estimated by the same task on the other model times that model's measured cost ratio) as wall minutes on
``--cores`` cores, for the design as run and for each cut in :data:`CUTS` (a cut removes what it names; its
effect on what the run can show is not modelled here, it is the designer's to weigh). ``--seeds N ...`` adds the
same projections at N seeds per point (the points' cost scales with N, the pre-trainings and positive controls do
not): ``benchmarks/power.py`` says which seed count detects what, this what it costs.

Usage::

    python benchmarks/design_cost.py --results results/cpu [--cores 2] [--seeds 4 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from typing import Callable

from transferlimits.jsonsafe import dumps_strict, loads_strict
from transferlimits.paths import PROBED_KINDS
from transferlimits.reporting.design_report import untimed_s

#: name -> (description, predicate on (kind, init): the fine-tuning a cut removes; on (kind, "pretrained"): the
#: whole point of that kind)
CUTS: dict[str, tuple[str, Callable[[str, str], bool]]] = {
    "no_probe_on_controls": ("linear probe only on the objectives' points (the design since 2026-12-04: "
                             "paths.PROBED_KINDS; removes what older runs still trained)",
                             lambda kind, init: init == "linear_probe" and kind not in PROBED_KINDS),
    "no_random": ("one negative control (transfusion), not the second random initialisation",
                  lambda kind, init: kind == "random"),
    "no_native_short": ("no second pre-training length", lambda kind, init: kind == "native_short"),
}


def load_points(results: Path) -> list[dict]:
    """Every ``runs/*/metrics.json`` under ``results`` (strict JSON)."""
    paths = sorted((results / "runs").glob("*/metrics.json"))
    if not paths:
        raise SystemExit(f"{results}: no runs/*/metrics.json (give --results the profile folder, e.g. results/cpu)")
    return [loads_strict(p.read_text()) for p in paths]


def point_parts(m: dict) -> dict[str, float]:
    """Core-seconds of one point: ``ft:<init>`` per fine-tuning, ``measure``, ``rest`` (total minus both)."""
    t = m["provenance"]["timings"]
    ft = {f"ft:{k}": float(v or 0.0) for k, v in (t.get("finetune_s") or {}).items()}
    return {**ft, "measure": float(t.get("measure_s") or 0.0), "rest": untimed_s(t)}


def pair_costs(points: list[dict]) -> dict[tuple[str, str], dict[str, dict[str, float]]]:
    """(task, model) -> objective kind -> part -> core-seconds summed over seeds."""
    out: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(float)))
    for m in points:
        for part, sec in point_parts(m).items():
            out[(m["task"], m["model"])][m["objective"]][part] += sec
    return out


def side_costs(results: Path) -> dict[str, float]:
    """Core-seconds of the pre-trainings (``pretrain:<model>__<objective>``) and positive controls' training."""
    out = {}
    for f in sorted((results / "pretrain").glob("*/pretrain.json")):
        out[f"pretrain:{f.parent.name}"] = float(loads_strict(f.read_text()).get("wall_seconds") or 0.0)
    for f in sorted((results / "pretrain").glob("*/positive.json")):
        out[f"positive:{f.parent.name}"] = float(loads_strict(f.read_text()).get("train_seconds") or 0.0)
    return out


def unmeasured_positives(side: dict[str, float], tasks: list[str], models: list[str]) -> tuple[float, int]:
    """Core-seconds of the positive controls not trained yet, and how many: each the mean of the same model's
    measured ones (none: of all measured ones; none at all: not estimated)."""
    done = {k.split(":", 1)[1]: v for k, v in side.items() if k.startswith("positive:")}
    total, n = 0.0, 0
    for model in models:
        same = [v for k, v in done.items() if k.startswith(f"{model}__positive__")] or list(done.values())
        for task in tasks:
            if f"{model}__positive__{task}" not in done and same:
                total, n = total + sum(same) / len(same), n + 1
    return total, n


def per_seed(points: list[dict]) -> dict[tuple[str, str], dict[str, dict[str, float]]]:
    """(task, model) -> objective kind -> part -> mean core-seconds per seed (over the seeds measured)."""
    sums = pair_costs(points)
    seeds: dict = defaultdict(set)
    for m in points:
        seeds[(m["task"], m["model"], m["objective"])].add(m["seed"])
    return {pair: {kind: {part: sec / len(seeds[(*pair, kind)]) for part, sec in parts.items()}
                   for kind, parts in kinds.items()} for pair, kinds in sums.items()}


def project(points: list[dict], tasks: list[str], models: list[str], kinds: list[str], n_seeds: int,
            drop: Callable[[str, str], bool] | None = None) -> float:
    """Core-seconds of the whole grid (every pair × ``kinds`` × ``n_seeds``) from the points measured so far.

    A kind not measured on a pair costs the mean per seed of the pair's measured kinds other than ``native`` (a
    control point: one pretrained run, a probe and the measurements; none measured: the native point without its
    scratch and ablated runs, which the other points reuse); a pair not measured costs the same task on
    another model times the ratio of the two models' costs on the tasks both ran (none: the mean measured pair).
    ``drop(kind, init)`` removes what a cut (:data:`CUTS`) names.
    """
    seedly = per_seed(points)

    def cost(parts: dict[str, float], kind: str) -> float:
        if drop is not None and drop(kind, "pretrained"):
            return 0.0
        return sum(sec for part, sec in parts.items()
                   if not (drop is not None and part.startswith("ft:") and drop(kind, part[3:])))

    def pair_total(pair) -> float:
        have = seedly[pair]
        others = [have[k] for k in have if k != "native"]
        if not others and "native" in have:  # a point reusing the native scratch and ablated runs
            others = [{p: v for p, v in have["native"].items() if p not in ("ft:scratch", "ft:ablated")}]
        total = 0.0
        for kind in kinds:
            if kind in have:
                total += cost(have[kind], kind)
            elif others:  # a control point costs what the pair's measured non-native points cost
                total += sum(cost(parts, kind) for parts in others) / len(others)
        return total * n_seeds

    measured = {pair: pair_total(pair) for pair in seedly}
    ratio = {}
    for a in models:
        for b in models:
            common = [t for t in tasks if (t, a) in measured and (t, b) in measured]
            if a != b and common:
                ratio[(a, b)] = sum(measured[(t, a)] for t in common) / sum(measured[(t, b)] for t in common)
    mean_pair = sum(measured.values()) / max(len(measured), 1)
    total = 0.0
    for t in tasks:
        for mdl in models:
            if (t, mdl) in measured:
                total += measured[(t, mdl)]
                continue
            other = [measured[(t, b)] * ratio[(mdl, b)] for b in models if (t, b) in measured and (mdl, b) in ratio]
            total += other[0] if other else mean_pair
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--results", type=Path, required=True, help="the profile's results folder (e.g. results/cpu)")
    ap.add_argument("--cores", type=int, default=2, help="cores the grid runs on (default 2)")
    ap.add_argument("--seeds", type=int, nargs="*", default=[],
                    help="also project at these seed counts per point (e.g. 4 5)")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args(argv)
    if args.cores < 1:
        ap.error(f"--cores must be >= 1, got {args.cores}")
    if any(n < 1 for n in args.seeds):
        ap.error(f"--seeds must be >= 1, got {args.seeds}")
    points = load_points(args.results)
    costs = pair_costs(points)
    side = side_costs(args.results)
    prof_file = args.results / "profile.json"
    prof = loads_strict(prof_file.read_text()) if prof_file.exists() else {}
    run_prof = prof.get("profile", prof)
    tasks = sorted({t for t, _ in costs} | set(run_prof.get("tasks") or []))
    models = sorted({m for _, m in costs} | set((run_prof.get("encoder_sizes") or {}).keys()))
    print(f"{len(points)} points in {len(costs)} of {len(tasks) * len(models)} (task, model) pairs, {args.results}")
    for pair, kinds in sorted(costs.items()):
        print(f"\n{pair[0]} / {pair[1]}: {sum(sum(p.values()) for p in kinds.values()) / 60:.1f} core-min")
        for kind, parts in sorted(kinds.items()):
            cells = ", ".join(f"{k} {v / 60:.1f}" for k, v in sorted(parts.items()) if v > 0)
            print(f"  {kind:13s} {sum(parts.values()) / 60:5.1f}  ({cells})")
    print("\npre-trainings and positive controls (core-min):",
          ", ".join(f"{k} {v / 60:.1f}" for k, v in side.items()) or "none found")
    kinds = ["native", "swapped"] + [k for k in run_prof.get("control_inits") or [] if k != "native"]
    n_seeds = len(run_prof.get("seeds") or []) or max(len({m["seed"] for m in points}), 1)
    measured = sum(sum(sum(p.values()) for p in kinds_.values()) for kinds_ in costs.values())
    side_s = sum(side.values())
    guessed_s, n_guessed = unmeasured_positives(side, tasks, models) if "positive" in kinds else (0.0, 0)
    side_s += guessed_s
    grid = args.results / "grid.json"
    wall = loads_strict(grid.read_text()).get("wall_s") if grid.exists() else None
    rows = {"as run": project(points, tasks, models, kinds, n_seeds) + side_s}
    cuts = {name: drop for name, (_, drop) in CUTS.items()}
    first, second = CUTS["no_probe_on_controls"][1], CUTS["no_random"][1]
    cuts["no_probe_on_controls+no_random"] = lambda kind, init: first(kind, init) or second(kind, init)
    for name, drop in cuts.items():
        rows[name] = project(points, tasks, models, kinds, n_seeds, drop) + side_s
    for n in args.seeds:
        rows[f"as run @ {n} seeds"] = project(points, tasks, models, kinds, n) + side_s
        rows[f"no_probe_on_controls @ {n} seeds"] = project(points, tasks, models, kinds, n, first) + side_s
    print(f"\npoints measured {measured / 60:.1f} core-min; the grid ({len(tasks)} tasks x {len(models)} models x "
          f"{len(kinds)} kinds x {n_seeds} seeds) projected from them; + pre-training and positive controls "
          f"{side_s / 60:.1f} ({n_guessed} positive control(s) not trained yet estimated at "
          f"{guessed_s / 60:.1f} from the trained ones of their model)"
          + (f"; this tree's grid.json wall {wall / 60:.1f} min" if wall else ""))
    print(f"projected wall on {args.cores} cores (core-min / cores; notebooks, cohort and idle cores are not "
          "included):")
    for name, sec in rows.items():
        desc = CUTS[name][0] if name in CUTS else ("both cuts above" if "+" in name else "the design as run"
                                                   if name == "as run" else "the same at that many seeds per point")
        print(f"  {name:36s} {sec / 60 / args.cores:6.1f} min   {desc}")
    if args.json:
        walls = {k: v / args.cores for k, v in rows.items()}
        args.json.write_text(dumps_strict({"points": len(points), "pairs": len(costs), "cores": args.cores,
                                           "measured_core_s": measured, "side_core_s": side,
                                           "positive_estimated": {"n": n_guessed, "core_s": guessed_s},
                                           "projected_wall_s": walls}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
