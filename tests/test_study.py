"""One study point end to end -> schema-valid metrics.json, for every task and both encoders (tiny sizes).

The cohort is replaced by tiny stand-in datasets (``_finetune_data``, passed to ``run_point`` as its
``load_data`` collaborator) and the pre-trained encoder by a
randomly initialised one saved in the ``encoder.pt`` format of ``training.pretrain``, so these tests do
not depend on the geometry pack or on a pre-training run; the last test uses the real cohort when the
geometry pack is present.
"""

from __future__ import annotations

import copy
import functools
import json

import numpy as np
import pytest
import torch

from transferlimits import paths, study
from transferlimits.config import TASKS, get_profile
from transferlimits.study import runs as study_runs
from transferlimits.tasks import get_task
from transferlimits.runtime import atomic_save_torch

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


#: run_point on the stand-in data
run_point = functools.partial(study.run_point, load_data=fake_load_data)


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


@pytest.mark.parametrize("model", ["profound", "provicnet"])
@pytest.mark.parametrize("task", TASKS)
def test_run_point_writes_valid_metrics(env, task, model):
    prof, encoders, tmp = env
    out = tmp / "runs" / f"{task}__{model}"
    d = run_point(task, model, prof, seed=0, out_dir=out, pretrained=encoders[model], progress=False)
    on_disk = study.load_metrics(out)  # validates
    assert on_disk["task"] == task and on_disk["model"] == model and on_disk["schema_version"] == 1
    spec = get_task(task)
    assert set(d["runs"]) == {"pretrained", "scratch", "linear_probe"}
    assert len(d["runs"]["pretrained"]["curve"]) == 2
    assert spec.primary_metric in d["runs"]["scratch"]["test"]
    assert spec.primary_metric in d["rpg"]["vs_scratch"] and spec.primary_metric in d["rpg"]["vs_linear_probe"]
    assert {"embedding"} <= set(d["alignment"]["pretrained"]["pooled"]) and d["alignment"]["scratch"]["tokens"]
    assert np.isfinite(d["alignment"]["pretrained"]["pooled"]["embedding"]["mmd2"])
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
                              pretrained=encoders["provicnet"], progress=False, reuse_scratch_from=native_dir)
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
        (("rpg",), None, "missing field .rpg"),
        (("seed",), "zero", "seed must be int"),
        (("runs", "linear_probe"), None, "runs.linear_probe"),
        (("runs", "scratch", "curve"), [{"epoch": 1}], "curve\\[0\\].train_loss"),
        (("transferability", "logme"), "high", "transferability.logme must be float"),
        (("schema_version",), 2, "schema_version"),
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


@pytest.mark.skipif(not paths.GEOMETRY_PACK.exists(), reason="geometry pack not built")
def test_run_point_on_the_real_phantom_cohort(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path))
    prof = tiny_profile()
    enc = study_runs.scratch_encoder(prof, "profound", seed=5)
    path = tmp_path / "enc.pt"
    atomic_save_torch(path, {"state_dict": enc.state_dict(), "model": "profound", "size": "test",
                             "objective": "fcmae", "img_size": None})
    d = study.run_point("segmentation", "profound", prof, pretrained=path, progress=False)
    study.validate_metrics(d)
    assert d["n_cases"] == {"train": 8, "val": 4, "test": 6}
