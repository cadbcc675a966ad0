"""Build the Jupyter Book (JB1) from a profile's executed notebooks, offline, with warnings as errors.

The book's pages include the executed notebooks through book/generated/current/, which this command
refreshes from book/generated/<profile>/ before running

    jupyter-book build . -W -n --keep-going

Notebooks are never executed by the book (execute_notebooks: "off"): run
`python -m transferlimits run --profile <profile>` first. Prints the path of _build/html/index.html.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from transferlimits import paths
from transferlimits.config import PROFILES
from transferlimits.runner.notebook import hermetic_env

__all__ = ["add_arguments", "main", "stage_generated", "build_book", "CURRENT"]

CURRENT = "current"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="smoke", choices=sorted(PROFILES),
                   help="whose executed notebooks the book shows (default: smoke)")
    p.add_argument("--all", action="store_true", help="rebuild every page (jupyter-book build --all)")


def stage_generated(profile: str) -> Path:
    """Copy ``generated_dir(profile)`` to ``book/generated/current`` (what the TOC and chapters include).

    Raises:
        ValueError: the profile has no executed notebooks yet.
    """
    src = paths.generated_dir(profile)
    if not src.is_dir() or not any(src.glob("*.ipynb")):
        raise ValueError(f"no executed notebooks in {src}; run `python -m transferlimits run --profile {profile}` first")
    dst = src.parent / CURRENT
    tmp = src.parent / f".{CURRENT}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(".*", "*.failed.ipynb"))
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)
    return dst


def build_book(profile: str = "smoke", rebuild_all: bool = False) -> Path:
    """Stage the notebooks and run ``jupyter-book build . -W -n --keep-going``; return index.html.

    Raises:
        RuntimeError: the build failed or warned (the message has the tail of its output).
    """
    stage_generated(profile)
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", ".", "-W", "-n", "--keep-going"]
    if rebuild_all:
        cmd.append("--all")
    env = dict(os.environ, **hermetic_env(0, paths.ROOT / "_build" / ".runtime"))
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=paths.ROOT, env=env, capture_output=True, text=True)
    log = paths.ROOT / "_build" / "book_build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode:
        raise RuntimeError(f"jupyter-book build failed (exit {proc.returncode}, log {log}):\n"
                           f"{(proc.stdout + proc.stderr)[-4000:]}")
    index = paths.ROOT / "_build" / "html" / "index.html"
    print(f"[book] built in {time.time() - t0:.1f} s", file=sys.stderr)
    return index


def main(args: argparse.Namespace) -> int:
    try:
        index = build_book(args.profile, args.all)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(index)
    return 0
