"""Units of regression targets in the model views (``data.views.target_units``).

Facts checked against independent NumPy computations on synthetic samples: a same-modality restoration target is
the z-score of its INPUT over the body mask, the channel view's input channel is then exactly the identity
baseline's prediction (so a residual head starts at the identity baseline), the units do not change when a case's
intensities get an arbitrary gain and offset (what the model cannot see, the target does not depend on), and a
translation target is in its fixed physical unit, independent of the input.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from transferlimits.data.views import channel_view, stack_view, target_units
from transferlimits.models.fullres import residual_source
from transferlimits.models.convnext3d import build_profound
from transferlimits.models.heads import build_task_model
from transferlimits.tasks import get_task
from transferlimits.tasks.registry import TaskSample

SHAPE = (16, 16, 16)


def _sample(task: str, gain: float = 1.0, offset: float = 0.0, seed: int = 0) -> TaskSample:
    """A synthetic sample of ``task``: a positive input, a target near it, a body mask smaller than the crop."""
    spec, rng = get_task(task), np.random.default_rng(seed)
    body = np.zeros(SHAPE, np.uint8)
    body[2:14, 2:14, 3:13] = 1
    x = rng.gamma(4.0, 50.0, SHAPE).astype(np.float32) * (0.2 + body)
    target = (x + rng.normal(0, 20.0, SHAPE)).astype(np.float32)
    if task == "modality_translation":
        target = rng.uniform(800, 3000, SHAPE).astype(np.float32)  # ADC, 1e-6 mm^2/s
    else:
        target = gain * target + offset
    inputs = {name: gain * x + offset for name in {spec.single_input, *[n for n in spec.channel_inputs if n]}}
    gland = body.copy()
    gland[:, :6] = 0
    return TaskSample(inputs, target, {"body": body, "gland": gland}, "case0")


@pytest.mark.parametrize("task", ["super_resolution", "distortion_correction"])
def test_restoration_target_is_the_input_z_score_over_the_body(task):
    spec, s = get_task(task), _sample(task)
    b = s.masks["body"] > 0
    x = s.inputs[spec.single_input]
    mean, sd = float(np.mean(x[b], dtype=np.float64)), float(np.std(x[b], dtype=np.float64))
    item = channel_view(s, spec)
    np.testing.assert_allclose(item["y"].numpy(), (s.target - mean) / sd, rtol=1e-4, atol=1e-4)
    assert (item["offset"], item["scale"]) == pytest.approx((mean, sd), rel=1e-4)


@pytest.mark.parametrize("task", ["super_resolution", "distortion_correction"])
def test_channel_input_is_the_identity_prediction(task):
    spec, s = get_task(task), _sample(task)
    offset, scale = target_units(s, spec)
    identity = (s.inputs[spec.single_input] - offset) / scale
    x = channel_view(s, spec)["x"]
    chan = list(spec.channel_inputs).index(spec.single_input)
    np.testing.assert_allclose(x[chan].numpy(), identity, rtol=1e-5, atol=1e-5)
    assert torch.count_nonzero(x.sum(0) - x[chan]) == 0  # the other channels are zero: the residual source


def test_residual_model_starts_at_the_identity_baseline():
    torch.manual_seed(0)
    spec, s = get_task("super_resolution"), _sample("super_resolution")
    item = channel_view(s, spec)
    offset, scale = target_units(s, spec)
    net = build_task_model("profound", build_profound("test"), spec, width=8, out_size=SHAPE, full_res=True,
                           residual=True).eval()
    with torch.no_grad():
        out = net(item["x"][None])[0, 0]
    np.testing.assert_allclose(out.numpy(), (s.inputs["t2w_degraded"] - offset) / scale, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(residual_source(item["x"].sum(0, keepdim=True)), item["x"][:1].sum(0, keepdim=True))


@pytest.mark.parametrize("task", ["super_resolution", "distortion_correction"])
@pytest.mark.parametrize("gain, offset", [(3.0, 0.0), (0.5, 40.0)])
def test_units_do_not_depend_on_a_case_gain(task, gain, offset):
    spec = get_task(task)
    a, b = channel_view(_sample(task), spec), channel_view(_sample(task, gain, offset), spec)
    torch.testing.assert_close(a["y"], b["y"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(a["x"], b["x"], rtol=1e-4, atol=1e-4)
    sa, sb = stack_view(_sample(task), spec, 16), stack_view(_sample(task, gain, offset), spec, 16)
    torch.testing.assert_close(sa["x"], sb["x"], rtol=1e-4, atol=1e-4)


def test_translation_target_is_in_its_fixed_unit():
    spec = get_task("modality_translation")
    a, b = _sample("modality_translation"), _sample("modality_translation", gain=4.0)
    ya, yb = channel_view(a, spec)["y"], channel_view(b, spec)["y"]
    np.testing.assert_allclose(ya.numpy(), a.target / 1000.0, rtol=1e-6)
    torch.testing.assert_close(ya, yb)  # the T2W gain does not enter the ADC target
    assert target_units(a, spec) == (0.0, 1000.0)


def test_stack_view_of_a_restoration_task_uses_the_body_z_score():
    spec, s = get_task("super_resolution"), _sample("super_resolution")
    offset, scale = target_units(s, spec)
    x = stack_view(s, spec, SHAPE[1])["x"]  # slice size = grid: no resize
    np.testing.assert_allclose(x[3, 1].numpy(), (s.inputs["t2w_degraded"][3] - offset) / scale, rtol=1e-4, atol=1e-4)


def test_non_regression_and_bad_unit():
    assert target_units(_sample("super_resolution"), get_task("segmentation")) == (0.0, 1.0)
    with pytest.raises(ValueError, match="target_unit"):
        dataclasses.replace(get_task("modality_translation"), target_unit=0.0)
