"""Fine-tuning loop: init modes, lr scales, NaN guard, determinism, augmentation (tiny CPU sizes)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from transferlimits.config import FinetuneRecipe, get_profile
from transferlimits.models.registry import build_encoder
from transferlimits.study.runs import scratch_encoder
from transferlimits.tasks import get_task
from transferlimits.training.augment import augment_batch
from transferlimits.models.convnext3d import build_profound
from transferlimits.models.heads import build_task_model
from transferlimits.training.finetune import backbone_lr_scales, finetune, start_at_train_median
from transferlimits.training.loop import NonFiniteLossError

from _finetune_data import SLICE, TinyTaskDataset, tiny_splits

torch.set_num_threads(1)

RECIPE = FinetuneRecipe(epochs=2, batch_size=4, lr=2e-3)


def _encoder(model: str):
    torch.manual_seed(0)
    return build_encoder(model, "test", **({"img_size": SLICE} if model == "provicnet" else {}))


def _run(task: str, model: str, init: str = "pretrained", recipe: FinetuneRecipe = RECIPE, encoder=None,
         extra: dict | None = None):
    spec = get_task(task)
    data = {**tiny_splits(spec.kind, model), **(extra or {})}
    enc = encoder if encoder is not None else _encoder(model)
    return finetune(spec, model, enc, init, data, replace(recipe, decoder_width=8), "cpu", progress=False,
                    spacing=(3.0, 3.0, 3.0))


@pytest.mark.parametrize("model", ["profound", "provicnet"])
def test_linear_probe_leaves_encoder_unchanged_and_head_trains(model):
    enc = _encoder(model)
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    res = _run("classification", model, "linear_probe", encoder=enc)
    after = res.model.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in res.model.encoder.parameters())
    head = res.model.head[0].weight
    # 8 cases in batches of 4 over 2 epochs: 4 steps, fewer than evals_per_run, so an evaluation after each
    assert [r["epoch"] for r in res.curve] == [0, 0.5, 1, 1.5, 2] and res.best_epoch in (0.5, 1, 1.5, 2)
    assert [r["step"] for r in res.curve] == [0, 1, 2, 3, 4] and res.best_step == 2 * res.best_epoch
    assert res.curve[0]["train_loss"] is None and res.curve[0]["wall_s"] == 0.0  # evaluated before any update
    assert all(g["name"].startswith("head/") for g in res.lr_groups)  # the frozen encoder has no group
    assert "auroc_ge4" in res.test_scores and len(res.per_case) == 6
    assert head.requires_grad


def test_pretrained_run_changes_encoder_but_not_the_callers_copy():
    enc = _encoder("profound")
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    # no warm-up: the warm-up's first step runs at lr 0, and with an evaluation after every step (4 steps < 10)
    # a tie on the tiny data keeps that first, unchanged evaluation as the best
    res = _run("segmentation", "profound", encoder=enc, recipe=replace(RECIPE, warmup_epochs=0))
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())  # input not modified
    assert any(not torch.equal(before[k], v) for k, v in res.model.encoder.state_dict().items())
    assert {"dice", "hd95"} <= set(res.test_scores) and res.examples["pred"].shape == (2, 32, 32)


def test_cpu_runs_are_deterministic():
    a = _run("super_resolution", "provicnet")
    b = _run("super_resolution", "provicnet")
    assert [r["train_loss"] for r in a.curve] == [r["train_loss"] for r in b.curve]
    assert a.test_scores == b.test_scores
    assert "real" in _run("super_resolution", "provicnet", extra={"real": TinyTaskDataset(2, "regression", "provicnet", 3)}).extra_scores


@pytest.mark.parametrize("model", ["profound", "provicnet"])
def test_scratch_same_seed_gives_identical_init(model):
    prof = get_profile("smoke", encoder_sizes={"profound": "test", "provicnet": "test"}, slice_size=SLICE)
    a, b, c = (scratch_encoder(prof, model, s) for s in (7, 7, 8))
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert any(not torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items() if v.dtype.is_floating_point and v.std() > 0)


def test_nan_loss_raises_clear_error():
    spec = get_task("classification")
    bad = TinyTaskDataset(8, "classification", "profound", nan=True)
    ok = TinyTaskDataset(4, "classification", "profound", 1)
    with pytest.raises(NonFiniteLossError, match=r"step 0 of fine-tuning classification/profound \(init=scratch, epoch 1\)"):
        finetune(spec, "profound", _encoder("profound"), "scratch", {"train": bad, "val": ok, "test": ok}, RECIPE,
                 "cpu", progress=False)


def test_backbone_lr_scales():
    from transferlimits.models.heads import build_task_model

    spec = get_task("classification")
    pro = build_task_model("profound", _encoder("profound"), spec)
    scales = backbone_lr_scales(pro, "profound", RECIPE)
    n = pro.encoder.num_layers
    assert scales["encoder.downsample_layers.0.0.weight"] == pytest.approx(0.75 ** (n + 1))
    assert scales["encoder.norm.weight"] == pytest.approx(1.0)
    assert not any(k.startswith("head.") for k in scales)
    vit = build_task_model("provicnet", _encoder("provicnet"), spec)
    assert set(backbone_lr_scales(vit, "provicnet", RECIPE).values()) == {0.05}
    for model in (pro, vit):  # scratch: every parameter at the head's lr (STUDY §4)
        assert backbone_lr_scales(model, "profound" if model is pro else "provicnet", RECIPE, init="scratch") == {}
    with pytest.raises(ValueError, match="unknown init"):
        backbone_lr_scales(pro, "profound", RECIPE, init="frozen")


def test_bad_init_and_empty_train_set():
    with pytest.raises(ValueError, match="unknown init 'frozen'"):
        _run("classification", "profound", "frozen")
    spec = get_task("classification")
    ok = TinyTaskDataset(4, "classification", "profound")
    with pytest.raises(ValueError, match="empty"):
        finetune(spec, "profound", _encoder("profound"), "scratch",
                 {"train": TinyTaskDataset(0, "classification", "profound"), "val": ok, "test": ok}, RECIPE, "cpu",
                 progress=False)
    with pytest.raises(ValueError, match="lacks split"):
        finetune(spec, "profound", _encoder("profound"), "scratch", {"train": ok, "val": ok}, RECIPE, "cpu",
                 progress=False)


def test_augment_flips_input_target_and_masks_together():
    x = torch.arange(2 * 3 * 2 * 2 * 4, dtype=torch.float32).reshape(2, 3, 2, 2, 4)
    y = torch.arange(2 * 2 * 2 * 4).reshape(2, 2, 2, 4)
    batch = {"x": x, "y": y, "masks": {"body": y.clone()}}
    out = augment_batch(batch, torch.Generator().manual_seed(0), dense_target=True, flip_p=1.0, scale=0.0, shift=0.0)
    assert torch.equal(out["x"], x.flip(-1)) and torch.equal(out["y"], y.flip(-1))
    assert torch.equal(out["masks"]["body"], y.flip(-1)) and torch.equal(batch["x"], x)  # input untouched
    out = augment_batch(batch, torch.Generator().manual_seed(0), dense_target=True, flip_p=0.0, scale=0.1, shift=0.1)
    assert torch.equal(out["y"], y) and not torch.equal(out["x"], x)
    ratio = out["x"] / x.clamp_min(1)
    assert float((out["x"] - x).abs().max()) <= 0.1 * float(x.max()) + 0.1 + 1e-5 and ratio.numel()
    a = augment_batch(batch, torch.Generator().manual_seed(3), dense_target=True)
    b = augment_batch(batch, torch.Generator().manual_seed(3), dense_target=True)
    assert torch.equal(a["x"], b["x"])
    with pytest.raises(ValueError, match="flip_p"):
        augment_batch(batch, torch.Generator(), dense_target=True, flip_p=2.0)


def test_augment_moves_a_target_in_input_units_with_the_input():
    """Super-resolution-like pair (y = x exactly): after augmentation the identity mapping still holds."""
    x = torch.randn(3, 3, 2, 4, 4)
    x[:, 1:] = 0  # one input channel, like ProFound's t2w-only tasks
    y = x[:, 0].clone()
    batch = {"x": x, "y": y, "masks": {"body": torch.ones_like(y)}}
    out = augment_batch(batch, torch.Generator().manual_seed(1), dense_target=True, target_follows_input=True)
    assert not torch.equal(out["y"], y)  # the intensity draw reached the target
    assert torch.allclose(out["x"][:, 0], out["y"], atol=1e-6)  # and kept input and target in one unit
    plain = augment_batch(batch, torch.Generator().manual_seed(1), dense_target=True)
    assert not torch.allclose(plain["x"][:, 0], plain["y"], atol=1e-3)  # input-only draws break it


def test_translation_head_starts_at_the_train_median():
    """A translation head (no identity residual) starts at the train median inside the body, whatever the input."""
    torch.manual_seed(0)
    model = build_task_model("profound", build_profound("test"), get_task("modality_translation"), width=8,
                             out_size=(16, 32, 32), full_res=True, residual=True).eval()
    body = np.zeros((2, 3, 3), np.uint8)
    body[1] = 1
    ds = [{"y": np.full((2, 3, 3), v, np.float32) * np.where(body > 0, 1, 100), "masks": {"body": body}}
          for v in (1.0, 2.0, 4.0)]
    assert start_at_train_median(model, ds) == 2.0  # the 100x values outside the body do not count
    with torch.no_grad():
        out = model(torch.randn(1, 3, 16, 32, 32))
    assert torch.allclose(out, torch.full_like(out, 2.0))  # exactly the train median, whatever the input
    assert start_at_train_median(nn.Linear(2, 2), ds) is None  # no dense output layer: nothing to start
