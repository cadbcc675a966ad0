"""The ``cpu`` profile's scientific floor, checked over a finished (or published) results tree.

Three rules (issue 12; stated in the book's run page, checked by ``scripts/check_cpu_profile.py``):

* **baselines**: every point's ``pretrained`` and ``scratch`` runs beat the task's trivial baseline on the test
  split by :data:`MARGINS` - >= 1 dB PSNR over the identity for super-resolution and distortion correction, a
  gland MAE below the train-median constant for modality translation, AUROC >= 0.6 for classification, a Dice
  above the empty mask for segmentation; other tasks: strictly better than their baseline. The primary metric
  and its direction come from each file's ``task_spec``, the baseline from ``baselines`` ({name: {metric:
  value}}: the only entry, or the one named in :data:`BASELINE_NAMES`);
* **pairs**: ``contrastive_active_fraction`` >= 0.5 in every contrastive pre-training's ``pretrain.json``, for
  both backbones (``pretrain/<model>__<objective>/pretrain.json`` where the model's adapter declares the objective's
  family ``contrastive``, ``models.adapters.base.ObjectiveInfo``);
* **wall**: the whole grid's wall time <= 90 min (``grid.json`` ``wall_s``, written by ``transferlimits run``).

:func:`floor_rows` gives one :class:`FloorRow` per (point, init) for tables; :func:`check_tree` the failures.

A point below the floor may be **explained**: ``book/floor_explanations.yml`` (:data:`EXPLANATIONS`) lists
entries ``{task, model (optional), init (optional), reason}``; the book's run page prints each failing row's
reason beside it, and :func:`split_explained` sets the explained failures apart (the check script exits 0 when
every failure is explained, and names every explained one). A run-level rule may be explained the same way by an
entry ``{rule, reason}`` (:data:`RULE_LINES`: the wall time), printed on the run page. An entry explains only
failures; it never turns a number into a pass.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from transferlimits import paths
from transferlimits.models.registry import MODEL_REGISTRY

__all__ = ["MARGINS", "BASELINE_NAMES", "CHECKED_INITS", "EXPLANATIONS", "RULE_LINES", "FloorRow", "strict_json",
           "rule_explanation", "explained_rule_failures",
           "baseline_value", "floor_rows", "run_floor_rows", "is_contrastive", "contrastive_paths", "contrastive_fractions",
           "grid_wall_s", "grid_peak_gflops", "grid_core_s", "check_tree", "load_explanations", "explanation_for", "split_explained"]

#: task -> (margin, rule): "over" = pretrained/scratch >= baseline + margin (in the metric's better direction;
#: margin 0 = strictly better), "floor" = the run's value itself >= margin (AUROC: a constant prior scores 0.5).
MARGINS: dict[str, tuple[float, str]] = {
    "super_resolution": (1.0, "over"),
    "distortion_correction": (1.0, "over"),
    "modality_translation": (0.0, "over"),
    "classification": (0.6, "floor"),
    "segmentation": (0.0, "over"),
}
#: the baseline entry of each task in ``baselines`` when there is more than one.
BASELINE_NAMES: dict[str, str] = {
    "super_resolution": "identity", "distortion_correction": "identity", "modality_translation": "train_median",
    "classification": "class_prior", "segmentation": "empty_mask",
}
CHECKED_INITS: tuple[str, ...] = ("pretrained", "scratch")
#: the book's explanations of points below the floor (see the module docstring).
EXPLANATIONS: Path = paths.BOOK / "floor_explanations.yml"
#: run-level rules an explanation entry ``{rule, reason}`` may explain, and how their failure line starts
RULE_LINES = {"wall": "grid.json: whole-grid wall"}


@dataclass(frozen=True)
class FloorRow:
    """One run of one point against its baseline: ``passes`` when ``value`` meets ``need``; ``above`` when it is
    strictly better than the baseline at all (the condition under which a run's RPG is defined), margin or not."""

    point: str
    task: str
    model: str
    seed: int | None
    objective: str
    init: str
    metric: str
    value: float | None
    baseline_name: str
    baseline: float
    need: str
    passes: bool
    above: bool = False


def strict_json(path: Path) -> dict:
    """A JSON file, rejecting NaN/Infinity (ValueError naming the file)."""
    def reject(name: str) -> None:
        raise ValueError(f"{path}: non-standard JSON constant {name}")
    try:
        return json.loads(Path(path).read_text(), parse_constant=reject)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def baseline_value(metrics: dict, where: str) -> tuple[str, float]:
    """The task's baseline ``(name, score on the primary metric)`` (ValueError naming the file and what is missing)."""
    task, primary = metrics["task"], metrics["task_spec"]["primary_metric"]
    baselines = metrics.get("baselines") or {}
    if not baselines:
        raise ValueError(f"{where}: no 'baselines' field")
    name = BASELINE_NAMES.get(task) if len(baselines) > 1 else next(iter(baselines))
    if name not in baselines:
        raise ValueError(f"{where}: baseline {name!r} of task {task!r} missing; has {sorted(baselines)}")
    value = baselines[name].get(primary)
    if value is None:
        raise ValueError(f"{where}: baseline {name!r} has no {primary!r} value")
    return name, float(value)


def _need(value: float | None, base: float, margin: float, rule: str, higher: bool) -> tuple[bool, str]:
    if rule == "floor":
        return value is not None and value >= margin, f">= {margin:g}"
    if higher:
        limit, op = base + margin, (">=" if margin else ">")
        ok = value is not None and (value >= limit if margin else value > base)
    else:
        limit, op = base - margin, ("<=" if margin else "<")
        ok = value is not None and (value <= limit if margin else value < base)
    return ok, f"{op} {limit:.4g}"


def floor_rows(metrics: dict, where: str) -> list[FloorRow]:
    """One row per checked init of one metrics.json (a missing test score is a failing row with value None).

    Raises:
        ValueError, KeyError: the file lacks its task, spec or baseline.
    """
    task, spec = metrics["task"], metrics["task_spec"]
    primary, higher = spec["primary_metric"], bool(spec["higher_is_better"])
    margin, rule = MARGINS.get(task, (0.0, "over"))
    name, base = baseline_value(metrics, where)
    rows = []
    for init in CHECKED_INITS:
        value = ((metrics.get("runs") or {}).get(init) or {}).get("test", {}).get(primary)
        value = None if value is None else float(value)
        ok, need = _need(value, base, margin, rule, higher)
        above = _need(value, base, 0.0, "over", higher)[0]
        rows.append(FloorRow(where, task, metrics.get("model", "?"), metrics.get("seed"),
                             metrics.get("objective", "native"), init, primary, value, name, base, need, ok, above))
    return rows


def run_floor_rows(run: dict[str, Any]) -> tuple[list[FloorRow], dict[tuple[str, str], list[str]]]:
    """The floor rows of every point of ``run``, and the points that have none: ``{(task, model): [file: why]}``
    (a point whose baseline is undefined, e.g. an AUROC on a one-class test split of a tiny run, or that lacks
    its task spec). Those points are named, not dropped silently and not a crash."""
    rows: list[FloorRow] = []
    undefined: dict[tuple[str, str], list[str]] = defaultdict(list)
    for where, m in run["metrics"].items():
        try:
            rows += floor_rows(m, where)
        except (ValueError, KeyError, TypeError) as err:
            why = str(err) if isinstance(err, ValueError) else f"{where}: missing or malformed field {err}"
            undefined[(str(m.get("task", "?")), str(m.get("model", "?")))].append(why)
    return rows, dict(undefined)


def is_contrastive(model: str, objective: str) -> bool:
    """Whether ``model``'s adapter declares ``objective`` of the ``contrastive`` family (False for a model not
    registered in this process or an objective it does not declare)."""
    adapter = MODEL_REGISTRY.get(model)
    return adapter is not None and objective in adapter.objectives and \
        adapter.objective_info(objective).family == "contrastive"


def contrastive_paths(root: Path) -> dict[str, Path]:
    """``{model: pretrain.json}`` of every contrastive pre-training under ``root`` (folders
    ``pretrain/<model>__<objective>``, :func:`transferlimits.paths.pretrain_dir`; see :func:`is_contrastive`)."""
    out = {}
    for path in sorted(Path(root).rglob("pretrain.json")):
        model, sep, objective = path.parent.name.partition("__")
        if sep and is_contrastive(model, objective):
            out[model] = path
    return out


def contrastive_fractions(root: Path) -> dict[str, float | None]:
    """``{model: contrastive_active_fraction}`` of every contrastive pre-training's ``pretrain.json``
    (:func:`contrastive_paths`)."""
    out = {}
    for model, path in contrastive_paths(root).items():
        frac = strict_json(path).get("contrastive_active_fraction")
        out[model] = None if frac is None else float(frac)
    return out


def _grid_json(root: Path) -> dict:
    """``root/grid.json`` parsed (strict JSON); an empty dict when the run recorded none."""
    path = Path(root) / "grid.json"
    return strict_json(path) if path.is_file() else {}


def grid_peak_gflops(root: Path) -> float | None:
    """The smallest fp32 matmul peak per thread (GFLOP/s) recorded by the grid's computing invocations in
    ``root/grid.json`` (:mod:`transferlimits.runner.machine_peak`); None when none recorded one (runs before it)."""
    peaks = [float(i["sgemm_peak_gflops_1thread"]) for i in _grid_json(root).get("invocations") or []
             if not i.get("render_only") and i.get("sgemm_peak_gflops_1thread") is not None]
    return min(peaks) if peaks else None


def grid_core_s(root: Path) -> float | None:
    """Core-seconds the grid's computing invocations held: the sum of ``cores x wall_s`` over ``root/grid.json``'s
    invocations that were not render-only; None when none is recorded or one lacks its cores or wall."""
    runs = [i for i in _grid_json(root).get("invocations") or [] if not i.get("render_only")]
    if not runs or any(i.get("cores") is None or i.get("wall_s") is None for i in runs):
        return None
    return float(sum(float(i["cores"]) * float(i["wall_s"]) for i in runs))


def grid_wall_s(root: Path) -> float | None:
    """The whole grid's wall seconds from ``root/grid.json`` (None when absent)."""
    wall = _grid_json(root).get("wall_s")
    return None if wall is None else float(wall)


def check_tree(root: Path, max_wall_min: float = 90.0, min_active: float = 0.5) -> tuple[list[str], int]:
    """All failures under ``root`` (one line each, naming the file) and the number of points checked."""
    root = Path(root)
    failures: list[str] = []
    files = sorted(root.rglob("metrics.json"))
    if not files:
        failures.append(f"{root}: no metrics.json found")
    for path in files:
        where = str(path.relative_to(root))
        try:
            for r in floor_rows(strict_json(path), where):
                if r.value is None:
                    failures.append(f"{where}: run {r.init!r} has no test {r.metric!r}")
                elif not r.passes:
                    failures.append(f"{where}: {r.init} {r.metric} = {r.value:.4g}, needs {r.need} "
                                    f"(baseline {r.baseline:.4g})")
        except (ValueError, KeyError) as err:  # the message of baseline_value names the file already
            failures.append(str(err) if str(err).startswith(f"{where}: ") else f"{where}: {err}")
    fractions, where = contrastive_fractions(root), contrastive_paths(root)
    if len(fractions) < 2:
        failures.append(f"{root}: contrastive pre-training of both backbones expected, found {sorted(fractions)}")
    for model, frac in fractions.items():
        if frac is None or frac < min_active:
            failures.append(f"{where[model].relative_to(root)}: contrastive_active_fraction = {frac}, "
                            f"needs >= {min_active}")
    if not (root / "grid.json").is_file():
        failures.append(f"{root / 'grid.json'}: missing (transferlimits run writes it with the grid's wall time)")
    else:
        wall = grid_wall_s(root)
        if wall is None or wall > 60 * max_wall_min:
            failures.append(f"{RULE_LINES['wall']} {wall} s, needs <= {60 * max_wall_min:.0f} s")
    return failures, len(files)


def load_explanations(path: Path | None = None) -> list[dict]:
    """The entries of ``path`` (default :data:`EXPLANATIONS`; none when it does not exist).

    Raises:
        ValueError: an entry without ``task`` or ``reason``, or with an unknown key (the message names the file).
    """
    path = EXPLANATIONS if path is None else Path(path)
    if not path.is_file():
        return []
    entries = yaml.safe_load(path.read_text()) or []
    for i, e in enumerate(entries):
        point = isinstance(e, dict) and e.get("task") and not set(e) - {"task", "model", "init", "reason"}
        rule = isinstance(e, dict) and e.get("rule") in RULE_LINES and set(e) == {"rule", "reason"}
        if not (point or rule) or not e.get("reason"):
            raise ValueError(f"{path}: entry {i} must be a mapping with task and reason (optional model, init), or "
                             f"with rule (one of {sorted(RULE_LINES)}) and reason, got {e!r}")
    return entries


def explanation_for(task: str, model: str, init: str, entries: list[dict]) -> str | None:
    """The reason of the first point entry matching (task, model, init); None when none does."""
    for e in entries:
        if e.get("task") == task and e.get("model", model) == model and e.get("init", init) == init:
            return str(e["reason"]).strip()
    return None


def rule_explanation(rule: str, entries: list[dict]) -> str | None:
    """The reason of the entry explaining a run-level ``rule`` (a key of :data:`RULE_LINES`); None when none does."""
    return next((str(e["reason"]).strip() for e in entries if e.get("rule") == rule), None)


def explained_rule_failures(failures: list[str], entries: list[dict]) -> list[str]:
    """The run-level failures of :func:`check_tree` (e.g. the wall time) that an entry ``{rule, reason}`` explains."""
    return [f for f in failures for rule, start in RULE_LINES.items()
            if f.startswith(start) and rule_explanation(rule, entries)]


def split_explained(root: Path, entries: list[dict]) -> tuple[list[str], list[str]]:
    """(unexplained failures, explained failures) of the baseline rule over ``root``'s metrics.json files."""
    unexplained, explained = [], []
    for path in sorted(Path(root).rglob("metrics.json")):
        where = str(path.relative_to(root))
        try:
            rows = floor_rows(strict_json(path), where)
        except (ValueError, KeyError):
            continue  # reported by check_tree
        for r in rows:
            if r.passes:
                continue
            line = (f"{where}: {r.init} {r.metric} = {'none' if r.value is None else f'{r.value:.4g}'}, needs "
                    f"{r.need} (baseline {r.baseline:.4g})")
            (explained if explanation_for(r.task, r.model, r.init, entries) else unexplained).append(line)
    return unexplained, explained
