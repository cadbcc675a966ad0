"""Show which outputs of a profile's grid are fresh, stale or missing (Snakemake's --summary).

fresh   = up to date, nothing to do;
stale   = exists but an input, parameter or code changed (Snakemake would re-run it);
missing = not produced yet.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import Counter

from transferlimits import paths
from transferlimits.config import PROFILES
from transferlimits.runner.cli_run import snakemake_for

__all__ = ["add_arguments", "main", "summary", "classify"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="smoke", choices=sorted(PROFILES), help="study profile (default: smoke)")
    p.add_argument("--only", default=None, metavar="KEY=VALUE,...", help="same filter as `run --only`")
    p.add_argument("--task-module", action="append", default=[], metavar="MODULE", help="as for `run`")
    p.add_argument("--task-notebook", action="append", default=[], metavar="TASK=PATH", help="as for `run`")
    p.add_argument("--all", action="store_true", help="list fresh outputs too (default: only the others)")


def classify(status: str, plan: str) -> str:
    """Map Snakemake's summary columns to fresh / stale / missing."""
    if status == "missing":
        return "missing"
    if plan.startswith("update pending") or "changed" in status or status == "updated input files":
        return "stale"
    return "fresh" if plan == "no update" else "stale"


def summary(args: argparse.Namespace) -> list[tuple[str, str]]:
    """``[(output file, fresh|stale|missing)]`` from ``snakemake --summary``."""
    ns = argparse.Namespace(profile=args.profile, only=args.only, force=False, data=None, weights=[], cores=1,
                            dry_run=False, task_module=args.task_module, task_notebook=args.task_notebook,
                            param=[], gpu=0, snakemake_profile=None, snakemake_args="")
    cmd = snakemake_for(ns, extra=["--summary", "--nolock", "all"])
    proc = subprocess.run(cmd, cwd=paths.ROOT, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"snakemake --summary failed:\n{proc.stderr[-3000:]}")
    rows = []
    for line in proc.stdout.splitlines():
        cols = line.split("\t")
        if len(cols) < 5 or cols[0] == "output_file":
            continue
        rows.append((cols[0], classify(cols[-2].strip(), cols[-1].strip())))
    return rows


def main(args: argparse.Namespace) -> int:
    rows = summary(args)
    counts = Counter(state for _, state in rows)
    root = str(paths.ROOT) + "/"
    for path, state in rows:
        if args.all or state != "fresh":
            print(f"{state:8s} {path.replace(root, '')}")
    print(f"profile {args.profile}: " + ", ".join(f"{counts.get(k, 0)} {k}" for k in ("fresh", "stale", "missing")),
          file=sys.stderr)
    return 0
