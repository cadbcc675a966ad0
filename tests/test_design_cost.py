"""benchmarks/design_cost.py: core-seconds per part of the design from a results tree, projected to the whole
grid, and what each cut removes — against hand sums on a tiny tree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _scripts import load_script


def _cli():
    return load_script("benchmarks/design_cost.py", "bench_design_cost")


def _point(root: Path, task: str, model: str, seed: int, kind: str, ft: dict, measure: float, total: float):
    d = root / "runs" / f"{task}__{model}__seed{seed}__{kind}"
    d.mkdir(parents=True)
    m = {"task": task, "model": model, "seed": seed, "objective": kind,
         "provenance": {"timings": {"total_s": total, "finetune_s": ft, "measure_s": measure}}}
    (d / "metrics.json").write_text(json.dumps(m))


def test_projection_and_cuts_against_hand_sums(tmp_path, capsys):
    root = tmp_path / "cpu"
    prof = {"profile": {"tasks": ["a", "b"], "encoder_sizes": {"m1": "cpu", "m2": "cpu"}, "seeds": [0, 1],
                        "control_inits": ["random"]}}
    root.mkdir()
    (root / "profile.json").write_text(json.dumps(prof))
    # task a on m1 fully measured (2 seeds); task a on m2 only its native point, seed 0; task b on neither
    for s in (0, 1):
        _point(root, "a", "m1", s, "native", {"pretrained": 10, "scratch": 10, "linear_probe": 5, "ablated": 5}, 6, 40)
        _point(root, "a", "m1", s, "swapped", {"pretrained": 10, "linear_probe": 5}, 6, 24)
        _point(root, "a", "m1", s, "random", {"pretrained": 10, "linear_probe": 5}, 6, 24)
    _point(root, "a", "m2", 0, "native", {"pretrained": 20, "scratch": 20, "linear_probe": 10, "ablated": 10}, 12, 80)
    (root / "pretrain" / "m1__x").mkdir(parents=True)
    (root / "pretrain" / "m1__x" / "pretrain.json").write_text(json.dumps({"wall_seconds": 60}))
    out = tmp_path / "cost.json"
    assert _cli().main(["--results", str(root), "--cores", "2", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    # a/m1: 2 seeds x (40 + 24 + 24) = 176; a/m2: native 80 and, unmeasured, swapped and random at its native
    # point without scratch and ablated (80 - 20 - 10 = 50), x 2 seeds = 360; task b on no model: the mean
    # measured pair (176 + 360) / 2 = 268 each; + the pre-training 60
    assert data["projected_wall_s"]["as run"] == pytest.approx((176 + 360 + 268 * 2 + 60) / 2)
    # no_random: a/m1 loses 2 x 24 -> 128; a/m2 (80 + 50) x 2 = 260; mean (128 + 260) / 2 = 194
    assert data["projected_wall_s"]["no_random"] == pytest.approx((128 + 260 + 194 * 2 + 60) / 2)
    # no probe on controls: random keeps no probe: a/m1 176 - 2 x 5 = 166; a/m2 (80 + 50 + 40) x 2 = 340
    assert data["projected_wall_s"]["no_probe_on_controls"] == pytest.approx((166 + 340 + 253 * 2 + 60) / 2)
    text = capsys.readouterr().out
    assert "a / m1: 2.9 core-min" in text and "pretrain:m1__x 1.0" in text


def test_projection_at_more_seeds_scales_the_points_only(tmp_path):
    root = tmp_path / "cpu"
    root.mkdir()
    (root / "profile.json").write_text(json.dumps({"profile": {"tasks": ["a"], "encoder_sizes": {"m1": "cpu"},
                                                               "seeds": [0, 1], "control_inits": ["random"]}}))
    for s in (0, 1):
        _point(root, "a", "m1", s, "native", {"pretrained": 10, "scratch": 10, "linear_probe": 5, "ablated": 5}, 6, 40)
        _point(root, "a", "m1", s, "random", {"pretrained": 10, "linear_probe": 5}, 6, 24)
    (root / "pretrain" / "m1__x").mkdir(parents=True)
    (root / "pretrain" / "m1__x" / "pretrain.json").write_text(json.dumps({"wall_seconds": 60}))
    out = tmp_path / "cost.json"
    assert _cli().main(["--results", str(root), "--cores", "2", "--seeds", "5", "--json", str(out)]) == 0
    walls = json.loads(out.read_text())["projected_wall_s"]
    # per seed: native 40 + random 24 + swapped (unmeasured: costs what random does) 24 = 88; without the probe
    # on the control: 40 + 24 + 19 = 83; the pre-training's 60 does not scale with the seeds
    assert walls["as run"] == pytest.approx((88 * 2 + 60) / 2)
    assert walls["as run @ 5 seeds"] == pytest.approx((88 * 5 + 60) / 2)
    assert walls["no_probe_on_controls @ 5 seeds"] == pytest.approx((83 * 5 + 60) / 2)
    with pytest.raises(SystemExit):
        _cli().main(["--results", str(root), "--seeds", "0"])


def test_an_empty_tree_is_named(tmp_path):
    with pytest.raises(SystemExit, match="no runs"):
        _cli().main(["--results", str(tmp_path)])


def test_positive_controls_not_trained_yet_are_projected_from_their_models_trained_ones(tmp_path):
    root = tmp_path / "cpu"
    root.mkdir()
    (root / "profile.json").write_text(json.dumps({"profile": {"tasks": ["a", "b"], "encoder_sizes": {"m1": "cpu",
                                                               "m2": "cpu"}, "seeds": [0], "control_inits": ["positive"]}}))
    for m in ("m1", "m2"):
        _point(root, "a", m, 0, "native", {"pretrained": 10, "scratch": 10}, 0, 20)
    for name, sec in (("m1__positive__a", 100), ("m2__positive__a", 40), ("m2__positive__b", 60)):
        (root / "pretrain" / name).mkdir(parents=True)
        (root / "pretrain" / name / "positive.json").write_text(json.dumps({"train_seconds": sec}))
    out = tmp_path / "cost.json"
    assert _cli().main(["--results", str(root), "--cores", "1", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["positive_estimated"] == {"n": 1, "core_s": 100.0}  # m1 on task b: m1's one trained (not m2's)
    # points: native 20 + swapped and positive (each the native point without its scratch run: 10) per pair, 4
    # pairs (b from a); + the 200 trained + the 100 estimated
    assert data["projected_wall_s"]["as run"] == pytest.approx(4 * 40 + 200 + 100)
