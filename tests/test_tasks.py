"""Task registry, the five tasks' pairs in both views, and the extension point."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _geometry_factory import ellipsoid_geometry
from transferlimits.config import TASKS, GridSpec
from transferlimits.data.phantom import synthesize
from transferlimits.tasks import (
    TASK_REGISTRY, TaskSample, TaskSpec, get_task, pirads_class, register_task,
)
from transferlimits.data.degrade import through_plane_degrade
from transferlimits.tasks.registry import LESION_SEQUENCE, SR_SLICE_FACTOR
from transferlimits.data.views import normalise_channel, channel_view, stack_view, slice_triplets

torch.set_num_threads(1)
GRID = GridSpec((12, 48, 48), (3.0, 2.0, 2.0))
S = 28


@pytest.fixture(scope="module")
def case():
    return synthesize(ellipsoid_geometry(), GRID, 0)


def test_registry_holds_the_five_tasks():
    assert set(TASKS) <= set(TASK_REGISTRY)
    assert get_task("modality_translation").higher_is_better is False
    assert get_task("classification").primary_metric == "auroc_ge4"
    assert get_task("super_resolution").uses_labels is False and get_task("segmentation").uses_labels
    with pytest.raises(ValueError, match="valid: .*classification"):
        get_task("nope")


@pytest.mark.parametrize("task", TASKS)
def test_pair_shapes_both_views(case, task):
    spec = get_task(task)
    sample = spec.make_sample(case, np.random.default_rng(0))
    a = channel_view(sample, spec)
    b = stack_view(sample, spec, S)
    d, h, w = GRID.shape
    assert a["x"].shape == (3, d, h, w) and a["x"].dtype == torch.float32
    assert b["x"].shape == (d, 3, S, S) and b["pos"].shape == (d, 2)
    assert torch.equal(a["y"], b["y"]) and a["scale"] == b["scale"]  # same target for both models
    if spec.kind == "classification":
        assert a["y"].shape == () and a["y"].item() == 2  # PI-RADS 4 -> class 2
    else:
        assert a["y"].shape == (d, h, w)
    if spec.kind == "regression":  # unit facts in detail: tests/test_views_units.py
        assert a["scale"] > 0 and "offset" in a and a["offset"] == b["offset"]
    for i, name in enumerate(spec.channel_inputs):  # "" channels are zero
        assert (a["x"][i] == 0).all() == (name == "")
    assert set(a["masks"]) == {"body", "gland"}


def test_degradations_in_pairs(case):
    sr = get_task("super_resolution").make_sample(case, np.random.default_rng(0))
    assert not np.allclose(sr.inputs["t2w_degraded"], sr.target)
    dc = get_task("distortion_correction")
    s1, s2 = dc.make_sample(case, np.random.default_rng(5)), dc.make_sample(case, np.random.default_rng(5))
    np.testing.assert_array_equal(s1.inputs["hbv_distorted"], s2.inputs["hbv_distorted"])  # seeded
    assert np.abs(s1.inputs["hbv_distorted"] - s1.target).mean() > 0
    seg = get_task("segmentation").make_sample(case, np.random.default_rng(0))
    assert set(np.unique(seg.target)) == {0, 1}


def test_super_resolution_thick_slices(case):
    """The SR input is the thick-slice degradation at SR_SLICE_FACTOR; a slice-wise constant volume in blocks of the
    factor (aligned with the thick slices) comes back unchanged, a finer z pattern does not."""
    assert SR_SLICE_FACTOR >= 2
    sr = get_task("super_resolution").make_sample(case, np.random.default_rng(0))
    np.testing.assert_allclose(sr.inputs["t2w_degraded"], through_plane_degrade(case.t2w, SR_SLICE_FACTOR), atol=0)
    d = case.t2w.shape[0]
    alt = np.broadcast_to((np.arange(d) % 2).astype(np.float32)[:, None, None], case.t2w.shape)
    assert np.abs(through_plane_degrade(alt, SR_SLICE_FACTOR) - alt).mean() > 0.4  # slice-to-slice detail is lost


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_provicnet_reads_the_lesion_sequence_on_lesion_tasks(case, task):
    """ProViCNet's 2.5D view of a lesion task reads LESION_SEQUENCE only; ProFound's channels keep all three."""
    spec = get_task(task)
    assert spec.single_input == LESION_SEQUENCE
    sample = spec.make_sample(case, np.random.default_rng(0))
    other = next(s for s in ("t2w", "hbv", "adc") if s != LESION_SEQUENCE)
    changed = TaskSample({**sample.inputs, other: sample.inputs[other][::-1].copy()}, sample.target, sample.masks,
                         sample.case_id)
    assert torch.equal(stack_view(sample, spec, S)["x"], stack_view(changed, spec, S)["x"])
    assert not torch.equal(channel_view(sample, spec)["x"], channel_view(changed, spec)["x"])
    flipped = TaskSample({**sample.inputs, LESION_SEQUENCE: sample.inputs[LESION_SEQUENCE][::-1].copy()},
                         sample.target, sample.masks, sample.case_id)
    assert not torch.equal(stack_view(sample, spec, S)["x"], stack_view(flipped, spec, S)["x"])


def test_pirads_mapping():
    assert [pirads_class(p) for p in (None, 1, 2, 3, 4, 5)] == [0, 0, 0, 1, 2, 3]
    assert pirads_class(float("nan")) == 0


def test_view_helpers():
    np.testing.assert_array_equal(slice_triplets(4), [[0, 1, 2], [0, 1, 2], [1, 2, 3], [1, 2, 3]])
    assert slice_triplets(1).tolist() == [[0, 0, 0]]
    x = np.zeros((4, 5, 5), np.float32)
    x[1:3] = np.arange(50).reshape(2, 5, 5) + 1
    z = normalise_channel(x)
    assert z[x != 0].mean() == pytest.approx(0, abs=1e-5) and z[x != 0].std() == pytest.approx(1, abs=1e-4)
    assert (normalise_channel(np.zeros((2, 2, 2))) == 0).all()
    with pytest.raises(ValueError, match="slice_size"):
        stack_view(TaskSample({"t2w": x}, x, {}, "c"), get_task("modality_translation"), 0)


def test_register_new_scalar_regression_task(case):
    def make(c, rng):
        ml = float(c.gland.sum() * np.prod(c.spacing) / 1000.0)
        return TaskSample({"t2w": c.t2w}, ml, {"body": c.body, "gland": c.gland}, c.case_id)

    spec = TaskSpec("gland_volume_test", "scalar_regression", 1, "mae", False, ("mae",), ("t2w", "", ""), "t2w",
                    True, make, "T2W -> gland volume (mL)")
    try:
        register_task(spec)
        with pytest.raises(ValueError, match="already registered"):
            register_task(spec)
        register_task(spec, overwrite=True)
        s = get_task("gland_volume_test")
        sample = s.make_sample(case, np.random.default_rng(0))
        a, b = channel_view(sample, s), stack_view(sample, s, S)
        assert a["y"].dtype == torch.float32 and a["y"].shape == () and a["y"].item() > 5
        assert torch.equal(a["y"], b["y"]) and a["scale"] == 1.0
    finally:
        TASK_REGISTRY.pop("gland_volume_test", None)


def test_bad_specs_raise():
    with pytest.raises(ValueError, match="unknown kind"):
        TaskSpec("x", "detection", 1, "m", True, ("m",), ("t2w", "", ""), "t2w", True, lambda c, r: None)
    with pytest.raises(ValueError, match="out_channels=1"):
        TaskSpec("x", "regression", 2, "m", True, ("m",), ("t2w", "", ""), "t2w", True, lambda c, r: None)
    with pytest.raises(ValueError, match="primary_metric"):
        TaskSpec("x", "regression", 1, "m", True, ("n",), ("t2w", "", ""), "t2w", True, lambda c, r: None)
    with pytest.raises(ValueError, match="TaskSpec"):
        register_task("classification")
