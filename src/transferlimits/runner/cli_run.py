"""Run the study grid of a profile: a thin wrapper around the Snakemake workflow in workflow/Snakefile.

Each Snakemake job executes ONE notebook template with papermill (kernel python3, parameters
validated against the template): data -> pre-training per (model, objective) -> task x model x seed
-> objective x architecture control -> alignment. Executed notebooks go to book/generated/<profile>/,
metrics to results/<profile>/runs/<task>__<model>__seed<k>/metrics.json, logs (with tqdm progress) to
results/<profile>/logs/. Snakemake decides what is up to date (inputs, params, code, mtime); an
interrupted grid resumes where it stopped (--rerun-incomplete) and finished runs are never redone.

Examples:
  python -m transferlimits run --profile smoke --cores 2
  python -m transferlimits run --profile smoke --only task=segmentation,model=profound --force
  python -m transferlimits run --profile smoke --param segmentation.finetune_epochs=2
  python -m transferlimits run --profile picai --data /data/picai --weights profound=/w/profound.pt
  python -m transferlimits run --profile smoke --task-module mytasks --task-notebook gland_volume=nb/15_gland_volume.py
  python -m transferlimits run --profile smoke --model-module mymodel --only model=mymodel,task=segmentation
  python -m transferlimits run --profile reference --snakemake-profile workflow/profiles/slurm

Environment: TRANSFERLIMITS_RESULTS moves results/; TRANSFERLIMITS_ROOT moves the whole tree
(book/generated included).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from transferlimits import paths
from transferlimits.config import PROFILES
from transferlimits.models.registry import model_names
from transferlimits.runner import workflow as wf

__all__ = ["add_arguments", "main", "build_config", "parse_pairs"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="smoke", choices=sorted(PROFILES), help="study profile (default: smoke)")
    p.add_argument("--only", default=None, metavar="KEY=VALUE,...",
                   help="restrict the grid: keys task, model, seed (repeat a key for several values)")
    p.add_argument("--force", action="store_true",
                   help="re-run the selected jobs even if up to date (with --only: the runs and summaries only)")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="PI-CAI public images folder (profile picai); passed to the data notebook")
    p.add_argument("--weights", nargs="+", default=[], metavar="NAME=PATH",
                   help=f"released encoder weights per model ({', '.join(model_names())}); such models skip "
                        "pre-training")
    p.add_argument("--cores", type=int, default=2, help="cores Snakemake may use (default 2)")
    p.add_argument("--dry-run", "-n", action="store_true", help="only list the jobs that would run")
    p.add_argument("--task-module", action="append", default=[], metavar="MODULE",
                   help="import MODULE, which registers new tasks with transferlimits.data.tasks.register_task; "
                        "its tasks join the grid (repeatable)")
    p.add_argument("--model-module", action="append", default=[], metavar="MODULE",
                   help="import MODULE, which registers a foundation model with "
                        "transferlimits.models.registry.register_model; its models join the grid (repeatable)")
    p.add_argument("--task-notebook", action="append", default=[], metavar="TASK=PATH",
                   help="notebook template of a task (default notebooks/NN_<task>.py) (repeatable)")
    p.add_argument("--param", action="append", default=[], metavar="TASK.NAME=VALUE",
                   help="a notebook parameter of one task's runs, validated against its template (repeatable); "
                        "changing it re-runs only that task's runs and the summaries")
    p.add_argument("--gpu", type=int, default=None, choices=(0, 1),
                   help="declare resources gpu=1 for GPU rules (default: 1 when CUDA is available)")
    p.add_argument("--snakemake-profile", default=None, metavar="DIR",
                   help="Snakemake profile folder (default workflow/profiles/local; e.g. workflow/profiles/slurm)")
    p.add_argument("--snakemake-args", default="", metavar="'ARGS'",
                   help="extra arguments passed to snakemake verbatim (quoted)")


def parse_pairs(items: list[str], what: str) -> dict[str, str]:
    """``["a=1", "b=2"]`` -> ``{"a": "1", "b": "2"}``; raises ValueError naming ``what`` on bad items."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"{what} item {item!r} is not NAME=VALUE")
        out[key] = value
    return out


