"""One study point end to end -> schema-valid metrics.json, for every task and both encoders (tiny sizes).

The cohort is replaced by tiny stand-in datasets (``_finetune_data``, passed to ``run_point`` as its
``load_data`` collaborator) and the pre-trained encoder by a
randomly initialised one saved in the ``encoder.pt`` format of ``training.pretrain``, so these tests do
not depend on the geometry pack or on a pre-training run; the last test uses the real cohort when the
geometry pack is present.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from transferlimits import paths, study
from transferlimits.config import TASKS, get_profile
from transferlimits.study import runs as study_runs
from transferlimits.tasks import get_kind, get_task
from transferlimits.jsonsafe import loads_strict
from transferlimits.runtime import atomic_save_torch
from transferlimits.metrics.transfer import rpg

from _finetune_data import tiny_splits

torch.set_num_threads(1)


GRID, SLICE = (16, 16, 16), 14  # the smallest sizes both encoders accept (stride 16; one 14-px patch)


def tiny_profile():
    return get_profile(
        "smoke", grid={"shape": GRID, "spacing": (3.0, 6.0, 6.0)}, slice_size=SLICE,
        encoder_sizes={"profound": "test", "provicnet": "test"},
        splits={"pretrain": 4, "train": 8, "val": 4, "test": 6},  # matches tiny_splits
        finetune={"epochs": 2, "batch_size": 4},
        measure={"n_permutations": 19, "n_bootstrap": 5, "token_samples": 24},
    )


def fake_load_data(profile, task, model, seed):
    spec = get_task(task)
    return spec, tiny_splits(spec.kind, model, real=not spec.uses_labels, grid=GRID, slice_size=SLICE)


def run_point(task, model, prof, seed=0, objective="native", out_dir=None, pretrained=None, reuse_scratch_from=None,
              progress=True, finetune_all=study_runs.finetune_all, load_data=fake_load_data):
    """``study.run_point`` on the stand-in data, its arguments spelled out (key, files, collaborators)."""
    key = study.PointKey(task, model, seed, objective)
    files = study.PointFiles(out_dir, pretrained, reuse_scratch_from)
    return study.run_point(key, prof, files, progress=progress,
                           collaborators=study.Collaborators(load_data, finetune_all))


@pytest.fixture()
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path))
    prof = tiny_profile()
    encoders = {}
    for model in ("profound", "provicnet"):
        enc = study_runs.scratch_encoder(prof, model, seed=123)
        path = tmp_path / f"{model}_encoder.pt"
        atomic_save_torch(path, {"state_dict": enc.state_dict(), "model": model, "size": "test",
                                 "objective": "test", "img_size": SLICE if model == "provicnet" else None})
        encoders[model] = path
    return prof, encoders, tmp_path


#: the baseline a run must beat, per kind, on the stand-in data (no ``identity_input``: no identity baseline)
EXPECTED_BASELINE = {"classification": "class_prior", "segmentation": "empty_mask", "regression": "train_median",
                     "scalar_regression": "train_median"}


def _check_outcome(d, spec, prof):
    """Baselines, learned flags, RPG validity and lr groups recomputed independently from the file."""
    base = d["baseline_primary"]
    assert base["name"] == EXPECTED_BASELINE[spec.kind] and base["metric"] == spec.primary_metric
    assert base["value"] == d["baselines"][base["name"]][spec.primary_metric]
    sign = 1 if spec.higher_is_better else -1
    for init, run in d["runs"].items():
        margin = sign * (run["test"][spec.primary_metric] - base["value"])
        assert d["learned"][init] == {"beats_baseline": margin > 0, "margin": pytest.approx(margin)}
    assert d["rpg_defined"] == d["learned"]["scratch"]["beats_baseline"]
    if d["rpg_defined"]:
        pre, scr = (d["runs"][i]["test"][spec.primary_metric] for i in ("pretrained", "scratch"))
        assert d["rpg_primary"] == pytest.approx(rpg(pre, scr, spec.higher_is_better))
        assert d["rpg_undefined_reason"] is None
    else:
        assert d["rpg_primary"] is None and "baseline" in d["rpg_undefined_reason"]
        assert d["undefined"]["rpg_primary"] == d["rpg_undefined_reason"]
    assert all(-1 <= g <= 1 for g in d["normalised_gain"].values()) and "NG =" in d["normalised_gain_formula"]
    lr = prof.finetune.lr
    scratch_lrs = [g["lr"] for g in d["lr_groups"]["scratch"]]
    pre_enc = [g["lr"] for g in d["lr_groups"]["pretrained"] if g["name"].startswith("encoder/")]
    assert scratch_lrs == pytest.approx([lr] * len(scratch_lrs))  # scratch: every parameter at the head's lr
    assert pre_enc and min(pre_enc) < lr  # pretrained: the reduced backbone lr
    assert all(g["name"].startswith("head/") for g in d["lr_groups"]["linear_probe"])  # frozen encoder
    assert d["transferability"]["target_type"] in ("class", "binary", "continuous")
    assert d["transferability"]["standardised"] == (d["transferability"]["target_type"] == "continuous")
    trans = d["transferability"]  # dense kinds: patch rows of the train images (images are the groups)
    assert trans["unit"] == get_kind(spec.kind).transfer_unit and trans["n_groups"] == d["n_cases"]["train"]
    assert trans["n"] == trans["n_groups"] * trans.get("rows_per_image", 1)  # case: one row per image
    assert trans["logme"] is not None  # the probe may not fit 8 cases (2 per class < 3 folds): then a note
    assert trans["linear_probe"].get("folds", "by image") == "by image" and len(trans["linear_probe"]) > 0


def _check_alignment(d):
    """Paired statistic with its bandwidth; token entries clustered by image."""
    emb = d["alignment"]["pretrained"]["pooled"]["embedding"]
    assert emb["n_groups"] == emb["n"] == d["n_cases"]["test"] and emb["bandwidth"] > 0
    assert np.isfinite(emb["mmd2"]) and 0 < emb["p_value"] <= 1 and emb["ci"][0] <= emb["ci"][1]
    assert {"1.0", "sum"} <= set(emb["mmd2_multi"]) and emb["mmd2_multi"]["1.0"] == pytest.approx(emb["mmd2"])
    for entry in d["alignment"]["scratch"]["tokens"].values():
        assert entry["n"] > entry["n_groups"] and entry["n_groups"] <= d["n_cases"]["test"]


def _check_calibration(d, out):
    """The point's calibration record and features.npz: on seed 0 the calibration set is the test split, so its
    value is the embedding entry's multi-scale sum at the same σ; both fine-tuned encoders moved."""
    emb, block = d["alignment"]["pretrained"]["pooled"]["embedding"], d["alignment"]["pretrained"]
    cal = block["calibration"]
    assert cal["value"] == pytest.approx(emb["mmd2_multi"]["sum"], rel=1e-9, abs=1e-12)
    assert cal["value_single"] == pytest.approx(emb["mmd2"], rel=1e-9, abs=1e-12)
    assert cal["bandwidth"] == pytest.approx(emb["bandwidth"]) and np.isfinite(cal["ceiling"])
    assert block["weight_change"] > 0 and d["alignment"]["scratch"]["weight_change"] > 0
    with np.load(out / "features.npz", allow_pickle=False) as z:
        for name in ("pretrained", "random_init", "finetuned_pretrained", "finetuned_scratch"):
            assert z[name].shape == (d["n_cases"]["test"], emb["dim"]) and z[name].dtype == np.float32
        assert float(z["sigma"]) == pytest.approx(cal["bandwidth"]) and len(z["case_ids"]) == d["n_cases"]["test"]


