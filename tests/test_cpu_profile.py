"""The ``cpu`` profile's configuration meets the study's floor, and ``scripts/check_cpu_profile.py`` catches failures.

Configuration facts: >= 100 test patients, three seeds, the 2x2 control on all five tasks, full-resolution dense
heads, encoder sizes the adapters know, and pair-mining rules under which a lesion of clinically typical size
yields positive pairs on both backbones' pair grids at the profile's sizes (ConvNeXt stride-4 cells: from 12 mm
across; ViT 12 mm token cells: from 16 mm, placed on a cell corner, the worst case).
The check script runs on a synthetic results tree: a passing tree exits 0, each kind of failure is named.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from transferlimits import paths
from transferlimits.config import TASKS, get_profile
from transferlimits.models.pair_mining import balanced_pair_count, cancer_cell_counts
from transferlimits.models.registry import get_model
from transferlimits.reporting.floor import grid_wall_s

CPU = get_profile("cpu")


def _check_module():
    spec = importlib.util.spec_from_file_location("check_cpu_profile", paths.ROOT / "scripts/check_cpu_profile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sizes_and_grid():
    assert CPU.splits.test >= 100
    assert CPU.test_cspca_frac >= 0.5  # segmentation's Dice counts test cases with a lesion
    assert len(set(CPU.seeds)) == 3
    assert set(CPU.control_tasks) == set(TASKS) and len(TASKS) == 5
    assert CPU.finetune.full_res_skip and CPU.finetune.residual
    for model, size in CPU.encoder_sizes.items():
        assert size in get_model(model).sizes
    assert all(s % 16 == 0 for s in CPU.grid.shape[1:]) and CPU.slice_size % 14 == 0


def test_task_recipes_are_per_task_and_keep_the_shared_switches():
    """A task's recipe changes its budget (batch, lr, epochs), never the heads: every task keeps the full-resolution
    heads and decoder width, and the tasks without changes get ``finetune`` itself."""
    assert set(CPU.task_finetune) <= set(TASKS)
    for task in TASKS:
        rec = CPU.finetune_for(task)
        assert (rec.full_res_skip, rec.residual, rec.light_decoder, rec.decoder_width) == (
            True, True, True, CPU.finetune.decoder_width)
        assert rec == CPU.finetune or task in CPU.task_finetune
    assert CPU.finetune_for("segmentation").epochs > CPU.finetune.epochs


@pytest.mark.parametrize("bad,match", [({"segmentation": {"bogus": 1}}, "segmentation.*bogus"),
                                       ({"segmentation": {"epochs": 0}}, "segmentation.*epochs"),
                                       ({"segmentation": 3}, "must be a mapping"),
                                       ([1], "task_finetune must map")])
def test_bad_task_recipes_name_the_task_and_field(bad, match):
    with pytest.raises(ValueError, match=match):
        get_profile("cpu", task_finetune=bad)


def test_a_notebooks_epochs_parameter_overrides_only_its_task():
    prof = CPU.with_task_finetune("segmentation", epochs=2)
    assert prof.finetune_for("segmentation").epochs == 2
    assert prof.finetune_for("segmentation").batch_size == CPU.finetune_for("segmentation").batch_size
    assert prof.finetune_for("classification") == CPU.finetune_for("classification")


def test_smoke_numbers_unchanged_by_new_switches():
    smoke = get_profile("smoke")
    assert not smoke.finetune.full_res_skip and not smoke.finetune.residual
    assert smoke.finetune.channels_last_stages == 0 and smoke.pretrain.channels_last_stages == 0


def _disc_labels(side: int, px_mm: float, diameter_mm: float) -> torch.Tensor:
    """[side, side] 4-class map: a csPCa disc (class 3) of ``diameter_mm`` in the centre, gland elsewhere."""
    yy, xx = np.mgrid[:side, :side]
    c = (side - 1) / 2
    r = np.hypot((yy - c) * px_mm, (xx - c) * px_mm)
    return torch.from_numpy(np.where(r <= diameter_mm / 2, 3, 1).astype(np.int64))


@pytest.mark.parametrize("diameter_mm", [16.0, 20.0])
def test_vit_pairs_exist_for_typical_lesion(diameter_mm):
    """A disc centred on a cell corner (the worst placement) of >= 16 mm gives ViT pairs (12 mm tokens here)."""
    tokens = CPU.slice_size // 14
    side = 8 * tokens  # the ViT head's label grid: 8 px per token side
    px_mm = CPU.grid.shape[2] * CPU.grid.spacing[2] / side  # the slice covers the grid's in-plane extent
    counts = cancer_cell_counts(_disc_labels(side, px_mm, diameter_mm), 8)
    assert balanced_pair_count(counts, 64, CPU.pretrain.anchor_frac, CPU.pretrain.neg_frac) > 0


@pytest.mark.parametrize("diameter_mm", [12.0, 16.0])
def test_convnext_pairs_exist_for_typical_lesion(diameter_mm):
    d, h, w = CPU.grid.shape
    sz, sy, sx = CPU.grid.spacing
    zz, yy, xx = np.mgrid[:d, :h, :w]
    r = np.sqrt(((zz - (d - 1) / 2) * sz) ** 2 + ((yy - (h - 1) / 2) * sy) ** 2 + ((xx - (w - 1) / 2) * sx) ** 2)
    labels = torch.from_numpy(np.where(r <= diameter_mm / 2, 3, 1).astype(np.int64))
    counts = cancer_cell_counts(labels, 4)  # ConvNeXtContrastive(pair_stage=0): stride-4 cells
    assert balanced_pair_count(counts, 64, CPU.pretrain.anchor_frac, CPU.pretrain.neg_frac) > 0


def test_upstream_rule_finds_no_pairs_at_cpu_size():
    """Why the anchor rule is lowered: at 62/64 a 12 mm lesion gives no ViT pair on the cpu slice grid."""
    side = 8 * (CPU.slice_size // 14)
    px_mm = CPU.grid.shape[2] * CPU.grid.spacing[2] / side
    counts = cancer_cell_counts(_disc_labels(side, px_mm, 12.0), 8)
    assert balanced_pair_count(counts, 64, 62 / 64, 2 / 64) == 0


# --- scripts/check_cpu_profile.py on a synthetic tree ------------------------------------------------------------
_SPECS = {"super_resolution": ("psnr", True, "identity", 30.0), "distortion_correction": ("psnr", True, "identity", 26.0),
          "modality_translation": ("mae_gland", False, "train_median", 0.2),
          "classification": ("auroc_ge4", True, "class_prior", 0.5), "segmentation": ("dice", True, "empty_mask", 0.0)}
_GOOD = {"super_resolution": 31.5, "distortion_correction": 27.2, "modality_translation": 0.15,
         "classification": 0.7, "segmentation": 0.3}


def _write_tree(root: Path, values: dict[str, float], active: float = 0.8, wall_s: float = 3000.0) -> None:
    for task, (metric, higher, base_name, base) in _SPECS.items():
        for model in ("profound", "provicnet"):
            d = root / "runs" / f"{task}__{model}__seed0"
            d.mkdir(parents=True)
            runs = {init: {"test": {metric: values[task]}} for init in ("pretrained", "scratch", "linear_probe")}
            (d / "metrics.json").write_text(json.dumps({
                "task": task, "model": model, "seed": 0, "objective": "native", "objective_name": "native",
                "task_spec": {"primary_metric": metric, "higher_is_better": higher},
                "baselines": {base_name: {metric: base}}, "runs": runs}))
    for model, objective in (("profound", "contrastive"), ("provicnet", "contrastive"), ("profound", "fcmae")):
        d = root / "pretrain" / f"{model}__{objective}"
        d.mkdir(parents=True)
        (d / "pretrain.json").write_text(json.dumps({"contrastive_active_fraction": active}))
    (root / "grid.json").write_text(json.dumps({"wall_s": wall_s}))


def test_check_passes_good_tree(tmp_path):
    _write_tree(tmp_path, _GOOD)
    assert _check_module().main(["--results", str(tmp_path), "--explanations", str(tmp_path / "none.yml")]) == 0


@pytest.mark.parametrize("task, value, needle", [
    ("super_resolution", 30.5, "super_resolution__"),  # +0.5 dB over identity: below the 1 dB margin
    ("modality_translation", 0.25, "modality_translation__"),  # worse than the train median
    ("classification", 0.55, "classification__"),  # AUROC below 0.6
    ("segmentation", 0.0, "segmentation__"),  # not above the empty mask
])
def test_check_names_failing_points(tmp_path, capsys, task, value, needle):
    _write_tree(tmp_path, {**_GOOD, task: value})
    assert _check_module().main(["--results", str(tmp_path), "--explanations", str(tmp_path / "none.yml")]) == 1
    out = capsys.readouterr().out
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 4 and all(needle in line for line in fails)  # 2 models x (pretrained, scratch)


@pytest.mark.parametrize("task, value, above, passes", [
    ("super_resolution", 30.5, True, False),  # above the identity, short of the 1 dB margin
    ("super_resolution", 31.5, True, True),
    ("super_resolution", 30.0, False, False),  # equal to the identity: not above it
    ("modality_translation", 0.19, True, True),  # lower is better: below the train median
    ("modality_translation", 0.21, False, False),
    ("classification", 0.55, True, False),  # above the prior's 0.5, below the 0.6 floor
])
def test_floor_rows_tell_above_the_baseline_from_meeting_the_margin(task, value, above, passes):
    from transferlimits.reporting.floor import floor_rows
    metric, higher, base_name, base = _SPECS[task]
    m = {"task": task, "model": "profound", "task_spec": {"primary_metric": metric, "higher_is_better": higher},
         "baselines": {base_name: {metric: base}}, "runs": {"pretrained": {"test": {metric: value}}}}
    row = floor_rows(m, "x")[0]
    assert (row.above, row.passes) == (above, passes)


def test_check_flags_pairs_and_wall(tmp_path, capsys):
    _write_tree(tmp_path, _GOOD, active=0.3, wall_s=95 * 60)
    assert _check_module().main(["--results", str(tmp_path), "--explanations", str(tmp_path / "none.yml")]) == 1
    out = capsys.readouterr().out
    assert out.count("contrastive_active_fraction") == 2 and "whole-grid wall" in out


def test_check_rejects_nan_json(tmp_path, capsys):
    _write_tree(tmp_path, _GOOD)
    path = tmp_path / "runs" / "segmentation__profound__seed0" / "metrics.json"
    path.write_text(path.read_text().replace("0.3", "NaN", 1))
    assert _check_module().main(["--results", str(tmp_path), "--explanations", str(tmp_path / "none.yml")]) == 1
    assert "NaN" in capsys.readouterr().out


def test_explained_failures_pass_and_are_named(tmp_path, capsys):
    """An explanation entry turns a failing run into EXPLAINED (exit 0); it never hides another task's failure."""
    _write_tree(tmp_path, {**_GOOD, "super_resolution": 30.5, "classification": 0.55})
    notes = tmp_path / "notes.yml"
    notes.write_text("- task: super_resolution\n  reason: the margin asks for more than a linear filter gets\n")
    assert _check_module().main(["--results", str(tmp_path), "--explanations", str(notes)]) == 1
    out = capsys.readouterr().out
    assert out.count("EXPLAINED runs/super_resolution") == 4 and out.count("FAIL runs/classification") == 4
    notes.write_text(notes.read_text() + "- task: classification\n  model: profound\n  reason: noisy\n"
                     "- task: classification\n  model: provicnet\n  reason: noisy\n")
    assert _check_module().main(["--results", str(tmp_path), "--explanations", str(notes)]) == 0
    notes.write_text("- task: classification\n")  # no reason
    with pytest.raises(ValueError, match="notes.yml: entry 0"):
        _check_module().main(["--results", str(tmp_path), "--explanations", str(notes)])


