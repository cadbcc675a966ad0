"""The displacement-field output (``models/warp.py``) and the heads that use it (distortion correction, issue 23).

Facts checked: the warp of a known shift or field reproduces SciPy's linear resampling (an independent
implementation) and the Jacobian factor is NumPy's gradient; the expected warp is SciPy's Gaussian blur then shift,
mixed linearly between blur levels; a zero field is the identity exactly; the gradient
reaches the field; the distortion task selects the warp through its kind, translation cannot; both heads start at
the identity baseline; with the encoder zeroed the field is one constant that does not depend on the input (the
ablated run is the identity baseline shifted by a learned constant), and no head parameter sees the raw image.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import ndimage

from transferlimits.data.degrade import PE_AXIS
from transferlimits.models.ablation import ZeroedEncoder
from transferlimits.models.convnext3d import build_profound
from transferlimits.models.heads import build_task_model
from transferlimits.models.vit import build_provicnet
from transferlimits.models.warp import (
    apply_warp,
    expected_warp,
    gaussian_along,
    jacobian_factor,
    replicate_padding,
    warp_along,
)
from transferlimits.tasks import get_kind, get_task
from transferlimits.tasks.registry import TaskSpec

SHAPE = (6, 20, 12)


def _scipy_warp(vol: np.ndarray, u: np.ndarray, axis: int) -> np.ndarray:
    coords = list(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in vol.shape], indexing="ij"))
    coords[axis] = coords[axis] + u
    return ndimage.map_coordinates(vol.astype(np.float64), coords, order=1, mode="nearest")


@pytest.mark.parametrize("shift", [1.0, -2.5, 0.3])
def test_constant_shift_is_scipy_shift(shift):
    """output(x) = src(x + s): scipy.ndimage.shift by -s (linear, edges repeated)."""
    vol = np.random.default_rng(0).standard_normal(SHAPE)
    out = warp_along(torch.from_numpy(vol), torch.full(SHAPE, shift, dtype=torch.float64), axis=1)
    ref = ndimage.shift(vol, (0, -shift, 0), order=1, mode="nearest")
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-10)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_smooth_field_with_jacobian_is_scipy_and_numpy_gradient(axis):
    rng = np.random.default_rng(1)
    vol = rng.standard_normal(SHAPE)
    u = ndimage.gaussian_filter(rng.standard_normal(SHAPE), 2) * 8
    out = apply_warp(torch.from_numpy(vol), torch.from_numpy(u), axis)
    ref = _scipy_warp(vol, u, axis) * np.clip(1 + np.gradient(u, axis=axis), 0.05, None)
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-10)
    no_jac = apply_warp(torch.from_numpy(vol), torch.from_numpy(u), axis, jacobian=False)
    np.testing.assert_allclose(no_jac.numpy(), _scipy_warp(vol, u, axis), atol=1e-10)


def test_zero_field_is_the_identity_exactly():
    src = torch.randn(2, *SHAPE)
    assert torch.equal(apply_warp(src, torch.zeros_like(src), -2), src)
    assert torch.equal(jacobian_factor(torch.zeros(SHAPE), 1), torch.ones(SHAPE))


def test_gradient_reaches_the_field():
    src = torch.randn(SHAPE, dtype=torch.float64)
    u = torch.full(SHAPE, 0.4, dtype=torch.float64, requires_grad=True)
    apply_warp(src, u, 1).square().sum().backward()
    assert u.grad is not None and u.grad.abs().sum() > 0
    # finite difference of one voxel's displacement (interior, away from the grid points)
    v = u.detach().clone()
    g = torch.zeros(SHAPE, dtype=torch.float64)
    g[2, 7, 3] = 1e-6
    fd = (apply_warp(src, v + g, 1).square().sum() - apply_warp(src, v - g, 1).square().sum()) / 2e-6
    assert abs(float(fd) - float(u.grad[2, 7, 3])) < 1e-6 * max(1.0, abs(float(fd)))


def test_warp_rejects_bad_arguments():
    with pytest.raises(ValueError, match="same shape"):
        warp_along(torch.zeros(3, 4), torch.zeros(3, 5), 1)
    with pytest.raises(ValueError, match="axis"):
        warp_along(torch.zeros(3, 4), torch.zeros(3, 4), 2)
    with pytest.raises(ValueError, match=">= 2"):
        warp_along(torch.zeros(3, 1), torch.zeros(3, 1), 1)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_gaussian_along_is_scipy_gaussian_filter1d(sigma):
    vol = np.random.default_rng(2).standard_normal(SHAPE)
    out = gaussian_along(torch.from_numpy(vol), sigma, 1).numpy()
    np.testing.assert_allclose(out, ndimage.gaussian_filter1d(vol, sigma, axis=1, mode="nearest", truncate=3.0),
                               atol=1e-12)


def test_expected_warp_blurs_then_shifts_and_interpolates_the_levels():
    """SD on a level = scipy blur then shift; SD between two levels = their linear mix; SD 0 = the sharp warp."""
    vol = np.random.default_rng(3).standard_normal(SHAPE)
    src, u = torch.from_numpy(vol), torch.full(SHAPE, 1.5, dtype=torch.float64)
    blur = {s: ndimage.gaussian_filter1d(vol, s, axis=1, mode="nearest", truncate=3.0) for s in (0.5, 1.0)}
    shifted = {s: ndimage.shift(b, (0, -1.5, 0), order=1, mode="nearest") for s, b in blur.items()}
    np.testing.assert_allclose(expected_warp(src, u, torch.full(SHAPE, 1.0, dtype=torch.float64), 1).numpy(),
                               shifted[1.0], atol=1e-10)
    mix = expected_warp(src, u, torch.full(SHAPE, 0.7, dtype=torch.float64), 1).numpy()
    np.testing.assert_allclose(mix, 0.6 * shifted[0.5] + 0.4 * shifted[1.0], atol=1e-10)
    assert torch.equal(expected_warp(src, u, torch.zeros(SHAPE, dtype=torch.float64), 1), apply_warp(src, u, 1))
    sd = torch.zeros(SHAPE, dtype=torch.float64, requires_grad=True)  # the SD learns from zero
    expected_warp(src, torch.zeros_like(u), sd, 1).square().sum().backward()
    assert sd.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="sigmas"):
        expected_warp(src, u, u, 1, sigmas=(0.5, 1.0))


def test_replicate_padding_keeps_a_constant_map_constant():
    conv = torch.nn.Conv2d(2, 3, 3, padding=1)
    x = torch.full((1, 2, 5, 5), 0.7)
    assert conv(x)[0, 0].std() > 0  # zero padding: a border effect
    out = replicate_padding(conv)(x)
    assert torch.allclose(out, out[..., :1, :1].expand_as(out))


def test_the_distortion_task_selects_the_warp_through_its_kind():
    kind = get_kind("regression")
    assert kind.warp_output(get_task("distortion_correction")) == (PE_AXIS, True, True)
    assert kind.warp_output(replace(get_task("distortion_correction"), dense_output="warp")) == (PE_AXIS, True, False)
    assert kind.warp_output(get_task("super_resolution")) is None
    base = dict(kind="regression", out_channels=1, primary_metric="mae", higher_is_better=False, metrics=("mae",),
                channel_inputs=("t2w", "", ""), single_input="t2w", uses_labels=False, make_sample=lambda c, r: None)
    with pytest.raises(ValueError, match="target_unit"):  # a translation target cannot be a warp of its input
        TaskSpec("x", target_unit=1000.0, dense_output="warp", **base)
    with pytest.raises(ValueError, match="dense_output"):
        TaskSpec("x", dense_output="swirl", **base)
    with pytest.raises(ValueError, match="dense_output"):
        TaskSpec("x", **{**base, "kind": "segmentation", "out_channels": 2, "metrics": ("mae",)}, dense_output="warp")


#: the dense heads under test: each model's published head and its light decoder
MODELS = ["profound", "profound-light", "provicnet", "provicnet-light"]


def _net(model: str, output: str = "warp"):
    torch.manual_seed(0)
    name = model.split("-")[0]
    enc = build_profound("test") if name == "profound" else build_provicnet("test", img_size=56)
    spec = replace(get_task("distortion_correction"), dense_output=output)
    return build_task_model(name, enc, spec, width=8, out_size=(16, 32, 32), full_res=True, residual=True,
                            light=model.endswith("-light"))


def _inputs(model: str, seed: int):
    g = torch.Generator().manual_seed(seed)
    if model.startswith("profound"):
        x = torch.randn(2, 3, 16, 32, 32, generator=g)
        x[:, [0, 2]] = 0  # the hbv channel only
        return x, None
    return torch.randn(2, 16, 3, 56, 56, generator=g), torch.rand(2, 16, 2, generator=g)


def _fields(net, model: str):
    """Hook that records the head's displacement field [N, *grid] of each forward pass."""
    seen: list[torch.Tensor] = []
    layer = {"profound": lambda: net.decode_head, "profound-light": lambda: net.field,
             "provicnet": lambda: net.head, "provicnet-light": lambda: net.head}[model]()
    layer.register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
    return seen


