"""The experiment-design criteria (scripts/check_design.py) against hand-built trees: each rule passes, fails and
is reported missing where the run lacks its inputs; the degenerate LogME value is the constant-target evidence."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from transferlimits.reporting.design_report import (DEGENERATE_LOGME, Criterion, criteria_markdown, design_criteria,
                                                    load_tree)
from transferlimits.reporting.run_page import run_page_markdown

TASKS = ("classification", "segmentation", "super_resolution", "distortion_correction", "modality_translation")


def _point(task, model, seed, kind, pre, scr, share=0.8, logme_value=-0.9, total_s=48.0):
    return {"task": task, "model": model, "seed": seed, "objective": kind, "objective_name": kind,
            "provenance": {"timings": {"total_s": total_s, "finetune_s": {"pretrained": 0.5 * total_s},
                                       "measure_s": 0.25 * total_s}},
            "task_spec": {"primary_metric": "score", "higher_is_better": True},
            "runs": {"pretrained": {"test": {"score": pre}}, "scratch": {"test": {"score": scr}}},
            "encoder_share": {"pretrained": share}, "alignment": {"pretrained": {"mmd2": 0.1}},
            "transferability": {"logme": logme_value}}


def _tree(tmp_path, positive_gain=0.3, share=0.8, degenerate=False, plateau=-0.01, wall=3000.0, point_s=48.0):
    rng = np.random.default_rng(0)
    root = tmp_path / "results"
    for task in TASKS:
        for model in ("a", "b"):
            for seed in range(3):
                scr = 30 + rng.standard_normal() * 0.01
                pts = {"native": _point(task, model, seed, "native", scr + 0.01 * rng.standard_normal(), scr, share,
                                        DEGENERATE_LOGME if degenerate and task == "super_resolution" else -0.9),
                       "positive": _point(task, model, seed, "positive", scr + positive_gain + 0.01 * seed, scr),
                       "random": _point(task, model, seed, "random", scr + 0.01 * rng.standard_normal(), scr),
                       "transfusion": _point(task, model, seed, "transfusion", scr + 0.01 * rng.standard_normal(),
                                             scr)}
                for kind, m in pts.items():
                    m["provenance"]["timings"]["total_s"] = point_s
                    d = root / "runs" / f"{task}__{model}__seed{seed}__{kind}"
                    d.mkdir(parents=True)
                    (d / "metrics.json").write_text(json.dumps(m))
    for name in ("a__x", "b__y"):
        (root / "pretrain" / name).mkdir(parents=True)
        (root / "pretrain" / name / "pretrain.json").write_text(json.dumps(
            {"model": name[0], "objective": name[3], "loss_change_last20": plateau if name == "b__y" else 0.0}))
    (root / "linear_references.json").write_text(json.dumps({"tasks": {"super_resolution": {"linear_filter": 29.9}}}))
    # 120 points x 48 s = 5760 of the 6000 core-seconds held: 4 % overhead
    (root / "grid.json").write_text(json.dumps({"wall_s": wall, "invocations": [{"cores": 2, "wall_s": 3000.0}]}))
    return root


def _status(rows):
    return {(r.name, r.scope): r.status for r in rows}


def test_the_degenerate_logme_is_the_value_the_committed_run_repeated():
    # five of six continuous points of the first committed cpu run scored exactly -1.41894 (a constant target)
    assert DEGENERATE_LOGME == pytest.approx(-1.4189385332514952, abs=1e-9)
    assert DEGENERATE_LOGME == pytest.approx(-0.5 * (math.log(2 * math.pi) + 1), abs=1e-12)


def test_a_tree_that_meets_every_rule_passes(tmp_path):
    rows = design_criteria(*load_tree(_tree(tmp_path)))
    assert all(r.status == "pass" for r in rows), [r for r in rows if r.status != "pass"]
    assert {r.scope for r in rows} == {"a", "b", "run"}


@pytest.mark.parametrize("kwargs,name,scope", [
    ({"positive_gain": 0.0}, "positive control detected", "a"),
    ({"share": 0.2}, "encoder share", "b"),
    ({"degenerate": True}, "LogME informative", "run"),
    ({"plateau": -0.104}, "pre-training plateaued", "run"),
    ({"wall": 91 * 60.0}, "wall", "run"),
    ({"point_s": 30.0}, "overhead", "run"),  # 3600 of 6000 core-seconds timed: 40 % overhead
])
def test_each_rule_fails_on_its_own_defect(tmp_path, kwargs, name, scope):
    status = _status(design_criteria(*load_tree(_tree(tmp_path, **kwargs))))
    assert status[(name, scope)] == "fail"
    assert sum(s == "fail" for s in status.values()) <= 2  # only the rule concerned (both models where per model)


def test_below_the_linear_reference_fails_and_a_run_without_controls_is_missing(tmp_path):
    root = _tree(tmp_path)
    (root / "linear_references.json").write_text(json.dumps({"tasks": {"super_resolution": {"linear_filter": 30.1}}}))
    for d in root.glob("runs/*__positive"):
        (d / "metrics.json").unlink()
    status = _status(design_criteria(*load_tree(root)))
    assert status[("above the linear reference", "a")] == "fail"  # scratch ~30.0 < 30.1
    assert status[("positive control detected", "a")] == "missing"
    assert status[("within-task points", "run")] == "fail"  # 10 pairs x 3 remaining kinds = 30 < 40


def test_the_run_page_opens_with_the_design_check_as_a_numbered_table(tmp_path):
    root = _tree(tmp_path, positive_gain=0.0)
    rows = design_criteria(*load_tree(root))
    lines = criteria_markdown(rows)
    body = [ln for ln in lines if ln.startswith("| ") and not ln.startswith("| criterion")]
    assert len(body) == len(rows) and ":name: tab-run-design" in lines
    n_fail = sum(r.status == "fail" for r in rows)
    assert n_fail >= 2 and f"{len(rows) - n_fail} of {len(rows)} criteria pass, {n_fail} fail" in "\n".join(lines)
    assert "| positive control detected | a | detected on 0 of 5 tasks |" in "\n".join(lines)
    odd = criteria_markdown([Criterion("x", "run", "a | b", "r", "missing")])
    assert "| x | run | a \\| b | r | **missing** |" in odd  # a pipe in a value does not split the cell
    assert "no result files" in " ".join(criteria_markdown([]))
    page = run_page_markdown(root, "cpu", explanations=tmp_path / "none.yml")
    assert page.index("Can this run see the encoder?") < page.index("Scientific floor")


def test_the_overhead_counts_pre_trainings_and_positive_controls_as_work_and_is_missing_without_cores(tmp_path):
    root = _tree(tmp_path, point_s=40.0)  # 4800 of 6000 timed: 20 %
    assert _status(design_criteria(*load_tree(root)))[("overhead", "run")] == "fail"
    (root / "pretrain" / "a__x" / "pretrain.json").write_text(json.dumps(
        {"model": "a", "objective": "x", "loss_change_last20": 0.0, "wall_seconds": 400.0}))
    (root / "pretrain" / "a__positive__segmentation").mkdir()
    (root / "pretrain" / "a__positive__segmentation" / "positive.json").write_text(json.dumps({"train_seconds": 200.0}))
    row = next(r for r in design_criteria(*load_tree(root)) if r.name == "overhead")
    assert row.status == "pass" and row.value.startswith("10.0 % (10.0 of 100.0 core-min")  # 600 s more timed
    (root / "grid.json").write_text(json.dumps({"wall_s": 3000.0, "invocations": [{"wall_s": 3000.0}]}))
    assert _status(design_criteria(*load_tree(root)))[("overhead", "run")] == "missing"


def test_the_wall_names_the_slowest_machine_peak_the_grid_recorded(tmp_path):
    root = _tree(tmp_path)
    wall = next(r for r in design_criteria(*load_tree(root)) if r.name == "wall")
    assert wall.value == "50.0 min"  # a run recorded before the peak was: the wall alone
    (root / "grid.json").write_text(json.dumps({"wall_s": 3000.0, "invocations": [
        {"wall_s": 1000.0, "sgemm_peak_gflops_1thread": 70.2},
        {"wall_s": 2000.0, "sgemm_peak_gflops_1thread": 34.0},
        {"wall_s": 5.0, "render_only": True, "sgemm_peak_gflops_1thread": 1.0}]}))  # renders compute nothing
    wall = next(r for r in design_criteria(*load_tree(root)) if r.name == "wall")
    assert wall.value == "50.0 min on a machine of 34 GFLOP/s fp32 matmul per thread" and wall.status == "pass"
