"""``results/<profile>/grid.json``: every invocation of ``run`` and ``compute`` and the grid's compute wall time.

Kept apart from :mod:`.cli_run` so that the compute-only path (:mod:`.cli_compute`), which must not import
Snakemake, papermill or the notebook stack, records its invocations the same way.
"""

from __future__ import annotations

import fcntl
import json
import resource
import time
from pathlib import Path
from typing import Any, Mapping

from transferlimits import paths
from transferlimits.runtime import atomic_write_json

__all__ = ["record_grid_wall"]


def record_grid_wall(profile: str, t0: float, rc: int, cores: int | None, render_only: bool = False,
                     extra: Mapping[str, Any] | None = None) -> Path:
    """Append this invocation to ``results/<profile>/grid.json``: ``invocations`` (start, wall seconds, exit code,
    cores, peak RSS of the largest job process in MiB, render_only, plus ``extra``, e.g. the command and what it
    finished) and ``wall_s``, the sum over the invocations that computed (a resumed grid adds up its pieces; a
    render-only one, or a stage of a staged job with ``counted`` false, is listed, not counted). ``scripts/check_cpu_profile.py`` reads ``wall_s``."""
    path = paths.results_dir(profile) / "grid.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name("grid.json.lock"), "w") as lock:  # parallel stages of one job append one at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            old = json.loads(path.read_text()) if path.is_file() else {}
        except ValueError:
            old = {}
        runs = list(old.get("invocations", []))
        runs.append({"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)), "wall_s": time.time() - t0,
                     "rc": int(rc), "cores": cores,
                     "peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                     "render_only": bool(render_only), **dict(extra or {})})
        wall = sum(r["wall_s"] for r in runs if not r.get("render_only") and r.get("counted", True))
        return atomic_write_json(path, {"profile": profile, "wall_s": wall, "invocations": runs})
