"""The book's run page: which run the book shows, what it cost, and whether it meets the scientific floor.

Written at book-build time (``transferlimits book``) from the run's published files
(:mod:`transferlimits.runner.publish`): every number comes from those files - the hardware, software and
commits from each metrics.json's ``provenance``, the wall time from ``grid.json``, the breakdown from the
runs' own timers - and every verdict from the rules of :mod:`transferlimits.reporting.floor`.

The breakdown is in core-seconds, as the grid runs jobs side by side: pre-training (the ``wall_seconds`` of each
``pretrain.json``), fine-tuning (``provenance.timings.finetune_s``), measurement (``measure_s``) and the rest of
``cores x wall`` (cohort, notebook start-up and plotting, idle cores while one job waits for another).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from transferlimits.reporting.floor import (MARGINS, check_tree, contrastive_fractions, explanation_for, floor_rows,
                                            grid_wall_s, load_explanations, split_explained, strict_json)

#: the profile whose results the floor is meant for (issue 12: the book's headline run).
FLOOR_PROFILE = "cpu"

__all__ = ["FLOOR_PROFILE", "load_run", "wall_breakdown", "floor_table", "header_markdown", "linear_references_markdown",
           "run_page_markdown"]


def load_run(root: Path) -> dict[str, Any]:
    """The metrics.json (by relative path), pretrain.json and grid.json of a results tree."""
    root = Path(root)
    metrics = {str(p.relative_to(root)): strict_json(p) for p in sorted(root.rglob("metrics.json"))}
    pretrain = {p.parent.name: strict_json(p) for p in sorted(root.rglob("pretrain.json"))}
    grid = strict_json(root / "grid.json") if (root / "grid.json").is_file() else {}
    return {"metrics": metrics, "pretrain": pretrain, "grid": grid}


def wall_breakdown(run: dict[str, Any]) -> dict[str, float]:
    """Core-seconds of pre-training, fine-tuning, measurement and the rest of ``cores x wall`` (module doc)."""
    pre = sum(float(p.get("wall_seconds") or 0.0) for p in run["pretrain"].values())
    fine = meas = 0.0
    for m in run["metrics"].values():
        t = (m.get("provenance") or {}).get("timings") or {}
        fine += sum(float(v) for v in (t.get("finetune_s") or {}).values())
        meas += float(t.get("measure_s") or 0.0)
    invocations = run["grid"].get("invocations") or []
    cores = max([int(i.get("cores") or 1) for i in invocations] or [1])
    total = cores * float(run["grid"].get("wall_s") or 0.0)
    return {"pre-training": pre, "fine-tuning": fine, "measurement": meas,
            "overhead": max(0.0, total - pre - fine - meas), "total": total, "cores": float(cores)}


def overhead_line(root: Path) -> str:
    """One line: the grid's core-time (cores x wall, ``grid.json``) split into pre-training, fine-tuning,
    measurement and overhead (notebook start-up, imports, data loading, plotting and idle cores), from the
    results tree ``root``."""
    b = wall_breakdown(load_run(root))
    if b["total"] <= 0:
        return "core-time: no grid wall time recorded yet"
    parts = ", ".join(f"{k} {b[k] / 60:.1f} ({100 * b[k] / b['total']:.0f} %)"
                      for k in ("pre-training", "fine-tuning", "measurement", "overhead"))
    return f"core-minutes of {b['cores']:.0f} cores x wall = {b['total'] / 60:.1f}: {parts}"


def floor_table(run: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (task, model, objective, init): seeds passing, mean score and baseline, the rule."""
    groups: dict[tuple, list] = defaultdict(list)
    for where, m in run["metrics"].items():
        for r in floor_rows(m, where):
            groups[(r.task, r.model, r.objective, r.init)].append(r)
    rows = []
    for (task, model, objective, init), rs in sorted(groups.items()):
        vals = [r.value for r in rs if r.value is not None]
        rows.append({"task": task, "model": model, "objective": objective, "init": init, "metric": rs[0].metric,
                     "mean": float(np.mean(vals)) if vals else None, "baseline": float(np.mean([r.baseline for r in rs])),
                     "baseline_name": rs[0].baseline_name, "need": _rule_text(task),
                     "passed": sum(r.passes for r in rs), "above": sum(r.above for r in rs), "n": len(rs)})
    return rows


def _rule_text(task: str) -> str:
    margin, rule = MARGINS.get(task, (0.0, "over"))
    return f">= {margin:g}" if rule == "floor" else (f"baseline + {margin:g}" if margin else "better than baseline")


def _fmt(v: float | None, nd: int = 3) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.{nd}f}"


def _provenance(run: dict[str, Any]) -> dict[str, Any]:
    provs = [m.get("provenance") or {} for m in run["metrics"].values()]
    hw = next((p.get("hardware") for p in provs if p.get("hardware")), {}) or {}
    sw = next((p.get("software") for p in provs if p.get("software")), {}) or {}
    commits = sorted({str(p.get("git_commit")) for p in provs if p.get("git_commit")})
    dates = sorted(str(p.get("created")) for p in provs if p.get("created"))
    return {"hardware": hw, "software": sw, "commits": commits, "first": dates[0] if dates else "?",
            "last": dates[-1] if dates else "?"}


