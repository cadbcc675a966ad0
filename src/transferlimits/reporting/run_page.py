"""The book's run page: which run the book shows, what it cost, and whether it meets the scientific floor.

Written at book-build time (``transferlimits book``) from the run's published files
(:mod:`transferlimits.runner.publish`): every number comes from those files - the hardware, software and
commits from each metrics.json's ``provenance``, the wall time from ``grid.json``, the breakdown from the
runs' own timers - and every verdict from the rules of :mod:`transferlimits.reporting.floor`.

The breakdown is in core-seconds, as the grid runs jobs side by side: pre-training (the ``wall_seconds`` of each
``pretrain.json``), fine-tuning (``provenance.timings.finetune_s``), measurement (``measure_s``) and the rest of
``cores x wall`` (cohort, notebook start-up and plotting, idle cores while one job waits for another).
The page opens with the experiment-design check (:func:`~transferlimits.reporting.design_report.criteria_markdown`:
can this run see the encoder?). The closing sections (test split, linear references, reproduction) are in
:mod:`transferlimits.reporting.run_sections`.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from transferlimits.reporting.design_report import criteria_markdown, design_criteria, load_tree
from transferlimits.reporting.floor import (MARGINS, RULE_LINES, check_tree, contrastive_fractions,
                                            explained_rule_failures, explanation_for, grid_peak_gflops, grid_wall_s,
                                            load_explanations, rule_explanation, run_floor_rows, split_explained,
                                            strict_json)
from transferlimits.reporting.run_sections import (COMPARE_COMMAND, REPRODUCTION, fmt, linear_references_markdown,
                                                   reproduction_markdown, test_cases_markdown)

#: the profile whose results the floor is meant for (issue 12: the book's headline run).
FLOOR_PROFILE = "cpu"

__all__ = ["FLOOR_PROFILE", "load_run", "wall_breakdown", "overhead_line", "floor_table", "point_floor_table",
           "header_markdown", "linear_references_markdown", "test_cases_markdown", "reproduction_markdown",
           "run_page_markdown", "REPRODUCTION", "COMPARE_COMMAND"]


def load_run(root: Path) -> dict[str, Any]:
    """The metrics.json (by relative path), pretrain.json and grid.json of a results tree."""
    root = Path(root)
    metrics = {str(p.relative_to(root)): strict_json(p) for p in sorted(root.rglob("metrics.json"))}
    pretrain = {p.parent.name: strict_json(p) for p in sorted(root.rglob("pretrain.json"))}
    grid = strict_json(root / "grid.json") if (root / "grid.json").is_file() else {}
    return {"metrics": metrics, "pretrain": pretrain, "grid": grid}


#: the parts of a run's core time (cores x wall), in the order the run page and the runner show them
BREAKDOWN = ("pre-training", "fine-tuning", "measurement", "data in points", "overhead")


def wall_breakdown(run: dict[str, Any]) -> dict[str, float]:
    """Core-seconds of pre-training, fine-tuning, measurement, the rest of each point's own time (loading its data
    and encoders, warming the caches, writing its files: ``data in points``) and the rest of ``cores x wall``
    (``overhead``: notebook start-up, imports, plotting, the cohort job, idle cores)."""
    pre = sum(float(p.get("wall_seconds") or 0.0) for p in run["pretrain"].values())
    fine = meas = points = 0.0
    for m in run["metrics"].values():
        t = (m.get("provenance") or {}).get("timings") or {}
        f = sum(float(v) for v in (t.get("finetune_s") or {}).values())
        fine, meas = fine + f, meas + float(t.get("measure_s") or 0.0)
        points += max(float(t.get("total_s") or 0.0), f + float(t.get("measure_s") or 0.0))
    invocations = run["grid"].get("invocations") or []
    cores = max([int(i.get("cores") or 1) for i in invocations] or [1])
    total = cores * float(run["grid"].get("wall_s") or 0.0)
    return {"pre-training": pre, "fine-tuning": fine, "measurement": meas, "data in points": points - fine - meas,
            "overhead": max(0.0, total - pre - points), "total": total, "cores": float(cores)}


def overhead_line(root: Path) -> str:
    """One line: the grid's core-time (cores x wall, ``grid.json``) split into pre-training, fine-tuning,
    measurement and overhead (notebook start-up, imports, data loading, plotting and idle cores), from the
    results tree ``root``."""
    b = wall_breakdown(load_run(root))
    if b["total"] <= 0:
        return "core-time: no grid wall time recorded yet"
    parts = ", ".join(f"{k} {b[k] / 60:.1f} ({100 * b[k] / b['total']:.0f} %)"
                      for k in BREAKDOWN)
    return f"core-minutes of {b['cores']:.0f} cores x wall = {b['total'] / 60:.1f}: {parts}"


def floor_table(run: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (task, model, objective, init): seeds passing, mean score and baseline, the rule (points
    without a defined baseline are left out: :func:`run_floor_rows`)."""
    groups: dict[tuple, list] = defaultdict(list)
    for r in run_floor_rows(run)[0]:
        groups[(r.task, r.model, r.objective, r.init)].append(r)
    rows = []
    for (task, model, objective, init), rs in sorted(groups.items()):
        vals = [r.value for r in rs if r.value is not None]
        rows.append({"task": task, "model": model, "objective": objective, "init": init, "metric": rs[0].metric,
                     "mean": float(np.mean(vals)) if vals else None, "baseline": float(np.mean([r.baseline for r in rs])),
                     "baseline_name": rs[0].baseline_name, "need": _rule_text(task),
                     "passed": sum(r.passes for r in rs), "above": sum(r.above for r in rs), "n": len(rs)})
    return rows


