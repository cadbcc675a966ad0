"""Compute a profile's study without the notebook stack: for an accelerator (render the pages later on the CPU).

Writes exactly the files the grid's notebooks would compute, in the grid's order: the resolved profile
(``results/<profile>/profile.json``), the cohort (``results/<profile>/data``), each pre-training the pairs need,
every (task, model) pair's points and index (``study.run_pair``), then the published result files. Nothing here
imports Snakemake, papermill, Jupyter, IPython, myst_nb, Sphinx or SimpleITK (the ``.mha`` exams are read with
NumPy, :mod:`transferlimits.data.io_mha`). Every unit resumes: re-running the same command continues after an
interruption or a ``--stop-after`` stop. Afterwards, on the CPU, ``python -m transferlimits run --profile P
--render-only`` executes the pages on these points without computing.

With ``--stop-after SECONDS`` the command stops itself before the limit: it starts no pair point it does not
expect to finish (from the longest point so far) and stops a pre-training at a checkpoint (its speed is measured
on a first short piece), then exits 0 with a line saying what is finished and what remains.

Examples:
  python -m transferlimits compute --profile reference --stop-after 480 --device cuda
  python -m transferlimits compute --profile smoke --set seeds=[0] --only task=classification,model=profound
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field

from transferlimits import paths
from transferlimits.config import PROFILES
from transferlimits.data.cohort import build_cohort, open_cohort
from transferlimits.models.registry import get_model
from transferlimits.resolved import load_resolved, write_resolved
from transferlimits.runner.checks import check_data, check_writable
from transferlimits.runner.compute_slices import run_slices, slices_for
from transferlimits.runner.grid import PairJob, build_grid, parse_only
from transferlimits.runner.invocations import record_grid_wall
from transferlimits.runner.overrides import parse_overrides
from transferlimits.runner.provenance import hardware_line
from transferlimits.runner.publish import publish_results, published_dir
from transferlimits.runtime import resolve_device
from transferlimits.study import run_pair
from transferlimits.study.linear_reference import write_linear_references
from transferlimits.study.pair import PairRequest
from transferlimits.study.point import pair_collaborators, run_point
from transferlimits.training.loop import Checkpointer
from transferlimits.training.pretrain import pretrain

__all__ = ["add_arguments", "main", "Clock", "OutOfTime", "UNTIL"]

#: the stages of ``--until``, in order
UNTIL: tuple[str, ...] = ("data", "pretrain", "pairs")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """CLI options of ``python -m transferlimits compute``."""
    p.add_argument("--profile", default="smoke", choices=sorted(PROFILES), help="study profile (default: smoke)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="set",
                   help="a profile override, as for `run --set` (repeatable)")
    p.add_argument("--only", default=None, metavar="KEY=VALUE,...",
                   help="restrict the grid: keys task, model, seed (as for `run --only`)")
    p.add_argument("--stop-after", type=float, default=None, metavar="SECONDS",
                   help="stop cleanly before this many seconds (at a point or pre-training checkpoint); resume with "
                        "the same command")
    p.add_argument("--margin", type=float, default=20.0, metavar="SECONDS",
                   help="safety margin before --stop-after for the publishing and the exit (default 20)")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"),
                   help="torch device (default auto: the profile's device, cuda when available)")
    p.add_argument("--data", default=None, metavar="PATH", help="PI-CAI images folder (profile picai)")
    p.add_argument("--labels", default=None, metavar="PATH", help="picai_labels checkout (profile picai)")
    p.add_argument("--workers", type=int, default=1, help="processes for phantom synthesis (default 1)")
    p.add_argument("--until", default="pairs", choices=UNTIL,
                   help="stop after this stage: data (cohort + linear references), pretrain (+ the pre-trainings of "
                        "the selected pairs) or pairs (everything; default). Stages let several processes share one "
                        "GPU: the data once, then the pre-trainings per model, then the pairs, each its own --only")
    p.add_argument("--parallel", type=_positive_int, default=1, metavar="N",
                   help="run the pre-trainings (one process per model) and then the pairs (one per pair) as up to N "
                        "child processes sharing the device, then resume and publish here (default 1: in-process)")
    p.add_argument("--started-at", type=float, default=None, metavar="EPOCH",
                   help="when the whole job began (Unix seconds; default: this process's start): grid.json records "
                        "this call's wall from then, so a staged job's last call carries the job's wall time")
    p.add_argument("--no-publish", action="store_true",
                   help="do not publish result files when finished (processes running disjoint --only slices in "
                        "parallel; a last call without it publishes)")


def _positive_int(text: str) -> int:
    """argparse type of ``--parallel``: an integer >= 1 (the error names the value)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of processes >= 1")
    return value