@pytest.mark.parametrize("output", ["warp", "warp_blur"])
@pytest.mark.parametrize("model", MODELS)
def test_a_new_warp_model_is_the_identity(model, output):
    net = _net(model, output).eval()
    assert net.warp_blur == (output == "warp_blur")
    assert net.warp_axis == PE_AXIS
    x, pos = _inputs(model, 1)
    out = net(x, pos)[:, 0]
    if model.startswith("profound"):
        assert torch.equal(out, x.sum(1))
    else:  # the centre slices taken back to the 32 x 32 target grid
        with torch.no_grad():
            net.warp_axis = None  # the same model as an additive residual head with a zero correction
            assert torch.allclose(out, net(x, pos)[:, 0], atol=1e-6)


@pytest.mark.parametrize("output", ["warp", "warp_blur"])
@pytest.mark.parametrize("model", MODELS)
def test_ablated_field_is_one_constant_independent_of_the_input(model, output):
    """Zero the encoder, randomise the head: the field (and its SD) is spatially constant and the same for two
    inputs; the output is the input shifted (and blurred) by those constants."""
    net = _net(model, output)
    for p in net.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.1)
    net.encoder = ZeroedEncoder(net.encoder)
    net.eval()
    seen = _fields(net, model)
    for seed in (1, 2):
        x, pos = _inputs(model, seed)
        net(x, pos)
    a, b = seen
    assert torch.equal(a, b)
    for c in range(a.shape[1]):  # each channel one constant
        ch = a[:, c]
        assert float(ch.std()) < 1e-5 * max(1.0, float(ch.abs().max())) and float(ch.abs().max()) > 1e-3
    if model.startswith("profound"):
        shift, sd = float(a[0, 0].flatten()[0]), (float(a[0, 1].flatten()[0]) if output == "warp_blur" else 0.0)
        x, _ = _inputs(model, 3)
        src = x.sum(1).numpy().astype(np.float64)
        ref = ndimage.shift(src, (0, 0, -shift, 0), order=1, mode="nearest")
        out = net(x)[:, 0].detach().numpy()
        if output == "warp":
            np.testing.assert_allclose(out, ref, atol=1e-4)
        else:  # blurred: the SD is clamped to [0, 3]; a constant-SD blur of the shifted input
            levels = expected_warp(torch.from_numpy(src), torch.full(src.shape, shift, dtype=torch.float64),
                                   torch.full(src.shape, sd, dtype=torch.float64), 2).numpy()
            np.testing.assert_allclose(out, levels, atol=1e-4)


@pytest.mark.parametrize("output", ["warp", "warp_blur"])
@pytest.mark.parametrize("model", MODELS)
def test_no_head_parameter_sees_the_raw_image(model, output):
    """Every module outside the encoder that holds parameters receives tensors that are not the input (or the
    view of it the warp resamples): the raw image reaches the output through the parameter-free warp only."""
    net = _net(model, output).eval()
    x, pos = _inputs(model, 4)
    raw = [x, x.sum(1)] if model.startswith("profound") else [x, x.flatten(0, 1)]
    fed: list[tuple[str, torch.Tensor]] = []
    for name, m in net.named_modules():
        if name and not name.startswith("encoder") and any(True for _ in m.parameters(recurse=False)):
            m.register_forward_pre_hook(lambda mod, args, n=name: fed.extend((n, a) for a in args
                                                                            if isinstance(a, torch.Tensor)))
    net(x, pos)
    assert fed
    for name, t in fed:
        for r in raw:
            assert not (t.shape == r.shape and torch.equal(t, r)), f"{name} receives the raw input"