@pytest.mark.parametrize("model", ["profound", "provicnet"])
@pytest.mark.parametrize("task", TASKS)
def test_run_point_writes_valid_metrics(env, task, model):
    prof, encoders, tmp = env
    out = tmp / "runs" / f"{task}__{model}"
    d = run_point(task, model, prof, seed=0, out_dir=out, pretrained=encoders[model], progress=False)
    on_disk = study.load_metrics(out)  # validates
    assert on_disk["task"] == task and on_disk["model"] == model and on_disk["schema_version"] == study.SCHEMA_VERSION == 3
    assert "ablated" in on_disk["runs"] and set(on_disk["encoder_share"]) == {"pretrained", "scratch", "linear_probe"}
    assert on_disk == loads_strict((out / "metrics.json").read_text())  # strict JSON: no NaN / Infinity
    spec = get_task(task)
    assert set(d["runs"]) == {"pretrained", "scratch", "linear_probe", "ablated"}
    curve = d["runs"]["pretrained"]["curve"]
    assert [r["epoch"] for r in curve] == [0, 0.5, 1, 1.5, 2] and [r["step"] for r in curve] == [0, 1, 2, 3, 4]
    assert curve[0]["train_loss"] is None and curve[0]["wall_s"] == 0
    assert d["runs"]["pretrained"]["best_step"] == 2 * d["runs"]["pretrained"]["best_epoch"] >= 1
    conv = d["convergence"]["0.9"]
    assert conv["interpolated"] and set(conv["started_above"]) == {"pretrained", "scratch"}
    for key in ("steps_pretrained", "steps_scratch", "steps_ratio", "seconds_ratio"):
        assert (conv[key] is None) == (f"convergence.0.9.{key}" in d["undefined"])
    assert "runs.pretrained.curve.0.train_loss" in d["undefined"]
    _check_outcome(d, spec, prof)
    _check_alignment(d)
    _check_calibration(d, out)
    assert spec.primary_metric in d["runs"]["scratch"]["test"]
    assert spec.primary_metric in d["rpg"]["vs_scratch"] and spec.primary_metric in d["rpg"]["vs_linear_probe"]
    assert {"embedding"} <= set(d["alignment"]["pretrained"]["pooled"]) and d["alignment"]["scratch"]["tokens"]
    if not spec.uses_labels:
        assert "real" in d["runs"]["pretrained"]["extra"] and d["n_cases"]["real"] == 2
    ex = np.load(out / "examples.npz")
    assert ("pred_pretrained" in ex) != (spec.kind == "classification")