def build_config(args: argparse.Namespace) -> dict:
    """The Snakemake config of one invocation, validated (grid, weights, per-task parameters)."""
    from transferlimits.runner.params import validate_parameters

    model_modules = list(getattr(args, "model_module", []) or [])
    wf.load_model_modules(model_modules)
    weights = parse_pairs(args.weights, "--weights")
    bad = sorted(set(weights) - set(model_names()))
    if bad:
        raise ValueError(f"--weights model {bad[0]!r} is unknown; valid: {list(model_names())}")
    for model, path in weights.items():
        if not Path(path).is_file():
            raise ValueError(f"--weights {model}={path}: file does not exist")
    if args.data and not Path(args.data).exists():
        raise ValueError(f"--data {args.data}: folder does not exist")
    only = wf.parse_only(args.only)
    notebooks = {k: str(Path(v).resolve()) for k, v in parse_pairs(args.task_notebook, "--task-notebook").items()}
    grid = wf.build_grid(args.profile, only, args.task_module, notebooks, weights, model_modules)
    task_params: dict[str, dict[str, str]] = {}
    for key, value in parse_pairs(args.param, "--param").items():
        task, sep, name = key.partition(".")
        if not sep or task not in grid.templates:
            raise ValueError(f"--param {key!r} must be TASK.NAME with TASK in {sorted(grid.templates)}")
        validate_parameters(grid.templates[task], {name: value})
        task_params.setdefault(task, {})[name] = value
    gpu = args.gpu
    if gpu is None:
        from transferlimits.runtime import resolve_device

        gpu = int(resolve_device("auto").type == "cuda")
    return {
        "profile": args.profile,
        "only": {k: sorted(v) for k, v in only.items()},
        "task_modules": list(args.task_module),
        "model_modules": model_modules,
        "task_notebooks": notebooks,
        "task_params": task_params,
        "weights": {k: str(Path(v).resolve()) for k, v in weights.items()},
        "data": str(Path(args.data).resolve()) if args.data else "",
        "gpu": int(gpu),
    }


def snakemake_for(args: argparse.Namespace, dry_run: bool | None = None, extra: list[str] | None = None) -> list[str]:
    """Write the config file and return the Snakemake command line for ``args``."""
    import shlex

    config = build_config(args)
    cfg = wf.write_config(paths.results_dir(args.profile) / ".runtime" / "run_config.yaml", config)
    force: list[str] = []
    more = shlex.split(getattr(args, "snakemake_args", "") or "") + list(extra or [])
    if getattr(args, "force", False):
        if config["only"]:
            force = ["task_run", "control_run", "control", "alignment"]
        else:
            more.append("--forceall")
    return wf.snakemake_command(
        cfg, cores=getattr(args, "cores", 2), force=force,
        dry_run=args.dry_run if dry_run is None else dry_run,
        profile_dir=getattr(args, "snakemake_profile", None), extra=more,
    )


_RUN_PID = paths.ROOT / ".snakemake" / "transferlimits-run.pid"


def _pid_alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _claim_checkout(cmd: list[str]) -> None:
    """One grid run per checkout: refuse while another is alive; clear the locks a killed run left behind."""
    import os

    if _RUN_PID.exists():
        try:
            pid = int(_RUN_PID.read_text().strip() or 0)
        except ValueError:
            pid = 0
        if pid and pid != os.getpid() and _pid_alive(pid):
            raise ValueError(f"another `transferlimits run` (pid {pid}) is running in this checkout; wait for it or stop it")
    locks = paths.ROOT / ".snakemake" / "locks"
    if locks.is_dir() and any(locks.iterdir()):
        print("[run] removing stale Snakemake locks left by an interrupted run", file=sys.stderr)
        subprocess.run([*cmd, "--unlock"], cwd=paths.ROOT, capture_output=True)
    _RUN_PID.parent.mkdir(parents=True, exist_ok=True)
    _RUN_PID.write_text(str(os.getpid()))


def main(args: argparse.Namespace) -> int:
    import time

    t0 = time.time()
    cmd = snakemake_for(args)
    if not args.dry_run:
        _claim_checkout(cmd)
    print("[run] " + " ".join(cmd[2:]), file=sys.stderr, flush=True)
    proc = subprocess.Popen(cmd, cwd=paths.ROOT)
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        # Snakemake got the same SIGINT: let it stop its jobs and release its locks (killing it would leave
        # stale locks behind); finished runs stay, and the next `run` resumes with --rerun-incomplete.
        try:
            proc.wait(timeout=120)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            proc.kill()
        raise
    finally:
        if not args.dry_run:
            _RUN_PID.unlink(missing_ok=True)
    if rc:
        logs = paths.results_dir(args.profile) / "logs"
        print(f"[run] snakemake failed (exit {rc}); notebook logs in {logs}, partial notebooks "
              f"(*.failed.ipynb) in {paths.generated_dir(args.profile)}", file=sys.stderr)
    elif not args.dry_run:
        times = wf.notebook_timings(args.profile)
        if times:
            top = sorted(times.items(), key=lambda kv: -kv[1])[:5]
            print(f"[run] notebook seconds (sum {sum(times.values()):.0f} s over {len(times)} notebooks; slowest: "
                  + ", ".join(f"{k} {v:.0f}" for k, v in top) + ")", file=sys.stderr)
        print(f"[run] done in {time.time() - t0:.0f} s: executed notebooks in {paths.generated_dir(args.profile)}; "
              f"build the book with `python -m transferlimits book --profile {args.profile}`", file=sys.stderr)
    return rc