class OutOfTime(Exception):
    """Raised between units when the time left is too short for the next one."""


@dataclass
class Clock:
    """The ``--stop-after`` budget: seconds left before the margin, and the longest point so far."""

    limit: float | None
    margin: float = 20.0
    t0: float = field(default_factory=time.time)
    longest_point: float = 0.0

    def left(self) -> float:
        """Seconds left before the limit minus the margin (infinite without a limit)."""
        if self.limit is None:
            return float("inf")
        return self.limit - self.margin - (time.time() - self.t0)

    def check(self, needed: float, what: str) -> None:
        """Raise :class:`OutOfTime` when less than ``needed`` seconds are left for ``what``."""
        if self.left() < max(needed, 0.0):
            raise OutOfTime(what)


def say(text: str) -> None:
    """One progress line on stderr."""
    print(f"[compute] {text}", file=sys.stderr, flush=True)


def _checkpoint_step(out_dir) -> int:
    """Steps done by an interrupted pre-training in ``out_dir`` (0 without a checkpoint)."""
    state = Checkpointer(out_dir, 1).load_latest()
    return int(state["step"]) if state else 0


def run_pretraining(model: str, objective: str, prof, device, clock: Clock) -> None:
    """One pre-training, in pieces that end at a checkpoint before the clock runs out (finished ones are reused).

    Raises:
        OutOfTime: stopped at a checkpoint (or before starting) because the time left is too short.
    """
    out = paths.pretrain_dir(prof.name, model, objective)
    steps = int(prof.pretrain.steps)
    done = _checkpoint_step(out)
    chunk = max(1, min(steps // 10, int(prof.pretrain.checkpoint_every)))  # a first short piece measures speed
    while True:
        clock.check(1.0, f"pre-training {model}/{objective} (at step {done} of {steps})")
        target = min(steps, done + chunk) if clock.limit is not None else steps
        t = time.time()
        result = pretrain(model, objective, prof, device=device, seed=0, out_dir=out,
                          stop_after=None if target >= steps else target, progress=False)
        if result.encoder_path is not None:
            return
        per_step = (time.time() - t) / max(1, target - done)
        done = target
        chunk = int(clock.left() / per_step) if per_step > 0 else steps
        say(f"pre-training {model}/{objective}: step {done} of {steps} ({per_step:.2f} s/step)")
        if chunk < 1:
            raise OutOfTime(f"pre-training {model}/{objective} (checkpoint at step {done} of {steps})")


def run_pair_job(job: PairJob, prof, device, clock: Clock) -> None:
    """Every point of one pair (finished ones resumed), then its index; a point starts only if it should fit."""
    adapter = get_model(job.model)
    encoders = {"native": paths.pretrain_dir(prof.name, job.model, adapter.native_objective) / "encoder.pt"}
    if "swapped" in job.objectives:
        encoders["swapped"] = paths.pretrain_dir(prof.name, job.model, adapter.swapped_objective) / "encoder.pt"

    collaborators = pair_collaborators()  # the job's points share their data (pure views; only time changes)

    def timed_point(key, profile, files, **kw):
        clock.check(clock.longest_point * 1.2, f"point {key.name}")
        t = time.time()
        metrics = run_point(key, profile, files, collaborators=collaborators, **kw)
        clock.longest_point = max(clock.longest_point, time.time() - t)
        return metrics

    request = PairRequest(job.seeds, job.objectives, encoders, job.released,
                          index=paths.pair_index(prof.name, job.task, job.model))
    run_pair(job.task, job.model, prof, request, device=device, progress=False, point_runner=timed_point)


def _plan(args: argparse.Namespace):
    """Resolve and write the profile, validate the options; the resolved profile and its grid."""
    overrides = parse_overrides(args.set or [], args.profile)
    write_resolved(args.profile, overrides)
    prof = load_resolved(args.profile)
    check_data(args.profile, prof.data_source, args.data, args.labels)
    grid = build_grid(args.profile, parse_only(args.only), (), {}, {}, (), overrides)
    return prof, grid


def _compute(args: argparse.Namespace, prof, grid, clock: Clock, done: dict[str, list[str]],
             reopen: bool = False) -> None:
    """Cohort, pre-trainings, pairs, in order; appends each finished unit's name to ``done``.

    ``reopen`` (and every ``--no-publish`` slice) opens a current cohort without touching its files
    (:func:`open_cohort`), so that parallel slices neither rewrite its manifest nor re-fit the linear references."""
    device = resolve_device(args.device if args.device != "auto" else prof.device)
    say(f"profile {prof.name}: {len(grid.pretrain)} pre-training(s), {len(grid.pairs)} pair(s) on {device}")
    clock.check(1.0, "the cohort")
    if reopen or args.no_publish:
        cohort = open_cohort(prof)
    else:
        cohort = build_cohort(prof, workers=args.workers, images_root=args.data or None,
                              labels_root=args.labels or None, progress=False)
    skipped = cohort.manifest.get("real_skipped")
    say(f"cohort ready in {cohort.root}" + (f"; {skipped}" if skipped else ""))
    linear, manifest = paths.linear_references(prof.name), paths.data_dir(prof.name) / "manifest.json"
    if not linear.is_file() or linear.stat().st_mtime < manifest.stat().st_mtime:  # as the data notebook writes it
        write_linear_references(prof, cohort, hardware_line(device), linear)
        say("linear references written")
    if args.until == "data":
        return
    for model, objective in grid.pretrain:
        run_pretraining(model, objective, prof, device, clock)
        done["pretrain"].append(f"{model}/{objective}")
        say(f"pre-training {model}/{objective} finished")
    if args.until == "pretrain":
        return
    for job in grid.pairs:
        run_pair_job(job, prof, device, clock)
        done["pairs"].append(job.name)
        say(f"pair {job.name} finished ({len(job.points())} point(s))")


def main(args: argparse.Namespace) -> int:
    """Compute the grid (or as much as ``--stop-after`` allows); 0 when finished or cleanly stopped."""
    t0 = time.time()
    check_writable(paths.results_dir(args.profile))
    prof, grid = _plan(args)
    clock = Clock(args.stop_after, args.margin, t0)
    done: dict[str, list[str]] = {"pretrain": [], "pairs": []}
    stopped = None
    try:
        if args.parallel > 1 and args.until == "pairs":
            _compute(argparse.Namespace(**{**vars(args), "until": "data"}), prof, grid, clock, done)
            pre, pairs = slices_for(grid, sorted(parse_only(args.only).get("seed", ())))
            for stage in (pre, pairs):
                status = run_slices(args, stage, clock.left, args.parallel, say)
                failed = sorted(name for name, rc in status.items() if rc)
                if failed:
                    say(f"slice(s) {failed} failed (logs in {paths.results_dir(args.profile) / 'logs'}); "
                        "this process computes what they left")
            _compute(args, prof, grid, clock, done, reopen=True)
        else:
            _compute(args, prof, grid, clock, done)
    except OutOfTime as exc:
        stopped = str(exc)
    remaining = {"pretrain": [f"{m}/{o}" for m, o in grid.pretrain if f"{m}/{o}" not in done["pretrain"]],
                 "pairs": [j.name for j in grid.pairs if j.name not in done["pairs"]]}
    partial = args.until != "pairs" or args.no_publish
    if stopped is None and not partial:
        published = publish_results(args.profile, merge=bool(args.only))
        say(f"{len(published)} result file(s) published to {published_dir(args.profile)}"
            + (" (merged: --only keeps the other pairs' published files)" if args.only else ""))
    # a stage of a staged job (parallel slices) is listed but not counted: the last call carries the job's wall
    record_grid_wall(args.profile, t0 if args.started_at is None else args.started_at, 0, None, False,
                     {"command": "compute", "argv": sys.argv[1:], "stopped_before": stopped,
                      "finished": done, "remaining": remaining, "counted": not partial})
    if stopped is not None:
        say(f"stopped before the time limit at {stopped}; finished: {len(done['pretrain'])} pre-training(s), "
            f"{len(done['pairs'])} pair(s) {done['pairs']}; remaining: {remaining['pretrain']} pre-training(s), "
            f"pairs {remaining['pairs']}; resume with the same command")
        return 0
    if partial:
        say(f"stage {args.until} done in {time.time() - t0:.0f} s (not published)")
        return 0
    say(f"done in {time.time() - t0:.0f} s: {len(done['pairs'])} pair(s) in {paths.results_dir(args.profile)}; "
        f"render on the CPU with `python -m transferlimits run --profile {args.profile} --render-only`")
    return 0
