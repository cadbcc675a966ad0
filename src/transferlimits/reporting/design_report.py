"""Can this run see the encoder? The "Done when" criteria of the experiment-design issue, computed by rule.

Each criterion is one :class:`Criterion` row per model (or for the whole run), computed from the files a run
writes (``runs/*/metrics.json``, ``pretrain/*/pretrain.json``, ``linear_references.json``, ``grid.json``), never
typed. A criterion whose inputs the run lacks (e.g. a run made before the encoder controls) is ``missing``, not
passed. The rules (STUDY §5.1; the thresholds are the issue's):

* **encoder share**: the median over seeds of the native point's ``encoder_share["pretrained"]`` is ≥ 0.5 on
  at least 4 of the model's 5 tasks (all but one where fewer);
* **above the linear reference**: on each restoration task the linear reference covers, the mean over seeds of the
  native point's pretrained and scratch runs both beat the closed-form linear filter;
* **positive control detected** / **negative controls not detected**: :func:`study.control_check.design_check`
  (paired over seeds, one-sided t for a gain, Holm across points of a kind);
* **within-task points**: at least 40 (task, model, objective kind) points with a defined gain and alignment;
* **LogME informative**: no point's LogME equals the degenerate-target value −½·ln(2πe);
* **pre-training plateaued**: every pre-training's ``loss_change_last20`` is within ±5 %;
* **wall**: the grid's wall time ≤ 90 minutes;
* **overhead**: the core-time the grid held (cores × wall of each computing invocation, ``grid.json``) outside the
  timed work -- every point's ``provenance.timings.total_s``, every pre-training's ``wall_seconds`` and every
  positive control's ``train_seconds`` -- is ≤ 15 % of it: notebook kernels, imports, Snakemake, idle cores and
  work lost to an interruption. The points' own untimed work (data loading, baselines, writing: ``total_s`` minus
  the fine-tunings and the measurements) is stated beside it, not counted as overhead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from transferlimits.reporting.floor import grid_core_s, grid_peak_gflops, grid_wall_s, strict_json
from transferlimits.study.control_check import control_table, design_check, enough_tasks

__all__ = ["Criterion", "DEGENERATE_LOGME", "design_criteria", "load_tree", "format_criteria", "criteria_markdown",
           "untimed_s"]

#: LogME of a constant (degenerate) target: −½·ln(2πe)
DEGENERATE_LOGME = -0.5 * math.log(2 * math.pi * math.e)
MIN_SHARE, MIN_WITHIN_POINTS, MAX_PLATEAU, MAX_WALL_MIN, MAX_OVERHEAD = 0.5, 40, 0.05, 90.0, 0.15


@dataclass(frozen=True)
class Criterion:
    """One row: ``name``, ``scope`` (a model or "run"), ``value`` (what was measured, as text), ``rule`` and
    ``status`` ("pass", "fail" or "missing")."""

    name: str
    scope: str
    value: str
    rule: str
    status: str


def load_tree(root: Path) -> tuple[list[dict], list[dict], dict, float | None, float | None, float | None, float]:
    """``(points, pretrainings, linear references, grid wall seconds, the machine's recorded fp32 matmul peak per
    thread in GFLOP/s or None, the grid's core-seconds or None, the core-seconds of the pre-trainings and positive
    controls)`` of a results tree (strict JSON)."""
    root = Path(root)
    points = [strict_json(p) for p in sorted(root.glob("runs/*/metrics.json"))]
    pretrain = [strict_json(p) for p in sorted(root.glob("pretrain/*/pretrain.json"))]
    positive = [strict_json(p) for p in sorted(root.glob("pretrain/*/positive.json"))]
    side_s = sum(float(p.get("wall_seconds") or 0.0) for p in pretrain) + \
        sum(float(p.get("train_seconds") or 0.0) for p in positive)
    lin_path = root / "linear_references.json"
    linear = strict_json(lin_path).get("tasks", {}) if lin_path.is_file() else {}
    return points, pretrain, linear, grid_wall_s(root), grid_peak_gflops(root), grid_core_s(root), side_s


def _primary(m: dict, init: str) -> float:
    run = (m.get("runs") or {}).get(init) or {}
    value = (run.get("test") or {}).get(m["task_spec"]["primary_metric"])
    return math.nan if value is None else float(value)


def _share_rows(native: list[dict], models: Sequence[str]) -> list[Criterion]:
    rows = []
    for model in models:
        by_task: dict[str, list[float]] = {}
        for m in (p for p in native if p["model"] == model):
            v = (m.get("encoder_share") or {}).get("pretrained")
            by_task.setdefault(m["task"], []).append(math.nan if v is None else float(v))
        med = {t: float(np.nanmedian(v)) if np.isfinite(v).any() else math.nan for t, v in sorted(by_task.items())}
        n_ok, n = sum(v >= MIN_SHARE for v in med.values()), len(med)
        need = 4 if n >= 5 else max(1, n - 1)
        value = ", ".join(f"{t} {v:.2f}" if math.isfinite(v) else f"{t} —" for t, v in med.items())
        status = "missing" if not any(np.isfinite(list(med.values()))) else \
            ("pass" if enough_tasks(n_ok, n) else "fail")
        rows.append(Criterion("encoder share", model, f"{n_ok} of {n} tasks ≥ {MIN_SHARE} ({value})",
                              f"median over seeds ≥ {MIN_SHARE} on ≥ {need} of {n} tasks", status))
    return rows


def _linear_rows(native: list[dict], linear: dict, models: Sequence[str]) -> list[Criterion]:
    rows = []
    tasks = sorted(t for t, v in linear.items() if "linear_filter" in v)
    for model in models:
        parts, ok = [], True
        for task in tasks:
            pts = [m for m in native if m["model"] == model and m["task"] == task]
            ref = float(linear[task]["linear_filter"])
            means = {i: float(np.nanmean([_primary(m, i) for m in pts])) if pts else math.nan
                     for i in ("pretrained", "scratch")}
            higher = bool(pts[0]["task_spec"].get("higher_is_better", True)) if pts else True
            beat = all(math.isfinite(v) and ((v > ref) if higher else (v < ref)) for v in means.values())
            ok &= beat
            parts.append(f"{task}: pretrained {means['pretrained']:.2f}, scratch {means['scratch']:.2f} vs {ref:.2f}")
        status = "missing" if not tasks else ("pass" if ok else "fail")
        rows.append(Criterion("above the linear reference", model, "; ".join(parts) or "no linear reference",
                              "pretrained and scratch (mean over seeds) beat the linear filter on each task", status))
    return rows


def _control_rows(points: list[dict], models: Sequence[str]) -> list[Criterion]:
    check = design_check(control_table(points))
    rows = []
    for model in models:
        got = check["positive"].get(model)
        status = "missing" if got is None else ("pass" if enough_tasks(*got) else "fail")
        value = "no positive control" if got is None else f"detected on {got[0]} of {got[1]} tasks"
        rows.append(Criterion("positive control detected", model, value,
                              "paired over seeds, Holm: ≥ 4 of 5 tasks", status))
    det, n = check["negative"]
    rows.append(Criterion("negative controls not detected", "run", f"detected on {det} of {n} points",
                          "≤ 1 in 10 points", "missing" if n == 0 else ("pass" if det <= n / 10 else "fail")))
    return rows


def _within_points(points: list[dict]) -> int:
    keys = set()
    for m in points:
        gain = _primary(m, "pretrained") - _primary(m, "scratch")
        align = (m.get("alignment") or {}).get("pretrained")
        if math.isfinite(gain) and align:
            keys.add((m["task"], m["model"], m["objective"]))
    return len(keys)


def untimed_s(timings: dict) -> float:
    """A point's seconds outside its fine-tunings and measurements (``provenance.timings``: ``total_s`` minus
    ``finetune_s`` and ``measure_s``; data loading, baselines, writing), never negative."""
    ft = sum(float(v or 0.0) for v in (timings.get("finetune_s") or {}).values())
    return max(0.0, float(timings.get("total_s") or 0.0) - ft - float(timings.get("measure_s") or 0.0))


def _overhead_row(points: list[dict], core_s: float | None, side_s: float) -> Criterion:
    rule = f"≤ {100 * MAX_OVERHEAD:.0f} % of the core-time outside the timed points, pre-trainings, positive controls"
    timings = [(m.get("provenance") or {}).get("timings") or {} for m in points]
    if core_s is None or not core_s > 0 or not points or any(t.get("total_s") is None for t in timings):
        return Criterion("overhead", "run", "not recorded (grid.json without cores, or points without timings)",
                         rule, "missing")
    point_s = sum(float(t["total_s"]) for t in timings)
    untimed = sum(untimed_s(t) for t in timings)
    over = core_s - point_s - side_s
    value = (f"{100 * over / core_s:.1f} % ({over / 60:.1f} of {core_s / 60:.1f} core-min; points {point_s / 60:.1f}, "
             f"of which untimed data, baselines and writing {untimed / 60:.1f}; pre-trainings and positive controls "
             f"{side_s / 60:.1f})")
    return Criterion("overhead", "run", value, rule, "pass" if over <= MAX_OVERHEAD * core_s else "fail")


def design_criteria(points: list[dict], pretrain: list[dict], linear: dict, wall_s: float | None,
                    peak_gflops: float | None = None, core_s: float | None = None,
                    side_s: float = 0.0) -> list[Criterion]:
    """Every criterion of the module docstring, per model where it is per model (the wall's value names the
    machine's fp32 matmul peak per thread when the run recorded it: the same budget is less work on a slower
    machine; the overhead needs the grid's core-seconds and the pre-trainings' and positive controls' seconds)."""
    models = sorted({m["model"] for m in points})
    native = [m for m in points if m["objective"] == "native"]
    rows = _share_rows(native, models) + _linear_rows(native, linear, models) + _control_rows(points, models)
    n_within = _within_points(points)
    rows.append(Criterion("within-task points", "run", f"{n_within} (task, model, encoder) points",
                          f"≥ {MIN_WITHIN_POINTS}", "pass" if n_within >= MIN_WITHIN_POINTS else "fail"))
    logme = [(m["task"], m["model"], m["objective"], (m.get("transferability") or {}).get("logme")) for m in points]
    bad = sorted({(t, mo) for t, mo, _, v in logme if v is not None and abs(float(v) - DEGENERATE_LOGME) < 1e-6})
    known = [v for *_, v in logme if v is not None]
    rows.append(Criterion("LogME informative", "run", f"degenerate on {len(bad)} (task, model) pairs"
                          + (f": {', '.join(f'{t}/{mo}' for t, mo in bad)}" if bad else ""),
                          "no LogME equals −½·ln(2πe)", "missing" if not known else ("fail" if bad else "pass")))
    changes = {f"{p.get('model')}/{p.get('objective')}": p.get("loss_change_last20") for p in pretrain}
    over = {k: v for k, v in changes.items() if v is None or not abs(float(v)) <= MAX_PLATEAU}
    rows.append(Criterion("pre-training plateaued", "run", ", ".join(
        f"{k} {'undefined' if v is None else f'{100 * float(v):+.1f} %'}" for k, v in sorted(changes.items())),
        f"|last-20 % loss change| ≤ {100 * MAX_PLATEAU:.0f} %", "missing" if not changes else
        ("fail" if over else "pass")))
    machine = "" if peak_gflops is None else f" on a machine of {peak_gflops:.0f} GFLOP/s fp32 matmul per thread"
    rows.append(Criterion("wall", "run", "not recorded" if wall_s is None else f"{wall_s / 60:.1f} min{machine}",
                          f"≤ {MAX_WALL_MIN:.0f} min", "missing" if wall_s is None else
                          ("pass" if wall_s <= 60 * MAX_WALL_MIN else "fail")))
    rows.append(_overhead_row(points, core_s, side_s))
    return rows


def format_criteria(rows: Sequence[Criterion]) -> str:
    """A plain-text table, one line per criterion: status, name, scope, value [rule]."""
    return "\n".join(f"{r.status.upper():7s} {r.name} ({r.scope}): {r.value} [{r.rule}]" for r in rows)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def criteria_markdown(rows: Sequence[Criterion]) -> list[str]:
    """The criteria as the run page's first section: a one-line count and a numbered MyST table (no rows: a line
    saying the run has no design check)."""
    lines = ["", "**Can this run see the encoder?** The experiment-design criteria (STUDY's \"the experiment must be "
             "able to see the encoder\"), computed by rule from the run's files (`transferlimits.reporting."
             "design_report`, printed by `scripts/check_design.py`). A verdict of this run is only as strong as "
             "this check: where it fails, the analysis chapter reads every hypothesis as inconclusive."]
    if not rows:
        return lines + ["", "This run has no result files to check.", ""]
    count = {s: sum(r.status == s for r in rows) for s in ("pass", "fail", "missing")}
    lines += ["", f"**Design check:** {count['pass']} of {len(rows)} criteria pass, {count['fail']} fail, "
              f"{count['missing']} cannot be computed from this run's files (missing: the run lacks what the "
              "criterion needs, e.g. a run made before the encoder controls).", "",
              ":::{table} Can this run see the encoder? Each criterion per model or for the whole run: what was "
              "measured, the rule, and whether the run meets it.", ":name: tab-run-design", ":class: compact-table",
              "", "| criterion | scope | measured | rule | status |", "|---|---|---|---|---|"]
    lines += [f"| {r.name} | {r.scope} | {_cell(r.value)} | {_cell(r.rule)} | **{r.status}** |" for r in rows]
    return lines + [":::", ""]
