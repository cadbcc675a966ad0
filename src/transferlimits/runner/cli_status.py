"""Show which outputs of a profile's grid are fresh, stale, missing, unparseable or failed; writes nothing.

fresh       = up to date, nothing to do;
stale       = exists but an input, parameter or code changed (Snakemake would re-run it);
missing     = not produced yet (or deleted);
unparseable = present but unusable (e.g. a truncated metrics.json); a plain `run` re-makes it;
failed      = its job failed in the last run (the earlier result was kept); a plain `run` retries it.

The same rules decide what a plain `run` does (runner/outputs.py): every output listed here as anything but
fresh is re-made by `python -m transferlimits run` with the same options, and nothing else. The command
writes nothing under results/ or book/ (its Snakemake config goes to a temporary folder), so it works on a
read-only results folder.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from transferlimits import paths
from transferlimits.config import PROFILES
from transferlimits.runner.cli_run import plan_forced, snakemake_for

__all__ = ["add_arguments", "main", "summary", "classify", "STATES"]

STATES = ("fresh", "stale", "missing", "unparseable", "failed")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="smoke", choices=sorted(PROFILES), help="study profile (default: smoke)")
    p.add_argument("--only", default=None, metavar="KEY=VALUE,...", help="same filter as `run --only`")
    p.add_argument("--task-module", action="append", default=[], metavar="MODULE", help="as for `run`")
    p.add_argument("--model-module", action="append", default=[], metavar="MODULE", help="as for `run`")
    p.add_argument("--task-notebook", action="append", default=[], metavar="TASK=PATH", help="as for `run`")
    p.add_argument("--data", default=None, metavar="PATH", help="as for `run` (profile picai)")
    p.add_argument("--labels", default=None, metavar="PATH", help="as for `run` (profile picai)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="set", help="as for `run`")
    p.add_argument("--param", action="append", default=[], metavar="TASK.NAME=VALUE", help="as for `run`")
    p.add_argument("--weights", nargs="+", default=[], metavar="NAME=PATH", help="as for `run`")
    p.add_argument("--all", action="store_true", help="list fresh outputs too (default: only the others)")


def classify(status: str, plan: str) -> str:
    """Map Snakemake's summary columns to fresh / stale / missing."""
    if status == "missing":
        return "missing"
    if plan.startswith("update pending") or "changed" in status or status == "updated input files":
        return "stale"
    return "fresh" if plan == "no update" else "stale"


def summary(args: argparse.Namespace) -> list[tuple[str, str]]:
    """``[(output file, state)]``: Snakemake's ``--summary`` refined by the runner's own checks (one of
    :data:`STATES`; unparseable and failed outputs are what a plain run forces)."""
    ns = argparse.Namespace(
        profile=args.profile, only=args.only, force=False, data=getattr(args, "data", None),
        labels=getattr(args, "labels", None), set=getattr(args, "set", []), weights=getattr(args, "weights", []),
        cores=1, dry_run=False, task_module=args.task_module, model_module=getattr(args, "model_module", []),
        task_notebook=args.task_notebook, param=getattr(args, "param", []), gpu=0, snakemake_profile=None,
        snakemake_args="")
    with tempfile.TemporaryDirectory() as tmp:
        cmd, config = snakemake_for(ns, extra=["--summary", "--nolock", "all"], config_dir=Path(tmp))
        proc = subprocess.run(cmd, cwd=paths.ROOT, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"snakemake --summary failed:\n{proc.stderr[-3000:]}")
    forced = {str(f): why for f, why in plan_forced(config).items()}
    rows = []
    for line in proc.stdout.splitlines():
        cols = line.split("\t")
        if len(cols) < 5 or cols[0] == "output_file":
            continue
        state = classify(cols[-2].strip(), cols[-1].strip())
        why = forced.get(cols[0], "")
        if why.startswith("unparseable"):
            state = "unparseable"
        elif why.startswith("failed"):
            state = "failed"
        elif why == "missing":
            state = "missing"
        elif why.startswith("stale"):  # a pair's index no longer matches its points (edited or deleted)
            state = "stale"
        rows.append((cols[0], state))
    return rows


def main(args: argparse.Namespace) -> int:
    rows = summary(args)
    counts = Counter(state for _, state in rows)
    root = str(paths.ROOT) + "/"
    for path, state in rows:
        if args.all or state != "fresh":
            print(f"{state:11s} {path.replace(root, '')}")
    print(f"profile {args.profile}: " + ", ".join(f"{counts.get(k, 0)} {k}" for k in STATES), file=sys.stderr)
    return 0
