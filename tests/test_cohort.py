"""Cohort build + reload on a tiny profile, the task/pre-training datasets, and the CLI hook."""

from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from _geometry_factory import ellipsoid_geometry
from transferlimits import paths
from transferlimits.config import get_profile
from transferlimits.data import cohort as cohort_mod
from transferlimits.runner import cli_data
from transferlimits.data.splits import patient_id
from transferlimits.study import runs

torch.set_num_threads(1)


class FakePack:
    """Stands in for the geometry pack: 14 hand-made cases of 12 patients (two with two studies)."""

    def __init__(self):
        self.geoms = {}
        for i in range(14):
            pat = 20000 + min(i, 11)
            cid = f"{pat}_{1000000 + i}"
            pirads = [None, 2, 3, 4, 5][i % 5]
            lesion = pirads is not None and pirads >= 4 and i % 2 == 0
            self.geoms[cid] = ellipsoid_geometry(cid, pirads=pirads, isup=3 if lesion else 0, lesion=lesion,
                                                 shape=(12, 48, 48), spacing=(3.0, 1.5, 1.5))
        self.case_ids = sorted(self.geoms)
        self.clinical = pd.DataFrame({"gland_ml": [30.0] * 14}, index=self.case_ids)

    def clinical_dict(self, cid):
        return self.geoms[cid].clinical

    def case(self, cid):
        return self.geoms[cid]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path_factory.mktemp("results")))
        yield get_profile("smoke", splits={"pretrain": 3, "train": 3, "val": 2, "test": 2},
                          grid={"shape": (8, 32, 32), "spacing": (3.0, 2.0, 2.0)}, slice_size=28)


@pytest.fixture(scope="module")
def build():
    """``build(profile, **options)``: :func:`build_cohort_with` on the fake pack (the loader is passed in)."""
    fake = FakePack()
    return lambda prof, **kw: cohort_mod.build_cohort_with(
        prof, cohort_mod.BuildOptions(load_pack=lambda path: fake, **kw))


def test_build_reload_and_cache(tiny, build):
    built = build(tiny, seed=0, progress=False)
    root = paths.data_dir(tiny.name)
    assert (root / "splits.json").is_file() and (root / "manifest.json").is_file()
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["grid"] == {"shape": [8, 32, 32], "spacing": [3.0, 2.0, 2.0]}
    assert manifest["patients"] == {"pretrain": 3, "train": 3, "val": 2, "test": 2}
    pats = [{patient_id(c) for c in built.case_ids(s)} for s in ("pretrain", "train", "val", "test")]
    assert sum(len(p) for p in pats) == len(set().union(*pats))  # disjoint by patient
    loaded = cohort_mod.Cohort.load(tiny)
    assert loaded.splits == built.splits
    case = loaded.cases("train")[0]
    assert case.shape == (8, 32, 32) and case.t2w.dtype == np.float32 and case.source == "phantom"
    real = loaded.real_cases()
    assert len(real) == 2 and all(r.source == "real" and r.shape == (8, 32, 32) for r in real)
    # a second build reuses the cache (files untouched, same hashes)
    f = root / manifest["cases"][case.case_id]["file"]
    mtime = f.stat().st_mtime_ns
    again = build(tiny, seed=0, progress=False)
    assert f.stat().st_mtime_ns == mtime and again.manifest["cases"] == manifest["cases"]
    # a corrupt cache file is rebuilt
    f.write_bytes(b"torn")
    build(tiny, seed=0, progress=False)
    assert loaded.case(case.case_id).shape == (8, 32, 32)
    with pytest.raises(ValueError, match="unknown split"):
        loaded.case_ids("holdout")


def test_a_recorded_cohort_is_read_as_it_is(tiny, build, tmp_path):
    """A render of results made elsewhere (no case files came back): the manifest is read as it is, no case is
    synthesised or rewritten, and only the two real exams are resampled here (the data page draws them)."""
    build(tiny, seed=0, progress=False)
    root = paths.data_dir(tiny.name)
    manifest = (root / "manifest.json").read_bytes()
    (root / "cases").rename(tmp_path / "cases")
    shutil.rmtree(root / "real")
    try:
        cohort, real = cohort_mod.recorded_cohort(tiny)
        assert not (root / "cases").exists() and (root / "manifest.json").read_bytes() == manifest
        assert cohort.case_ids("train") == json.loads(manifest)["splits"]["train"]
        assert len(real) == 2 and all(r.source == "real" and r.shape == (8, 32, 32) for r in real)
    finally:
        (tmp_path / "cases").rename(root / "cases")
    (root / "manifest.json").rename(tmp_path / "manifest.json")
    try:
        with pytest.raises(ValueError, match="manifest.json: no cohort manifest"):
            cohort_mod.recorded_cohort(tiny)
    finally:
        (tmp_path / "manifest.json").rename(root / "manifest.json")


