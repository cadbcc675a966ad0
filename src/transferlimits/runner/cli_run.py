"""Run the study grid of a profile: a thin wrapper around the Snakemake workflow in workflow/Snakefile.

Each Snakemake job executes ONE notebook template with papermill (kernel python3, parameters
validated against the template): resolved profile -> data -> pre-training per (model, objective) -> one job per
(task, model) pair (all its seeds and objectives) -> objective x architecture control -> alignment. Executed
notebooks go to book/generated/<profile>/ (<task>__<model>.ipynb), each point's metrics to
results/<profile>/runs/<task>__<model>__seed<k>[__swapped]/metrics.json, the pair's index of its points to
results/<profile>/pairs/<task>__<model>.json, logs (with tqdm progress) to results/<profile>/logs/. A killed
pair job keeps the points it finished; the re-run resumes after them. At the end the runner prints the share
of the grid's core-time (cores x wall) spent outside pre-training, fine-tuning and measurement (overhead). Snakemake decides what is up to date (inputs, params, code, mtime); an
interrupted grid resumes where it stopped (--rerun-incomplete) and finished runs are never redone.

Up to date means the same for `run` and `status` (runner/outputs.py): a job whose outputs are missing or do
not parse (a truncated metrics.json), or that failed last time, is re-run by a plain `run`. Nothing is lost:
a job's previous outputs stay in place until its new ones are complete; when a re-run fails, the earlier
result is put back and the runner names the failed run, its log and the error line.

Examples:
  python -m transferlimits run --profile smoke --cores 2
  python -m transferlimits run --profile smoke --only task=segmentation,model=profound --force
  python -m transferlimits run --profile smoke --param segmentation.finetune_epochs=2
  python -m transferlimits run --profile picai --data /data/picai --labels /data/picai_labels --weights profound=/w/profound.pt
  python -m transferlimits run --profile picai --data DIR --set seeds=[0] --set grid.shape=[16,64,64]
  python -m transferlimits run --profile smoke --task-module mytasks --task-notebook gland_volume=nb/15_gland_volume.py
  python -m transferlimits run --profile smoke --model-module mymodel --only model=mymodel,task=segmentation
  python -m transferlimits run --profile reference --snakemake-profile workflow/profiles/slurm

Environment: TRANSFERLIMITS_RESULTS moves results/; TRANSFERLIMITS_ROOT moves the whole tree
(book/generated included).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from transferlimits import paths
from transferlimits.config import PROFILES, get_profile
from transferlimits.data.fingerprint import inputs_fingerprint
from transferlimits.models.registry import model_names
from transferlimits.runner import outputs as out_mod
from transferlimits.runner import workflow as wf
from transferlimits.reporting.run_page import overhead_line
from transferlimits.runner.checks import check_data, check_weights, check_writable
from transferlimits.runner.invocations import record_grid_wall  # re-exported (the compute path records with it)
from transferlimits.runner.machine_peak import sgemm_peak_gflops
from transferlimits.runner.overrides import parse_overrides
from transferlimits.runner.params import PARAMETER_HELP, validate_parameters
from transferlimits.runner.publish import publish_results, published_dir
from transferlimits.runner.supervise import failure_lines, run_snakemake
from transferlimits.runtime import resolve_device

__all__ = ["add_arguments", "main", "build_config", "parse_pairs", "record_grid_wall"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="smoke", choices=sorted(PROFILES), help="study profile (default: smoke)")
    p.add_argument("--only", default=None, metavar="KEY=VALUE,...",
                   help="restrict the grid: keys task, model, seed (repeat a key for several values)")
    p.add_argument("--force", action="store_true",
                   help="re-execute the selected jobs' notebooks even if up to date (with --only: the pairs and "
                        "summaries only); finished points whose settings, code and inputs are unchanged are resumed, "
                        "not re-computed (delete a point's folder under results/<profile>/runs to re-compute it)")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="PI-CAI public images folder (required by profile picai); passed to the data notebook")
    p.add_argument("--labels", default=None, metavar="PATH",
                   help="picai_labels checkout (profile picai; default the shipped subset in data/picai_labels)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="set",
                   help="a profile override for every job, validated by get_profile; dotted keys for nested "
                        "fields, YAML values, e.g. --set seeds=[0] --set grid.shape=[16,64,64] --set "
                        "encoder_sizes.profound=test (repeatable)")
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
                        "changing it re-runs only that task's runs and the summaries. Ranges: " + PARAMETER_HELP)
    p.add_argument("--render-only", action="store_true",
                   help="execute the notebooks on finished points without computing any (a results tree made "
                        "elsewhere, e.g. by the compute path on a GPU, rendered here); a missing point is an error "
                        "naming it; the invocation is recorded in grid.json but not counted in its compute wall time")
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
    """The Snakemake config of one invocation, validated (data, overrides, grid, weights, per-task parameters).

    Raises:
        ValueError: any invalid option (the message names it), before a job starts.
    """
    model_modules = list(getattr(args, "model_module", []) or [])
    wf.load_model_modules(model_modules)
    overrides = parse_overrides(getattr(args, "set", []) or [], args.profile)
    prof = get_profile(args.profile, **overrides)
    check_data(args.profile, prof.data_source, getattr(args, "data", None), getattr(args, "labels", None))
    weights = parse_pairs(args.weights, "--weights")
    check_weights(weights, prof)
    only = wf.parse_only(args.only)
    notebooks = {k: str(Path(v).resolve()) for k, v in parse_pairs(args.task_notebook, "--task-notebook").items()}
    grid = wf.build_grid(args.profile, only, args.task_module, notebooks, weights, model_modules, overrides)
    task_params: dict[str, dict[str, str]] = {}
    for key, value in parse_pairs(args.param, "--param").items():
        task, sep, name = key.partition(".")
        if not sep or task not in grid.templates:
            raise ValueError(f"--param {key!r} must be TASK.NAME with TASK in {sorted(grid.templates)}")
        validate_parameters(grid.templates[task], {name: value})
        task_params.setdefault(task, {})[name] = value
    gpu = args.gpu
    if gpu is None:
        gpu = int(resolve_device("auto").type == "cuda")
    labels = getattr(args, "labels", None)
    # a real-data run's data rule depends on the content of --data / --labels (an edited mask re-runs it)
    fingerprint = inputs_fingerprint(args.data, labels) if getattr(args, "data", None) else ""
    return {
        "profile": args.profile,
        "only": {k: sorted(v) for k, v in only.items()},
        "task_modules": list(args.task_module),
        "model_modules": model_modules,
        "task_notebooks": notebooks,
        "task_params": task_params,
        "weights": {k: str(Path(v).resolve()) for k, v in weights.items()},
        "data": str(Path(args.data).resolve()) if args.data else "",
        "labels": str(Path(labels).resolve()) if labels else "",
        "profile_overrides": overrides,
        "gpu": int(gpu),
        "data_fingerprint": fingerprint,
        "render_only": bool(getattr(args, "render_only", False)),
    }


def grid_of(config: dict) -> wf.Grid:
    """The grid a config describes (what the Snakefile builds from the same config)."""
    return wf.build_grid(config["profile"], {k: set(v) for k, v in config["only"].items()}, config["task_modules"],
                         config["task_notebooks"], config["weights"], config["model_modules"],
                         config["profile_overrides"])


def plan_forced(config: dict) -> dict[Path, str]:
    """Outputs a plain run must re-make although Snakemake may call them current: unusable or failed last time.

    Returns:
        ``{output file: reason}`` (reason "missing", "unparseable: ...", or "failed in the last run (JOB)").
    """
    jobs = out_mod.grid_jobs(grid_of(config), bool(config["render_only"]))
    forced = out_mod.unusable_outputs(jobs)
    ours = {f for j in jobs for f in j.outputs}
    for path, name in out_mod.read_failed(config["profile"]).items():
        if Path(path) in ours:
            forced.setdefault(Path(path), f"failed in the last run ({name})")
    return forced


def snakemake_for(args: argparse.Namespace, dry_run: bool | None = None, extra: list[str] | None = None,
                  config_dir: Path | None = None) -> tuple[list[str], dict]:
    """Write the config file (into ``config_dir``, default ``results/<profile>/.runtime``) and return the Snakemake
    command line for ``args`` with the config; a plain run forces the outputs of :func:`plan_forced`."""
    config = build_config(args)
    folder = Path(config_dir) if config_dir is not None else paths.results_dir(args.profile) / ".runtime"
    cfg = wf.write_config(folder / "run_config.yaml", config)
    force: list[str] = []
    more = shlex.split(getattr(args, "snakemake_args", "") or "") + list(extra or [])
    if getattr(args, "force", False):
        if config["only"]:  # the selected pairs' notebooks and the summaries (files name their jobs)
            jobs = out_mod.grid_jobs(grid_of(config), bool(config["render_only"]))
            force = [str(job.outputs[0]) for job in jobs if job.rule in ("pair", "control", "alignment")]
        else:
            more.append("--forceall")
    else:
        force = sorted({str(f) for f, why in plan_forced(config).items() if why != "missing"})
    cmd = wf.snakemake_command(
        cfg, cores=getattr(args, "cores", 2), force=force,
        dry_run=args.dry_run if dry_run is None else dry_run,
        profile_dir=getattr(args, "snakemake_profile", None), extra=more,
    )
    return cmd, config


_RUN_PID = paths.ROOT / ".snakemake" / "transferlimits-run.pid"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _claim_checkout(cmd: list[str]) -> None:
    """One grid run per checkout: refuse while another is alive; clear the locks a killed run left behind."""
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
    t0 = time.time()
    if not args.dry_run:
        check_writable(paths.results_dir(args.profile), paths.generated_dir(args.profile), paths.ROOT / ".snakemake")
    if args.dry_run:  # writes nothing under results/ (the config goes to a temporary folder)
        with tempfile.TemporaryDirectory() as tmp:
            cmd, _ = snakemake_for(args, config_dir=Path(tmp))
            print("[run] " + " ".join(cmd[2:]), file=sys.stderr, flush=True)
            return subprocess.run(cmd, cwd=paths.ROOT).returncode
    cmd, config = snakemake_for(args)
    forced = {} if args.force else plan_forced(config)
    if forced:
        print(f"[run] re-making {len(forced)} output(s) that are missing, unparseable or failed last time",
              file=sys.stderr)
    _claim_checkout(cmd)
    machine = {} if config["render_only"] else {"sgemm_peak_gflops_1thread": round(sgemm_peak_gflops(threads=1), 1)}
    if machine:
        print(f"[run] this machine's fp32 matmul peak: {machine['sgemm_peak_gflops_1thread']} GFLOP/s per thread "
              "(recorded in grid.json beside the wall time)", file=sys.stderr, flush=True)
    print("[run] " + " ".join(cmd[2:]), file=sys.stderr, flush=True)
    try:
        outcome = run_snakemake(cmd, args.profile, out_mod.grid_jobs(grid_of(config), bool(config["render_only"])))
    finally:
        _RUN_PID.unlink(missing_ok=True)
    record_grid_wall(args.profile, t0, outcome.rc, getattr(args, "cores", None), config["render_only"], machine)
    if outcome.interrupted:
        raise KeyboardInterrupt
    for line in failure_lines(outcome):
        print(line, file=sys.stderr)
    if outcome.rc:
        print(f"[run] snakemake failed (exit {outcome.rc}); {len(outcome.failed)} run(s) failed (above); logs in "
              f"{paths.results_dir(args.profile) / 'logs'}; re-run the same command to retry them", file=sys.stderr)
        return outcome.rc
    published = publish_results(args.profile, merge=bool(getattr(args, "only", None)))
    print(f"[run] {len(published)} result file(s) published to {published_dir(args.profile)}"
          + (" (merged: --only keeps the other pairs' published files)" if getattr(args, "only", None) else ""),
          file=sys.stderr)
    times = wf.notebook_timings(args.profile)
    if times:
        top = sorted(times.items(), key=lambda kv: -kv[1])[:5]
        print(f"[run] notebook seconds (sum {sum(times.values()):.0f} s over {len(times)} notebooks; slowest: "
              + ", ".join(f"{k} {v:.0f}" for k, v in top) + ")", file=sys.stderr)
    print("[run] " + overhead_line(paths.results_dir(args.profile)), file=sys.stderr)
    print(f"[run] done in {time.time() - t0:.0f} s: executed notebooks in {paths.generated_dir(args.profile)}; "
          f"build the book with `python -m transferlimits book --profile {args.profile}`", file=sys.stderr)
    return 0
