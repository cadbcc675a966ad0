"""The encoder ablation and the encoder controls (STUDY §5.1): facts, not numbers.

* the ablated run's classifier sees only zeros: its predictions do not depend on the case (a constant prior),
  its encoder never changes and has no optimiser group;
* ``encoder_share`` against hand-computed values, and None where the run does not beat its baseline;
* the Transfusion control keeps every tensor's mean and SD (to sampling error) but not its values; the random
  control is a different draw from the scratch encoder of any seed; both are written in the pre-training format.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from transferlimits import paths
from transferlimits.config import FinetuneRecipe, get_profile
from transferlimits.models.registry import build_encoder
from transferlimits.runtime import atomic_save_torch
from transferlimits.study.encoder_sources import (
    ENCODER_SOURCES, RANDOM_SEED, _folder_lock, encoder_source, positive_key, transfusion_state,
)
from transferlimits.study.runs import encoder_share, encoder_shares, scratch_encoder
from transferlimits.tasks import TASK_REGISTRY, get_task
from transferlimits.training.finetune import finetune

from _finetune_data import SLICE, tiny_splits

RECIPE = FinetuneRecipe(epochs=2, batch_size=4, lr=2e-3, decoder_width=8)


@pytest.mark.parametrize("model", ["profound", "provicnet"])
def test_the_ablated_classifier_predicts_one_thing_for_every_case(model):
    torch.manual_seed(0)
    enc = build_encoder(model, "test", **({"img_size": SLICE} if model == "provicnet" else {}))
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    res = finetune(get_task("classification"), model, enc, "ablated", tiny_splits("classification", model), RECIPE,
                   "cpu", progress=False)
    probs = np.stack([c["probs"] for c in res.per_case])
    np.testing.assert_allclose(probs, probs[:1].repeat(len(probs), 0), atol=1e-6)  # no case information reached it
    assert res.test_scores["auroc_ge4"] == pytest.approx(0.5)
    inner = res.model.encoder.inner.state_dict()
    assert all(torch.equal(before[k], inner[k]) for k in before)
    assert all(g["name"].startswith("head/") for g in res.lr_groups)


@pytest.mark.parametrize("p, abl, base, higher, want", [
    (0.8, 0.5, 0.5, True, 1.0), (0.8, 0.8, 0.5, True, 0.0), (0.8, 0.65, 0.5, True, 0.5),
    (30.0, 31.0, 29.0, True, -1.0), (0.2, 0.3, 0.4, False, 0.5), (0.4, 0.3, 0.5, True, None),
    (0.5, 0.3, 0.4, False, None), (float("nan"), 0.1, 0.0, True, None)])
def test_encoder_share_against_hand_values(p, abl, base, higher, want):
    got = encoder_share(p, abl, base, higher)
    assert got == (None if want is None else pytest.approx(want))


def test_encoder_shares_are_null_without_an_ablated_run():
    recs = {"pretrained": {"test": {"auc": 0.8}}, "scratch": {"test": {"auc": 0.7}}}
    assert encoder_shares(recs, "auc", 0.5, True) == {"pretrained": None, "scratch": None}
    recs["ablated"] = {"test": {"auc": 0.6}}
    assert encoder_shares(recs, "auc", 0.5, True) == {"pretrained": pytest.approx(2 / 3), "scratch": pytest.approx(0.5)}


def test_transfusion_keeps_each_tensors_mean_and_sd_but_not_its_values():
    torch.manual_seed(0)
    state = build_encoder("profound", "test").state_dict()
    new = transfusion_state(state, 3)
    assert new.keys() == state.keys()
    for name, t in state.items():
        if not torch.is_floating_point(t) or t.numel() < 200:
            continue
        assert not torch.equal(new[name], t)
        assert float(new[name].mean()) == pytest.approx(float(t.mean()), abs=4 * float(t.std()) / t.numel() ** 0.5 + 1e-7)
        assert float(new[name].std()) == pytest.approx(float(t.std()), rel=0.15)
    assert all(torch.equal(new[k], transfusion_state(state, 3)[k]) for k in state)  # deterministic


def test_each_objective_kind_has_a_source_and_names_its_objective():
    assert set(ENCODER_SOURCES) == {"native", "swapped", "native_short", "random", "transfusion", "positive"}
    assert encoder_source("native_short").objective_name("provicnet") == "contrastive"
    assert encoder_source("native_short").role == "objective"
    assert encoder_source("native").objective_name("profound") == "fcmae"
    assert encoder_source("swapped").objective_name("provicnet") == "mae"
    assert encoder_source("random").objective_name("profound") == "random"
    with pytest.raises(ValueError, match="unknown objective kind"):
        encoder_source("imagenet")


def test_profile_rejects_an_unknown_control():
    with pytest.raises(ValueError, match="control_inits"):
        get_profile("smoke", control_inits=("random", "imagenet"))


def test_native_short_without_short_steps_says_how_to_make_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path))
    prof = get_profile("smoke")
    with pytest.raises(FileNotFoundError, match="pretrain.short_fraction > 0 \\(now 0.0\\)"):
        encoder_source("native_short").encoder_file(prof, "profound", "classification")


def test_random_control_is_not_any_scratch_encoder():
    prof = get_profile("smoke", encoder_sizes={"profound": "test", "provicnet": "test"})
    rnd = scratch_encoder(prof, "profound", RANDOM_SEED).state_dict()
    for seed in (0, 1, 2):
        scr = scratch_encoder(prof, "profound", seed).state_dict()
        assert any(not torch.equal(rnd[k], scr[k]) for k in rnd)


def test_a_positive_control_is_reused_only_while_its_key_matches(tmp_path, monkeypatch):
    """A positive control trained on an older task definition (another degradation, sequence or recipe) is re-made,
    not reused: its ``positive.json`` key must equal ``positive_key`` of the current code and profile."""
    monkeypatch.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path))
    prof = get_profile("smoke")
    source = encoder_source("positive")
    folder = source.folder(prof, "profound", "super_resolution")
    folder.mkdir(parents=True)
    (folder / "encoder.pt").write_bytes(b"an encoder")
    key = positive_key(prof, "profound", "super_resolution")
    assert key != positive_key(prof, "profound", "distortion_correction")
    assert key != positive_key(get_profile("smoke", finetune={"epochs": 5}), "profound", "super_resolution")
    manifest = paths.data_dir(prof.name) / "manifest.json"  # a rebuilt cohort: another key
    manifest.parent.mkdir(parents=True)
    manifest.write_text("{}")
    assert positive_key(prof, "profound", "super_resolution") != key
    manifest.unlink()
    (folder / "positive.json").write_text(json.dumps({"key": key}))
    assert source.encoder_file(prof, "profound", "super_resolution") == folder / "encoder.pt"  # current: reused
    for stale in ({"key": "0" * 64}, {}):  # another key, or a file from before keys: re-made (needs the native run)
        (folder / "positive.json").write_text(json.dumps(stale))
        with pytest.raises(FileNotFoundError, match="no pre-trained encoder"):
            source.encoder_file(prof, "profound", "super_resolution")


def test_every_positive_prelude_is_a_registered_task_with_the_same_inputs():
    preludes = {name: spec.positive_prelude for name, spec in TASK_REGISTRY.items() if spec.positive_prelude}
    assert preludes.get("classification") == ("segmentation",)
    for name, pre in preludes.items():
        for other in pre:
            assert other in TASK_REGISTRY and other != name
            assert (get_task(other).single_input, get_task(other).channel_inputs) == \
                (get_task(name).single_input, get_task(name).channel_inputs)


def test_the_folder_lock_makes_a_second_maker_wait(tmp_path):
    order, inside = [], threading.Event()

    def maker(name, hold):
        with _folder_lock(tmp_path / "control"):
            order.append(f"{name} in")
            inside.set()
            time.sleep(hold)
            order.append(f"{name} out")

    first = threading.Thread(target=maker, args=("a", 0.3))
    first.start()
    assert inside.wait(30)  # "a" holds the lock (however loaded the machine)
    maker("b", 0.0)  # waits for "a" to leave
    first.join()
    assert order == ["a in", "a out", "b in", "b out"]


def test_classification_positive_control_starts_from_the_segmentation_one(tmp_path, monkeypatch):
    """Made on a tiny cohort: segmentation's positive control is trained first (and reused afterwards), then
    classification's starts from it with the pretrained recipe; each ``positive.json`` says what it came from."""
    monkeypatch.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path / "results"))
    prof = get_profile("smoke", grid={"shape": (16, 32, 32), "spacing": (3.0, 2.0, 2.0)}, slice_size=28,
                       encoder_sizes={"profound": "test", "provicnet": "test"},
                       splits={"pretrain": 6, "train": 3, "val": 2, "test": 2},
                       finetune={"epochs": 1, "batch_size": 2, "decoder_width": 8, "evals_per_run": 1})
    native = ENCODER_SOURCES["native"].folder(prof, "profound", "classification") / "encoder.pt"
    atomic_save_torch(native, {"state_dict": scratch_encoder(prof, "profound", 5).state_dict(), "model": "profound",
                               "size": "test", "objective": "fcmae", "img_size": None})
    source = encoder_source("positive")
    cls = source.encoder_file(prof, "profound", "classification")
    seg = source.folder(prof, "profound", "segmentation") / "encoder.pt"
    seg_record = json.loads((seg.parent / "positive.json").read_text())
    cls_record = json.loads((cls.parent / "positive.json").read_text())
    assert seg_record["init"] == "scratch" and seg_record["prelude"] == []
    assert cls_record["init"] == "pretrained"
    assert cls_record["prelude"] == [{"task": "segmentation", "key": seg_record["key"]}]
    assert cls_record["key"] == positive_key(prof, "profound", "classification") != seg_record["key"]
    seg_bytes = seg.read_bytes()
    assert source.encoder_file(prof, "profound", "segmentation") == seg and seg.read_bytes() == seg_bytes  # reused