def test_task_and_pretrain_datasets(tiny, build):
    c = build(tiny, seed=0, progress=False)
    for model in ("profound", "provicnet"):
        ds = cohort_mod.task_dataset(c, "segmentation", "test", model)
        item = ds[0]
        assert item["y"].shape == (8, 32, 32)
        assert item["x"].shape == ((3, 8, 32, 32) if model == "profound" else (8, 3, 28, 28))
        assert ("pos" in item) == (model == "provicnet")
    sr_real = cohort_mod.task_dataset(c, "distortion_correction", "real", "profound", seed=1)
    a, b = sr_real[0], sr_real[0]
    assert len(sr_real) == 2 and torch.equal(a["x"], b["x"])  # degradation seeded per (case, seed)
    assert not torch.equal(a["x"], cohort_mod.task_dataset(c, "distortion_correction", "real", "profound", seed=2)[0]["x"])
    batch = next(iter(torch.utils.data.DataLoader(cohort_mod.task_dataset(c, "classification", "train", "profound"),
                                                  batch_size=2)))
    assert batch["x"].shape == (2, 3, 8, 32, 32) and batch["y"].dtype == torch.int64
    with pytest.raises(ValueError, match="uses labels"):
        cohort_mod.task_dataset(c, "classification", "real", "profound")
    with pytest.raises(ValueError, match="unknown model"):
        cohort_mod.task_dataset(c, "classification", "train", "resnet")
    pf = cohort_mod.pretrain_dataset(c, "profound")
    assert len(pf) == len(c.case_ids("pretrain"))  # the real exams are a test set, never pre-trained on
    assert not set(pf.case_ids) & set(c.case_ids("real"))
    with pytest.raises(ValueError, match="include_real"):
        cohort_mod.pretrain_dataset(c, "profound", include_real=True)
    it = pf[0]
    assert it["x"].shape == (3, 8, 32, 32) and it["labels"].shape == (8, 32, 32) and it["labels"].max() <= 3
    pv = cohort_mod.pretrain_dataset(c, "provicnet", include_real=False)
    assert len(pv) == 8 * len(c.case_ids("pretrain"))
    it = pv[7]
    assert it["x"].shape == (3, 28, 28) and it["pos"].tolist() == [7.0, 8.0] and it["labels"].shape == (28, 28)


def _no_pack(path):
    raise FileNotFoundError("no pack")


def test_cli_hook_and_missing_inputs(tiny, capsys):
    parser = argparse.ArgumentParser()
    cli_data.add_arguments(parser)  # the data CLI lives in the runner, not in the library
    args = parser.parse_args(["--profile", "smoke", "--no-progress"])
    assert args.profile == "smoke" and args.seed == 0 and args.skip_incomplete is False
    assert parser.parse_args(["--skip-incomplete"]).skip_incomplete is True
    assert not hasattr(cohort_mod, "add_arguments")
    with pytest.raises(ValueError, match="no cohort manifest"):
        cohort_mod.Cohort.load("reference")
    with pytest.raises(ValueError, match="images_root"):
        cohort_mod.build_cohort(get_profile("picai"), progress=False)
    with pytest.raises(ValueError, match="geometry pack"):
        cohort_mod.build_cohort_with(tiny, cohort_mod.BuildOptions(progress=False, load_pack=_no_pack))


def test_picai_data_source_on_the_shipped_exams(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path / "results"))
    prof = get_profile("picai", splits={"pretrain": 0, "train": 1, "val": 0, "test": 1},
                       grid={"shape": (8, 32, 32), "spacing": (3.0, 2.0, 2.0)}, slice_size=28)
    with pytest.raises(ValueError, match="only 0 available"):  # the real exams are held out of every split
        cohort_mod.build_cohort(prof, progress=False, images_root=str(paths.REAL_CASES))
    c = cohort_mod.build_cohort(prof, progress=False, images_root=str(paths.REAL_CASES), held_out_patients=())
    assert sorted(c.case_ids("train") + c.case_ids("test")) == ["10795_1000811", "11373_1001396"]
    case = c.cases("test")[0]
    assert case.source == "real" and case.shape == (8, 32, 32) and case.zones.any()


def test_a_label_budget_keeps_the_first_train_cases_and_names_a_split_too_small(tiny, build):
    c = build(tiny, seed=0, progress=False)
    ids = c.case_ids("train")
    two = cohort_mod.task_dataset(c, "segmentation", "train", "profound", max_cases=2)
    assert two.case_ids == ids[:2] and len(two) == 2 and two[1]["case_id"] == ids[1]
    assert cohort_mod.task_dataset(c, "segmentation", "train", "profound", max_cases=0).case_ids == ids
    with pytest.raises(ValueError, match=r"max_cases=4 for the 'train' split of 'segmentation': it holds 3"):
        cohort_mod.task_dataset(c, "segmentation", "train", "profound", max_cases=4)
    # the study's loader applies the task recipe's budget to the train split only
    budget = tiny.with_task_finetune("segmentation", train_cases=2)
    _, data = runs.load_data(budget, "segmentation", "profound", 0)
    assert [len(data[s]) for s in ("train", "val", "test")] == [2, len(c.case_ids("val")), len(c.case_ids("test"))]
    _, data = runs.load_data(budget, "classification", "profound", 0)
    assert len(data["train"]) == len(ids)  # another task: its own (unbudgeted) recipe
    with pytest.raises(ValueError, match="train_cases=-1 is invalid"):
        tiny.with_task_finetune("segmentation", train_cases=-1)