_SLOTS = (("native", "pretrained"), ("native", "scratch"), ("swapped", "pretrained"), ("swapped", "scratch"))


def point_floor_table(run: dict[str, Any], entries: list[dict] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per (task, model): per (objective, init) the mean score and the counts of seeds above the
    baseline and passing the floor; the baseline (its range when it differs between seeds); the reasons of
    the rows below the floor, each stated once (``notes``; a row refers to its note by number).

    Returns:
        ``(rows, notes)``: rows with task, model, metric, need, baseline text, ``cells`` {(objective, init):
        text}, ``note`` (note numbers, "" when every seed passes, "not explained" when a failing slot has no
        explanation); notes = the distinct reasons in order of first use.
    """
    entries = entries or []
    groups: dict[tuple, list] = defaultdict(list)
    all_rows, undefined = run_floor_rows(run)
    for r in all_rows:
        groups[(r.task, r.model)].append(r)
    rows, notes = [], []
    for (task, model) in sorted(set(groups) | set(undefined)):
        lost = undefined.get((task, model), [])
        lost_note = f"{len(lost)} point(s) without a defined baseline (listed below)" if lost else ""
        rs = groups.get((task, model))
        if not rs:
            rows.append({"task": task, "model": model, "metric": _primary_of(run, task), "need": _rule_text(task),
                         "baseline": "undefined", "cells": {slot: "—" for slot in _SLOTS}, "note": lost_note})
            continue
        bases = sorted({round(r.baseline, 3) for r in rs})
        base = fmt(bases[0]) if len(bases) == 1 else f"{fmt(bases[0])}–{fmt(bases[-1])}"
        kind = rs[0].baseline_name + ("" if len(bases) == 1 else ", per seed")
        cells, refs = {}, []
        for slot in _SLOTS:
            mine = [r for r in rs if (r.objective, r.init) == slot]
            if not mine:
                cells[slot] = "—"
                continue
            vals = [r.value for r in mine if r.value is not None]
            n, above, passed = len(mine), sum(r.above for r in mine), sum(r.passes for r in mine)
            cells[slot] = f"{fmt(float(np.mean(vals)) if vals else None)} ({above}/{n}, {passed}/{n})"
            if passed < n:
                why = explanation_for(task, model, slot[1], entries)
                if why is None:
                    refs.append("not explained")
                else:
                    if why not in notes:
                        notes.append(why)
                    refs.append(str(notes.index(why) + 1))
        note = ", ".join(dict.fromkeys(refs))
        note = "**not explained**" if "not explained" in refs else (f"note {note}" if note else "")
        rows.append({"task": task, "model": model, "metric": rs[0].metric, "need": _rule_text(task),
                     "baseline": f"{base} ({kind})", "cells": cells,
                     "note": "; ".join(n for n in (note, lost_note) if n)})
    return rows, notes


def _primary_of(run: dict[str, Any], task: str) -> str:
    """The primary metric of ``task`` as its files state it ("?" when none does)."""
    specs = [(m.get("task_spec") or {}).get("primary_metric") for m in run["metrics"].values() if m.get("task") == task]
    return next((str(p) for p in specs if p), "?")


def _rule_text(task: str) -> str:
    margin, rule = MARGINS.get(task, (0.0, "over"))
    return f">= {margin:g}" if rule == "floor" else (f"baseline + {margin:g}" if margin else "better than baseline")



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
    gflops = grid_peak_gflops(root)
    machine = ("" if gflops is None else
               f" (fp32 matmul peak {gflops:.0f} GFLOP/s per thread, measured as the run started)")
    return (f"**{label}:** profile `{profile}` · {len(run['metrics'])} points · hardware {hw.get('cpu_model', '?')} "
            f"({hw.get('cpu_count', '?')} logical CPUs, {hw.get('torch_threads', '?')} torch thread(s) per job, "
            f"device `{hw.get('device', '?')}`) · torch {sw.get('torch', '?')} · commit(s) "
            + ", ".join(f"`{c}`" for c in prov["commits"]) + f" · {prov['first'][:16]} – {prov['last'][:16]} UTC · "
            f"whole-grid wall time **{fmt(None if wall is None else wall / 60, 1)} min** over "
            f"{len(grid.get('invocations') or [])} invocation(s){machine}, largest job's peak memory {peak:.0f} MiB.\n"
            + (_DIRTY if any(c.endswith("-dirty") for c in prov["commits"]) else ""))


_DIRTY = ("\nA commit ending in `-dirty` (`transferlimits.runtime.git_commit`) means that tracked files differed from "
          "that commit when the points were computed. Since the committed `cpu` run, the run's own outputs under "
          "`book/generated/` no longer count as a difference (`tests/test_publish.py` checks it). In that run, the "
          "differing files were its own executed notebooks, rewritten as it ran (README, \"The committed cpu run\"), "
          "not the code.\n")


def _breakdown_lines(b: dict[str, float]) -> list[str]:
    """The core-time table of :func:`wall_breakdown` ``b`` (none when no grid wall time is recorded)."""
    if b["total"] <= 0:
        return []
    lines = [":::{table} Where the run's core time went: pre-training, fine-tuning, measurement, the rest of the "
             "points' own time (loading data and encoders, warming caches, writing files) and the rest of cores × "
             "wall time (overhead: notebook start-up, imports, plotting, the cohort job, cores waiting on a dependency).",
             ":name: tab-run-breakdown", "",
             "| part of the grid | core-minutes | share of cores × wall |", "|---|---:|---:|"]
    for key in BREAKDOWN:
        lines.append(f"| {key} | {b[key] / 60:.1f} | {100 * b[key] / b['total']:.0f} % |")
    return lines + [f"| total ({b['cores']:.0f} cores × wall) | {b['total'] / 60:.1f} | 100 % |", ":::", ""]


def _floor_lines(run: dict[str, Any], profile: str, entries: list[dict]) -> list[str]:
    """The floor table of :func:`point_floor_table` with its intro and the numbered reasons below it."""
    note = ("" if profile == FLOOR_PROFILE else f" The floor is the `{FLOOR_PROFILE}` profile's; a `{profile}` run "
            "is not sized to meet it, and the table only shows where this run stands.")
    lines = ["**Scientific floor** (rules in `transferlimits.reporting.floor`, checked by "
             "`scripts/check_cpu_profile.py`): the test-split score of the pretrained and scratch runs of each "
             "point against the task's trivial baseline. One row per (task, model). Each cell gives the mean "
             "score over seeds, then (seeds above the baseline at all, seeds meeting the floor's margin), of "
             "the seeds run. A run above its baseline has a defined RPG where its scratch run is above it too."
             + note, "",
             ":::{table} The scientific floor per (task, model): mean test score over seeds, then (seeds above the "
             "trivial baseline, seeds meeting the floor's margin) of the seeds run, per objective and initialisation.",
             ":name: tab-run-floor", ":class: compact-table", "",
             "| task | model | metric (needs) | baseline | native: pretrained | native: scratch | "
             "swapped: pretrained | swapped: scratch | why not all |",
             "|---|---|---|---|---|---|---|---|---|"]
    rows, notes = point_floor_table(run, entries)
    for r in rows:
        c = r["cells"]
        lines.append(f"| {r['task']} | {r['model']} | {r['metric']} ({r['need']}) | {r['baseline']} | "
                     + " | ".join(c[slot] for slot in _SLOTS) + f" | {r['note']} |")
    lines.append(":::")
    if notes:
        lines += ["", "Why a row is below the floor (`book/floor_explanations.yml`; each reason once):", ""]
        lines += [f"{i}. {why}" for i, why in enumerate(notes, 1)]
    return lines


def _contrastive_lines(root: Path, min_active: float) -> list[str]:
    """The table of contrastive pre-trainings' active-step fractions against ``min_active``."""
    fractions = contrastive_fractions(root)
    lines = ["", ":::{table} Contrastive pre-training: the fraction of steps whose batch held a positive and a "
             "negative patch pair (the pair term acts only there).", ":name: tab-run-contrastive", "",
             "| contrastive pre-training | active fraction of steps | needs |", "|---|---:|---|"]
    return lines + [f"| {m} | {fmt(f, 3)} | >= {min_active:g} |" for m, f in sorted(fractions.items())] + [":::"]


def _check_lines(root: Path, run: dict[str, Any], entries: list[dict], limits: tuple[float, float]) -> list[str]:
    """The check's summary and every failing item without a stated reason (``limits``: max wall min, min active)."""
    failures, n = check_tree(root, *limits)
    explained = split_explained(root, entries)[1]
    rules = explained_rule_failures(failures, entries)
    failures = [f for f in failures if f not in explained and f not in rules]
    all_rows, undefined = run_floor_rows(run)
    below = sum(not r.passes for r in all_rows)
    n_undefined = sum(len(v) for v in undefined.values())
    other = [f for f in failures if not f.split(":")[0].endswith("metrics.json")]
    lines = ["", f"**Check:** {n} points, {len(all_rows)} checked runs (the pretrained and scratch run of each "
             f"point): {len(all_rows) - below} meet the floor, {len(explained)} are below it with a stated reason, "
             f"{below - len(explained)} are below it without one"
             + (f"; {n_undefined} point(s) have no defined baseline and are not checked" if n_undefined else "")
             + f"; {len(other)} other rule(s) (wall time, contrastive pairs, missing files) fail without a stated "
             f"reason" + (f", {len(rules)} with one (below)" if rules else "") + ". Every item without a reason is "
             "listed here.", ""]
    lines += [f"- `{f}`" for f in failures[:40]]
    if len(failures) > 40:
        lines.append(f"- … and {len(failures) - 40} more (run the check script for the full list)")
    for rule, start in RULE_LINES.items():
        lines += [f"\n**Rule `{rule}` not met, with a stated reason** (`book/floor_explanations.yml`): `{f}`. "
                  f"{rule_explanation(rule, entries)}" for f in rules if f.startswith(start)]
    return lines


def run_page_markdown(root: Path, profile: str, max_wall_min: float = 90.0, min_active: float = 0.5,
                      explanations: Path | None = None) -> str:
    """The run page (Markdown) of the results tree ``root`` of ``profile``: header, breakdown, floor (with the
    book's explanations of failing rows, :func:`~transferlimits.reporting.floor.load_explanations`), check.

    Args:
        root: the results tree. profile: its profile's name. max_wall_min, min_active: the check's limits on the
            whole-grid wall time and the contrastive active fraction. explanations: the floor explanations file
            (default: the book's).
    """
    run = load_run(root)
    entries = load_explanations(explanations)
    lines = [header_markdown(root, profile), ""]
    lines += criteria_markdown(design_criteria(*load_tree(root)))
    lines += _breakdown_lines(wall_breakdown(run))
    lines += _floor_lines(run, profile, entries)
    lines += linear_references_markdown(root, run)
    lines += _contrastive_lines(root, min_active)
    lines += _check_lines(root, run, entries, (max_wall_min, min_active))
    lines += test_cases_markdown(run, root)
    lines += reproduction_markdown(root)
    return "\n".join(lines) + "\n"
