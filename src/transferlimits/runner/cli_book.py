"""Build the Jupyter Book (JB1) from a profile's executed notebooks, offline, with warnings as errors.

The book's pages include the executed notebooks through book/generated/current/, which this command
refreshes from book/generated/<profile>/ before running

    jupyter-book build . -W -n --keep-going

Notebooks are never executed by the book (execute_notebooks: "off"): run
`python -m transferlimits run --profile <profile>` first. Prints the path of _build/html/index.html.

Build, then swap: the book is built into _build/.staging (kept between builds, so Sphinx rebuilds only
changed pages), and only a successful build replaces _build/html (copied beside it, then renamed into place:
runner/html_swap.py); a failed or disk-full build leaves the previous _build/html as it was, and a swap killed
half-way is finished (or undone) by the next command.

A partial run (``run --only``, a small real-data run) builds too: the pages it did not make are stubs that say
so, and the values the chapters glue from them read "not in this run" (runner/book_gaps.py); the command names
what is missing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from transferlimits import paths
from transferlimits.config import PROFILES
from transferlimits.reporting.run_page import header_markdown, run_page_markdown
from transferlimits.runner.book_gaps import Gaps, fill_gaps
from transferlimits.runner.html_swap import swap_html
from transferlimits.runner.notebook import hermetic_env
from transferlimits.runner.publish import published_dir

__all__ = ["add_arguments", "main", "stage_generated", "stage_book", "write_run_pages", "build_book", "swap_html",
           "CURRENT", "DEFAULT_PROFILE", "CHAIN_PROFILE"]

CURRENT = "current"
#: the book shows the committed ``cpu`` run unless told otherwise (``make book`` runs only the smoke study).
DEFAULT_PROFILE = "cpu"
#: the study that proves the chain on the reader's machine; its summary goes to the appendix.
CHAIN_PROFILE = "smoke"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES),
                   help=f"whose executed notebooks the book shows (default: {DEFAULT_PROFILE}, the committed run in "
                        f"book/generated/{DEFAULT_PROFILE}; `make book PROFILE=P` passes the profile it ran)")
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


def stage_book(profile: str) -> tuple[Path, Gaps]:
    """Stage ``profile``'s notebooks (:func:`stage_generated`), fill what a partial run lacks
    (:func:`~transferlimits.runner.book_gaps.fill_gaps`: stub pages, "not in this run" values) and write the run
    pages; return the staged folder and its gaps."""
    current = stage_generated(profile)
    gaps = fill_gaps(current, profile, paths.ROOT)
    write_run_pages(profile, current)
    return current, gaps


def write_run_pages(profile: str, current: Path) -> tuple[Path, Path]:
    """Write ``current/run.md`` (the shown run's page, :func:`~transferlimits.reporting.run_page.run_page_markdown`
    over ``current/results``) and ``current/chain.md`` (the header of the reader's own smoke run, when one was
    published). Pages that have no results say so instead of failing the build."""
    results = current / "results"
    if (results / "grid.json").is_file() and any(results.rglob("metrics.json")):
        run = run_page_markdown(results, profile)
    else:
        run = (f"*The `{profile}` run shown here has no published results (`{results}`): run it with "
               f"`python -m transferlimits run --profile {profile}`, which publishes them.*\n")
    chain_results = published_dir(CHAIN_PROFILE)
    if profile == CHAIN_PROFILE:
        chain = "*The run shown in this book is this machine's smoke run (its page is in the Study part).*\n"
    elif (chain_results / "grid.json").is_file() and any(chain_results.rglob("metrics.json")):
        chain = header_markdown(chain_results, CHAIN_PROFILE, label="Smoke study on this machine")
    else:
        chain = (f"*No smoke study has run on this machine yet: `make book` (or `python -m transferlimits run "
                 f"--profile {CHAIN_PROFILE}`) runs it.*\n")
    (current / "run.md").write_text(run)
    (current / "chain.md").write_text(chain)
    return current / "run.md", current / "chain.md"


def build_book(profile: str = DEFAULT_PROFILE, rebuild_all: bool = False,
               run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> Path:
    """Stage the notebooks, run ``jupyter-book build . -W -n --keep-going`` into ``_build/.staging`` and swap
    the result into ``_build/html``; return index.html.

    Args:
        profile: whose executed notebooks the book shows. rebuild_all: rebuild every page.
        run: the process runner (tests pass one that fails).

    Raises:
        RuntimeError: the build failed or warned (the message has the tail of its output); ``_build/html``
            is then unchanged.
    """
    gaps = stage_book(profile)[1]
    if gaps.summary():
        print(f"[book] {gaps.summary()}", file=sys.stderr)
    build_dir = paths.ROOT / "_build"
    staging = build_dir / ".staging"
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", ".", "-W", "-n", "--keep-going",
           "--path-output", str(staging)]
    if rebuild_all:
        cmd.append("--all")
    env = dict(os.environ, **hermetic_env(0, build_dir / ".runtime"))
    t0 = time.time()
    proc = run(cmd, cwd=paths.ROOT, env=env, capture_output=True, text=True)
    log = build_dir / "book_build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(proc.stdout + proc.stderr)
    built = staging / "_build" / "html"
    if proc.returncode or not (built / "index.html").is_file():
        raise RuntimeError(f"jupyter-book build failed (exit {proc.returncode}, log {log}); the previous "
                           f"{build_dir / 'html'} is kept:\n{(proc.stdout + proc.stderr)[-4000:]}")
    index = swap_html(built, build_dir) / "index.html"
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