COMMITTED = paths.BOOK / "generated" / "cpu" / "results"


@pytest.mark.skipif(not (COMMITTED / "grid.json").is_file(), reason="no committed cpu run in this checkout")
def test_committed_cpu_run_meets_its_floor_or_explains_it(capsys):
    """The committed run is the profile as defined: every (task, model, seed) with the native and swapped objectives
    and the profile's encoder controls; every run above its baseline floor or explained in
    book/floor_explanations.yml, the contrastive term active in >= half the steps of both backbones, the whole grid
    <= 90 min or explained there (the design check, scripts/check_design.py, reports the wall time by its own rule)."""
    assert _check_module().main(["--results", str(COMMITTED)]) == 0, capsys.readouterr().out
    assert grid_wall_s(COMMITTED) is not None, "the committed run has no recorded wall time"
    metrics = [json.loads(p.read_text()) for p in COMMITTED.rglob("metrics.json")]
    cpu = get_profile("cpu")
    kinds = {"native", "swapped", *cpu.control_inits}
    assert {m["objective"] for m in metrics} == kinds and {m["profile"] for m in metrics} == {"cpu"}
    assert len(metrics) == len(TASKS) * len(cpu.models) * len(kinds) * len(cpu.seeds)
    assert {m["seed"] for m in metrics} == set(cpu.seeds)
    assert all("baselines" in m and "rpg_defined" in m and "alignment" in m for m in metrics)


