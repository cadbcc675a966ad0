"""Several ``compute`` processes on one accelerator: the grid's pre-trainings per model, then its pairs, each a slice.

One process's training steps leave a GPU mostly idle at these model sizes (Python launches kernels one by one), so
``compute --parallel N`` runs up to N child processes at once, each the same ``compute`` command on one slice
(``--only task=T,model=M``): first one child per model for its pre-trainings (``--until pretrain``), then one per
(task, model) pair (``--no-publish``). Every child gets the time left on the parent's clock (``--stop-after``), so
all stop before the parent's limit; the parent then resumes the whole grid in-process (finished units are read
back, a failed slice is computed there) and publishes. A child's output goes to ``results/<profile>/logs/``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from transferlimits import paths

__all__ = ["Slice", "slices_for", "child_argv", "run_slices"]


@dataclass(frozen=True)
class Slice:
    """One child: its name (for the log file), ``--only`` value and stage (``pretrain`` or ``pairs``)."""

    name: str
    only: str
    until: str


def slices_for(grid, seed_filter: Sequence[str] = ()) -> tuple[list[Slice], list[Slice]]:
    """``(pre-training slices, pair slices)`` of ``grid``: one per model with pre-trainings, one per pair.

    Args:
        grid: a :class:`transferlimits.runner.grid.Grid` (already filtered by the user's ``--only``).
        seed_filter: the user's ``--only seed=`` values, kept in every pair slice.
    """
    seeds = "".join(f",seed={s}" for s in seed_filter)
    models = list(dict.fromkeys(m for m, _ in grid.pretrain))
    pre = [Slice(f"pretrain__{m}", f"model={m}", "pretrain") for m in models]
    pairs = [Slice(job.name, f"task={job.task},model={job.model}{seeds}", "pairs") for job in grid.pairs]
    return pre, pairs


def child_argv(args, piece: Slice, seconds_left: float) -> list[str]:
    """The ``compute`` command line of one slice: the parent's profile, overrides and device, the slice's
    ``--only`` and stage, ``--no-publish``, and the parent's time left as ``--stop-after``."""
    argv = [sys.executable, "-m", "transferlimits", "compute", "--profile", args.profile, "--device", args.device,
            "--only", piece.only, "--until", piece.until, "--no-publish",
            "--stop-after", f"{max(1.0, seconds_left):.0f}", "--margin", "5"]
    for kv in args.set or []:
        argv += ["--set", kv]
    for flag, value in (("--data", args.data), ("--labels", args.labels)):
        if value:
            argv += [flag, value]
    return argv


def run_slices(args, pieces: Sequence[Slice], seconds_left: Callable[[], float], parallel: int,
               say: Callable[[str], None], argv_of: Callable[..., list[str]] = child_argv) -> dict[str, int]:
    """Run ``pieces`` as child processes, at most ``parallel`` at once; ``{slice name: exit status}``.

    A slice is not started with under 10 seconds left. A child's stdout and stderr go to
    ``results/<profile>/logs/compute__<slice>.log``; a failed child's last lines are echoed through ``say``.
    ``argv_of(args, slice, seconds_left)`` makes a child's command line (default :func:`child_argv`).
    """
    logs = paths.results_dir(args.profile) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    waiting, running, status = list(pieces), {}, {}
    while waiting or running:
        while waiting and len(running) < max(1, parallel) and seconds_left() > 10:
            piece = waiting.pop(0)
            log = open(logs / f"compute__{piece.name}.log", "w")
            proc = subprocess.Popen(argv_of(args, piece, seconds_left()), stdout=log, stderr=subprocess.STDOUT)
            running[piece.name] = (proc, log, time.time())
        if waiting and seconds_left() <= 10 and not running:
            for piece in waiting:
                say(f"slice {piece.name} not started: too little time left")
            waiting = []
        for name, (proc, log, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            status[name] = proc.returncode
            del running[name]
            tail = Path(log.name).read_text(errors="replace").strip().splitlines()[-1:] or [""]
            say(f"slice {name}: exit {proc.returncode} after {time.time() - t0:.0f} s; {tail[0][:200]}")
            if proc.returncode:
                for line in Path(log.name).read_text(errors="replace").splitlines()[-15:]:
                    say(f"  {name}| {line}")
        time.sleep(0.5)
    return status
