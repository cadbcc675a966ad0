"""The run page's closing sections, each from the run's files: the test split, the linear references, and how
far a re-run reproduces the committed numbers (re-exported by :mod:`transferlimits.reporting.run_page`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from transferlimits.reporting.floor import baseline_value, strict_json

__all__ = ["REPRODUCTION", "COMPARE_COMMAND", "fmt", "test_cases_markdown", "linear_references_markdown",
           "reproduction_markdown"]

#: Reproduction measured in an earlier session (not computed by this page; README "Reproducibility"): the same
#: point re-run on another machine of the same kind. (quantity, committed, re-run).
REPRODUCTION = (("scratch AUROC", 0.6302, 0.6278), ("pretrained AUROC", 0.6558, 0.6546),
                ("embedding MMD²", 0.8784, 0.8817))
COMPARE_COMMAND = ("python scripts/compare_results.py book/generated/cpu/results results/cpu --rtol 0.02 --atol 0.005")


def fmt(v: float | None, nd: int = 3) -> str:
    """``v`` with ``nd`` decimals; "–" when it is None or not finite."""
    return "–" if v is None or not np.isfinite(v) else f"{v:.{nd}f}"


def test_cases_markdown(run: dict[str, Any], root: Path) -> list[str]:
    """The test split in patients and in exams (a patient may have two exams), from splits.json and the points."""
    splits_path = Path(root) / "data" / "splits.json"
    if not splits_path.is_file():
        return []
    test = (strict_json(splits_path).get("splits") or {}).get("test") or []
    patients = {str(c).split("_")[0] for c in test}
    n_cases = sorted({int((m.get("n_cases") or {}).get("test", -1)) for m in run["metrics"].values()} - {-1})
    return ["", f"**Test split.** The profile asks for {len(patients)} test patients, and the split holds "
            f"{len(test)} exams: {len(test) - len(patients)} test patient(s) have two exams. Splits are by patient, "
            "so both exams of a patient stay in one split. Every point is scored on the exams: its `n_cases.test` is "
            + (" / ".join(map(str, n_cases)) if n_cases else "?") + "."]


def _seed_baselines(run: dict[str, Any] | None, task: str) -> dict[int, float]:
    """{seed: trivial-baseline score} of the task's native ProFound-or-first-model points (the baseline is a
    property of the task's test inputs, drawn per seed where the degradation is random)."""
    out: dict[int, float] = {}
    for where, m in (run or {}).get("metrics", {}).items():
        if m.get("task") == task and m.get("objective", "native") == "native":
            try:
                out.setdefault(int(m.get("seed", -1)), baseline_value(m, where)[1])
            except (ValueError, KeyError):
                continue
    return out


def linear_references_markdown(root: Path, run: dict[str, Any] | None = None) -> list[str]:
    """Table of ``linear_references.json`` (benchmarks/linear_references.py), when the run has one, with the
    seed whose test inputs its trivial baseline matches (a task whose degradation is drawn per seed has one
    identity score per seed; the floor table above shows their range)."""
    path = Path(root) / "linear_references.json"
    if not path.is_file():
        return []
    refs = strict_json(path)
    lines = ["", f"**Linear references** (`benchmarks/linear_references.py`, {refs.get('hardware', '?')}): what a "
             "linear model fitted in closed form on the same training cases scores on the same test exams "
             "(`n_test`).", "",
             ":::{table} Linear references: a closed-form linear model beside the trivial baseline, on the same test exams.",
             ":name: tab-run-linear", "",
             "| task | metric | trivial baseline | linear reference | test exams | model |", "|---|---|---:|---:|---:|---|"]
    notes = []
    for task, r in sorted((refs.get("tasks") or {}).items()):
        base = r.get("identity", r.get("empty_mask"))
        lin = r.get("linear_filter", r.get("logistic_voxel"))
        seeds = _seed_baselines(run, task)
        if base is not None and len(set(round(v, 6) for v in seeds.values())) > 1:
            match = [s for s, v in sorted(seeds.items()) if abs(v - float(base)) < 1e-6]
            notes.append(f"{task}: the degradation of the test inputs is drawn per fine-tuning seed, so its trivial "
                         f"baseline differs between seeds ({', '.join(f'seed {s}: {fmt(v)}' for s, v in sorted(seeds.items()))}); "
                         f"the floor table shows their range and the linear reference was fitted and scored on "
                         + (f"seed {match[0]}'s inputs ({fmt(float(base))})." if match else
                            f"inputs whose baseline is {fmt(float(base))}, which matches no seed."))
        lines.append(f"| {task} | {r.get('metric')} | {fmt(base)} | {fmt(lin)} | {r.get('n_test', '?')} | "
                     f"{r.get('model', '')} |")
    lines.append(":::")
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    return lines


def reproduction_markdown(root: Path | None = None) -> list[str]:
    """How far a re-run reproduces the committed numbers: the measured comparison of this run with the one it
    replaced (``reproduction.json`` beside the results, written by ``scripts/reproduction_summary.py``), else the
    earlier session's single-point measurement, and the command to compare a re-run."""
    path = None if root is None else Path(root).parent / "reproduction.json"
    lines = ["", "**Reproduction.** The `cpu` run is deterministic on one machine: the same point re-run there into "
             "an empty folder gives the same scores. On another machine of the same kind it is not bit-identical: "
             "float reductions differ in their last digits, and fine-tuning amplifies that."]
    if path is not None and path.is_file():
        doc = strict_json(path)
        lines += [f" This run against the run it replaced (commit `{doc['old']['git_commit']}`, "
                  f"{str(doc['old']['created'])[:10]}, made in another session on a machine of the same kind with the same "
                  "software versions), "
                  f"over the {doc['n_points']} points both have (`scripts/reproduction_summary.py`):", "",
                  ":::{table} Absolute differences between two runs of the same points: the primary test score per "
                  "task (all initialisations), RPG (percentage points) and the embedding MMD².",
                  ":name: tab-run-reproduction", "", "| quantity | values | median | largest |", "|---|---:|---:|---:|"]
        lines += [f"| {q} | {r['n']} | {r['median_abs_diff']:.4g} | {r['max_abs_diff']:.4g} |"
                  for q, r in doc["quantities"].items()] + [":::"]
    else:
        lines += [" An earlier session re-ran classification, ProFound, seed 0 on another 2-core machine. These "
                  "numbers were measured then and are not computed by this page:", "",
                  ":::{table} Reproduction of one point (classification, ProFound, seed 0) on another machine of the "
                  "same kind, measured in an earlier session.", ":name: tab-run-reproduction", "",
                  "| quantity | committed | re-run |", "|---|---:|---:|"]
        lines += [f"| {q} | {a:.4f} | {b:.4f} |" for q, a, b in REPRODUCTION] + [":::"]
    lines += ["", "To compare your re-run with the committed files within a tolerance (timings and provenance are "
              "ignored; the differing keys beyond tolerance are listed and the exit status is non-zero):", "",
              "```bash", COMPARE_COMMAND, "```"]
    return lines
