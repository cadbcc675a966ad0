"""Check a finished ``cpu`` study against its scientific floor; exit non-zero naming every failing item.

Checks, over the metrics.json files under ``--results`` (default ``results/cpu``; committed runs may live in
``book/generated/cpu``):

* every point's ``pretrained`` and ``scratch`` runs beat the task's trivial baseline on the test split by the
  stated margin (:data:`MARGINS`): >= 1 dB PSNR over the identity for super-resolution and distortion correction,
  gland MAE below the train-median constant for modality translation, AUROC >= 0.6 for classification, Dice
  above the empty mask for segmentation; other tasks: strictly better than their baseline. The primary metric
  and its direction come from each file's ``task_spec``; the baseline from ``baselines`` ({name: {metric:
  value}}; the baseline of a task is its only entry, or the entry named in :data:`BASELINE_NAMES`);
* ``contrastive_active_fraction`` >= 0.5 in the ``pretrain.json`` of every contrastive pre-training, so for both
  backbones (``pretrain/<model>__contrastive/pretrain.json``);
* the whole-grid wall time <= 90 min, from ``grid.json`` (``wall_s``; written by ``transferlimits run``).

Run: ``.venv/bin/python scripts/check_cpu_profile.py [--results results/cpu] [--max-wall-min 90]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: task -> (margin, rule): "over" = pretrained/scratch >= baseline + margin (in the metric's better direction),
#: "floor" = the run's value itself >= margin (AUROC: a constant prior scores 0.5 by construction).
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


def _strict_json(path: Path) -> dict:
    """A JSON file, rejecting NaN/Infinity (ValueError naming the file)."""
    def reject(name: str) -> None:
        raise ValueError(f"{path}: non-standard JSON constant {name}")
    try:
        return json.loads(path.read_text(), parse_constant=reject)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def baseline_value(metrics: dict, where: str) -> float:
    """The task's baseline score on its primary metric (ValueError naming the file and what is missing)."""
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
    return float(value)


def check_point(metrics: dict, where: str) -> list[str]:
    """Failures of one metrics.json (empty when every checked init beats its baseline by the margin)."""
    task = metrics["task"]
    spec = metrics["task_spec"]
    primary, higher = spec["primary_metric"], bool(spec["higher_is_better"])
    margin, rule = MARGINS.get(task, (0.0, "over"))
    try:
        base = baseline_value(metrics, where)
    except (ValueError, KeyError) as err:
        return [str(err)]
    failures = []
    for init in CHECKED_INITS:
        run = metrics.get("runs", {}).get(init)
        value = None if run is None else run.get("test", {}).get(primary)
        if value is None:
            failures.append(f"{where}: run {init!r} has no test {primary!r}")
            continue
        value = float(value)
        if rule == "floor":
            ok, need = value >= margin, f">= {margin:g}"
        elif higher:
            ok, need = (value >= base + margin if margin else value > base), f"{'>=' if margin else '>'} {base + margin:.4g}"
        else:
            ok, need = (value <= base - margin if margin else value < base), f"{'<=' if margin else '<'} {base - margin:.4g}"
        if not ok:
            failures.append(f"{where}: {init} {primary} = {value:.4g}, needs {need} (baseline {base:.4g})")
    return failures


def check_tree(root: Path, max_wall_min: float = 90.0, min_active: float = 0.5) -> tuple[list[str], int]:
    """All failures under ``root`` and the number of points checked."""
    root = Path(root)
    failures: list[str] = []
    files = sorted(root.rglob("metrics.json"))
    if not files:
        failures.append(f"{root}: no metrics.json found")
    for path in files:
        try:
            failures += check_point(_strict_json(path), str(path.relative_to(root)))
        except (ValueError, KeyError) as err:
            failures.append(f"{path}: {err}")
    pre = sorted(root.rglob("pretrain.json"))
    contrastive = [p for p in pre if p.parent.name.endswith("__contrastive")]
    models = {p.parent.name.split("__")[0] for p in contrastive}
    if len(models) < 2:
        failures.append(f"{root}: contrastive pre-training of both backbones expected, found {sorted(models)}")
    for path in contrastive:
        frac = _strict_json(path).get("contrastive_active_fraction")
        if frac is None or float(frac) < min_active:
            failures.append(f"{path.relative_to(root)}: contrastive_active_fraction = {frac}, needs >= {min_active}")
    grid = root / "grid.json"
    if not grid.is_file():
        failures.append(f"{grid}: missing (transferlimits run writes it with the grid's wall time)")
    else:
        wall = _strict_json(grid).get("wall_s")
        if wall is None or float(wall) > 60 * max_wall_min:
            failures.append(f"{grid.name}: whole-grid wall {wall} s, needs <= {60 * max_wall_min:.0f} s")
    return failures, len(files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results/cpu"), help="tree of the cpu study")
    parser.add_argument("--max-wall-min", type=float, default=90.0)
    parser.add_argument("--min-active", type=float, default=0.5, help="minimum contrastive_active_fraction")
    args = parser.parse_args(argv)
    failures, n = check_tree(args.results, args.max_wall_min, args.min_active)
    for line in failures:
        print(f"FAIL {line}")
    print(f"{n} point(s) checked under {args.results}: {'OK' if not failures else f'{len(failures)} failure(s)'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