def test_a_wall_time_over_budget_fails_unless_a_rule_entry_explains_it(tmp_path, capsys):
    """The run-level wall rule fails the check; an entry {rule: wall, reason} explains it (the check passes and
    names it, the run page prints the reason); a rule entry with an unknown rule or no reason is an error."""
    from transferlimits.reporting.run_page import run_page_markdown

    _write_tree(tmp_path, _GOOD, wall_s=100 * 60.0)
    notes = tmp_path / "notes.yml"
    notes.write_text("- task: nothing\n  reason: unused\n")
    assert _check_module().main(["--results", str(tmp_path), "--explanations", str(notes)]) == 1
    assert "FAIL grid.json: whole-grid wall 6000.0 s, needs <= 5400 s" in capsys.readouterr().out
    notes.write_text("- rule: wall\n  reason: the controls cost more than the budget holds\n")
    assert _check_module().main(["--results", str(tmp_path), "--explanations", str(notes)]) == 0
    assert "EXPLAINED grid.json: whole-grid wall 6000.0 s" in capsys.readouterr().out
    page = run_page_markdown(tmp_path, "cpu", explanations=notes)
    assert "**Rule `wall` not met, with a stated reason**" in page and "cost more than the budget holds" in page
    for bad in ("- rule: speed\n  reason: x\n", "- rule: wall\n", "- rule: wall\n  task: x\n  reason: y\n"):
        notes.write_text(bad)
        with pytest.raises(ValueError, match="notes.yml: entry 0"):
            _check_module().main(["--results", str(tmp_path), "--explanations", str(notes)])