def header_markdown(root: Path, profile: str, label: str = "Run shown") -> str:
    """One paragraph: profile, points, hardware, software, commits, dates, whole-grid wall time, peak memory."""
    run = load_run(root)
    prov, grid = _provenance(run), run["grid"]
    hw, sw = prov["hardware"], prov["software"]
    wall = grid_wall_s(root)
    peak = max([float(i.get("peak_rss_mib") or 0) for i in grid.get("invocations") or []] or [0.0])
    return (f"**{label}:** profile `{profile}` · {len(run['metrics'])} points · hardware {hw.get('cpu_model', '?')} "
            f"({hw.get('cpu_count', '?')} logical CPUs, {hw.get('torch_threads', '?')} torch thread(s) per job, "
            f"device `{hw.get('device', '?')}`) · torch {sw.get('torch', '?')} · commit(s) "
            + ", ".join(f"`{c}`" for c in prov["commits"]) + f" · {prov['first'][:16]} – {prov['last'][:16]} UTC · "
            f"whole-grid wall time **{_fmt(None if wall is None else wall / 60, 1)} min** over "
            f"{len(grid.get('invocations') or [])} invocation(s), largest job's peak memory {peak:.0f} MiB.\n")


def linear_references_markdown(root: Path) -> list[str]:
    """Table of ``linear_references.json`` (benchmarks/linear_references.py), when the run has one."""
    path = Path(root) / "linear_references.json"
    if not path.is_file():
        return []
    refs = strict_json(path)
    lines = ["", f"**Linear references** (`benchmarks/linear_references.py`, {refs.get('hardware', '?')}): what a "
             "linear model fitted in closed form on the same training cases scores on the same test cases.", "",
             "| task | metric | trivial baseline | linear reference | model |", "|---|---|---:|---:|---|"]
    for task, r in sorted((refs.get("tasks") or {}).items()):
        base = r.get("identity", r.get("empty_mask"))
        lin = r.get("linear_filter", r.get("logistic_voxel"))
        lines.append(f"| {task} | {r.get('metric')} | {_fmt(base)} | {_fmt(lin)} | {r.get('model', '')} |")
    return lines


def run_page_markdown(root: Path, profile: str, max_wall_min: float = 90.0, min_active: float = 0.5,
                      explanations: Path | None = None) -> str:
    """The run page (Markdown) of the results tree ``root`` of ``profile``: header, breakdown, floor (with the
    book's explanations of failing rows, :func:`~transferlimits.reporting.floor.load_explanations`), check."""
    run = load_run(root)
    entries = load_explanations(explanations)
    lines = [header_markdown(root, profile), ""]
    b = wall_breakdown(run)
    if b["total"] > 0:
        lines += ["| part of the grid | core-minutes | share of cores × wall |", "|---|---:|---:|"]
        for key in ("pre-training", "fine-tuning", "measurement", "overhead"):
            lines.append(f"| {key} | {b[key] / 60:.1f} | {100 * b[key] / b['total']:.0f} % |")
        lines += [f"| total ({b['cores']:.0f} cores × wall) | {b['total'] / 60:.1f} | 100 % |", ""]
    note = ("" if profile == FLOOR_PROFILE else f" The floor is the `{FLOOR_PROFILE}` profile's; a `{profile}` run "
            "is not sized to meet it, and the table only shows where this run stands.")
    lines += ["**Scientific floor** (rules in `transferlimits.reporting.floor`, checked by "
              "`scripts/check_cpu_profile.py`): test-split score of the pretrained and scratch runs against the "
              "task's trivial baseline: seeds above the baseline at all (where a run's RPG is defined) and seeds "
              "meeting the floor's margin, of seeds run." + note, "",
              "| task | model | objective | init | metric | mean | baseline | needs | seeds above baseline | "
              "seeds passing | why not all |",
              "|---|---|---|---|---|---:|---:|---|---:|---:|---|"]
    for r in floor_table(run):
        why = "" if r["passed"] == r["n"] else (explanation_for(r["task"], r["model"], r["init"], entries)
                                                or "**not explained**")
        lines.append(f"| {r['task']} | {r['model']} | {r['objective']} | {r['init']} | {r['metric']} | "
                     f"{_fmt(r['mean'])} | {_fmt(r['baseline'])} ({r['baseline_name']}) | {r['need']} | "
                     f"{r['above']} / {r['n']} | {r['passed']} / {r['n']} | {why} |")
    lines += linear_references_markdown(root)
    fractions = contrastive_fractions(root)
    lines += ["", "| contrastive pre-training | active fraction of steps | needs |", "|---|---:|---|"]
    lines += [f"| {m} | {_fmt(f, 3)} | >= {min_active:g} |" for m, f in sorted(fractions.items())]
    failures, n = check_tree(root, max_wall_min, min_active)
    explained = split_explained(root, entries)[1]
    failures = [f for f in failures if f not in explained]
    verdict = "every rule holds" if not failures else f"{len(failures)} unexplained item(s) below the floor"
    lines += ["", f"**Check:** {n} points; {verdict}"
              + (f"; {len(explained)} run(s) below the baseline floor, each explained in the table above." if explained
                 else "."), ""]
    lines += [f"- `{f}`" for f in failures[:40]]
    if len(failures) > 40:
        lines.append(f"- … and {len(failures) - 40} more (run the check script for the full list)")
    return "\n".join(lines) + "\n"