def test_resume_returns_existing_metrics_without_work(env):
    prof, encoders, tmp = env
    out = tmp / "resume"
    first = run_point("classification", "profound", prof, out_dir=out, pretrained=encoders["profound"],
                            progress=False)
    mtime = (out / "metrics.json").stat().st_mtime_ns

    def boom(*a, **k):
        raise AssertionError("a finished point must not be recomputed")

    again = run_point("classification", "profound", prof, out_dir=out, pretrained=encoders["profound"],
                      progress=False, finetune_all=boom)
    assert again == json.loads((out / "metrics.json").read_text()) and again["runs"] == first["runs"]
    assert (out / "metrics.json").stat().st_mtime_ns == mtime


def test_swapped_control_reuses_scratch_and_uses_sibling_folder(env):
    prof, encoders, tmp = env
    native = run_point("super_resolution", "provicnet", prof, pretrained=encoders["provicnet"], progress=False)
    native_dir = paths.run_dir(prof.name, "super_resolution", "provicnet", 0)
    assert (native_dir / "metrics.json").exists()
    swapped = run_point("super_resolution", "provicnet", prof, objective="swapped",
                        pretrained=encoders["provicnet"], progress=False, reuse_scratch_from=native_dir / "metrics.json")
    assert (native_dir.with_name(native_dir.name + "__swapped") / "metrics.json").exists()
    assert swapped["objective"] == "swapped" and swapped["objective_name"] == "mae"
    assert swapped["runs"]["scratch"]["test"] == native["runs"]["scratch"]["test"]
    assert swapped["runs"]["scratch"]["reused_from"] and "scratch" not in swapped["alignment"]


def test_bad_arguments_and_missing_encoder(env):
    prof, encoders, tmp = env
    with pytest.raises(ValueError, match="unknown objective"):
        run_point("classification", "profound", prof, objective="both", pretrained=encoders["profound"])
    with pytest.raises(ValueError, match="unknown model"):
        run_point("classification", "resnet", prof)
    with pytest.raises(FileNotFoundError, match="python -m transferlimits pretrain --model profound"):
        run_point("classification", "profound", prof, progress=False)


def test_validate_metrics_rejects_broken_dicts(env):
    prof, encoders, tmp = env
    good = run_point("classification", "provicnet", prof, out_dir=tmp / "v", pretrained=encoders["provicnet"],
                           progress=False)
    study.validate_metrics(good)
    for path, value, msg in [
        (("rpg",), None, "missing field rpg"),
        (("seed",), "zero", "seed must be int"),
        (("runs", "linear_probe"), None, "runs.linear_probe"),
        (("runs", "scratch", "curve"), [{"epoch": 0}], "curve\\[0\\].train_loss"),
        (("transferability", "logme"), "high", "transferability.logme must be float"),
        (("schema_version",), 1, "schema_version"),
        (("rpg_primary",), float("nan"), "rpg_primary must be float or null"),
        (("baseline_primary",), None, "missing field baseline_primary"),
        (("lr_groups", "scratch"), [{"name": "x", "lr": 1.0}], "lr_groups.scratch\\[0\\].weight_decay"),
    ]:
        broken = copy.deepcopy(good)
        parent = broken
        for key in path[:-1]:
            parent = parent[key]
        if value is None:
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
        with pytest.raises(ValueError, match=msg):
            study.validate_metrics(broken)
    # an encoder control's point trains no linear probe (paths.PROBED_KINDS): valid without one
    control = copy.deepcopy(good)
    control["objective"] = "random"
    del control["runs"]["linear_probe"], control["learned"]["linear_probe"]
    study.validate_metrics(control)


@pytest.mark.skipif(not paths.GEOMETRY_PACK.exists(), reason="geometry pack not built")
def test_run_point_on_the_real_phantom_cohort(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path))
    prof = tiny_profile()
    enc = study_runs.scratch_encoder(prof, "profound", seed=5)
    path = tmp_path / "enc.pt"
    atomic_save_torch(path, {"state_dict": enc.state_dict(), "model": "profound", "size": "test",
                             "objective": "fcmae", "img_size": None})
    d = run_point("segmentation", "profound", prof, pretrained=path, progress=False, load_data=study_runs.load_data)
    study.validate_metrics(d)
    assert d["n_cases"] == {"train": 8, "val": 4, "test": 6}
