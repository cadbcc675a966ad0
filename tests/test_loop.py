"""Facts about the shared training utilities (schedule, param groups, NaN guard, checkpoints)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from transferlimits.training.loop import (
    Checkpointer,
    NonFiniteLossError,
    Timer,
    autocast_context,
    check_finite,
    maybe_channels_last,
    param_groups,
    generator_states,
    restore_generators,
    restore_rng,
    set_lr,
    warmup_cosine_lr,
)

torch.set_num_threads(1)


def test_warmup_is_linear_from_zero_to_base():
    assert warmup_cosine_lr(0, 100, 10, 1e-3) == 0.0
    assert warmup_cosine_lr(5, 100, 10, 1e-3) == pytest.approx(5e-4)
    assert warmup_cosine_lr(10, 100, 10, 1e-3) == pytest.approx(1e-3)


def test_cosine_halfway_and_end():
    # halfway through the decay: the mean of base and min
    assert warmup_cosine_lr(55, 100, 10, 1.0, min_lr=0.2) == pytest.approx(0.6)
    assert warmup_cosine_lr(100, 100, 10, 1.0, min_lr=0.2) == pytest.approx(0.2)
    assert warmup_cosine_lr(500, 100, 10, 1.0, min_lr=0.2) == pytest.approx(0.2)
    lrs = [warmup_cosine_lr(s, 100, 10, 1.0) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_no_warmup_starts_at_base():
    assert warmup_cosine_lr(0, 10, 0, 2.0) == pytest.approx(2.0)


@pytest.mark.parametrize("kwargs", [dict(total_steps=0), dict(warmup_steps=-1), dict(step=-1)])
def test_schedule_rejects_bad_arguments(kwargs):
    args = dict(step=0, total_steps=10, warmup_steps=2, base_lr=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        warmup_cosine_lr(**args)


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 4))
        self.pos_embed = nn.Parameter(torch.zeros(1, 3, 4))
        self.conv = nn.Conv2d(2, 4, 3)
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 2)
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def test_param_groups_no_decay_on_bias_norm_tokens():
    model = _Tiny()
    groups = param_groups(model, 0.05, lr_scales={"head.weight": 10.0})
    by_name = {n: g for g in groups for n in g["names"]}
    for name in ("cls_token", "pos_embed", "conv.bias", "norm.weight", "norm.bias", "head.bias"):
        assert by_name[name]["weight_decay"] == 0.0, name
    assert by_name["conv.weight"]["weight_decay"] == 0.05
    assert by_name["head.weight"]["weight_decay"] == 0.05
    assert by_name["head.weight"]["lr_scale"] == 10.0
    assert by_name["conv.weight"]["lr_scale"] == 1.0
    assert "frozen.weight" not in by_name  # frozen parameters are left out
    opt = torch.optim.AdamW(groups, lr=1.0)
    set_lr(opt, 0.5)
    lrs = {n: g["lr"] for g in opt.param_groups for n in g["names"]}
    assert lrs["head.weight"] == pytest.approx(5.0) and lrs["conv.weight"] == pytest.approx(0.5)


def test_param_groups_bad_arguments():
    with pytest.raises(ValueError, match="weight_decay"):
        param_groups(_Tiny(), -1.0)
    with pytest.raises(ValueError, match="nope"):
        param_groups(_Tiny(), 0.1, lr_scales={"nope": 2.0})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), torch.tensor(float("-inf"))])
def test_check_finite_raises_naming_step_and_run(bad):
    with pytest.raises(NonFiniteLossError, match=r"step 17 of pretraining profound/fcmae; lower the lr"):
        check_finite(bad, step=17, where="pretraining profound/fcmae")


def test_check_finite_passes_value_through():
    assert check_finite(torch.tensor(1.5), step=0, where="x") == 1.5
    assert issubclass(NonFiniteLossError, RuntimeError)


def test_cpu_helpers_are_noops():
    x = torch.randn(1, 2, 3, 4, 5)
    assert maybe_channels_last(x, "cpu", 5) is x
    with autocast_context("cpu"):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32


def test_checkpointer_atomic_save_load_and_rng_restore(tmp_path):
    ck = Checkpointer(tmp_path / "run", every=3)
    assert ck.load_latest() is None
    assert not ck.due(0) and not ck.due(2) and ck.due(3) and ck.due(6)
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    ck.save(3, {"model": {"w": torch.arange(3.0)}})
    expected = (torch.rand(4), np.random.rand(4), random.random())
    # the directory holds only the final file: no temp files left behind
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["checkpoint_last.pt"]
    state = ck.load_latest()
    assert state["step"] == 3 and torch.equal(state["model"]["w"], torch.arange(3.0))
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    restore_rng(state)
    again = (torch.rand(4), np.random.rand(4), random.random())
    assert torch.equal(expected[0], again[0])
    assert np.array_equal(expected[1], again[1]) and expected[2] == again[2]
    ck.remove()
    assert ck.load_latest() is None


def test_checkpointer_rejects_bad_period(tmp_path):
    with pytest.raises(ValueError, match="every"):
        Checkpointer(tmp_path, every=0)


def test_timer_counts_sections_only():
    import time

    timer = Timer("cpu")
    with timer.section():
        time.sleep(0.02)
    time.sleep(0.02)
    assert 0.015 < timer.wall < 0.035
    assert timer.device_seconds == pytest.approx(timer.wall)
    assert timer.elapsed() >= timer.wall + 0.015
    assert not math.isnan(timer.wall)


class _WithGenerator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Module()
        self.inner.rng = torch.Generator().manual_seed(5)


def test_module_generators_are_saved_and_restored():
    mod = _WithGenerator()
    states = generator_states(mod)
    assert list(states) == ["inner:rng"]
    expected = torch.rand(3, generator=mod.inner.rng)
    restore_generators(mod, states)
    assert torch.equal(torch.rand(3, generator=mod.inner.rng), expected)
    with pytest.raises(ValueError, match="missing:rng"):
        restore_generators(mod, {"missing:rng": states["inner:rng"]})
