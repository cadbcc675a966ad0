"""The dense heads' full-resolution output (``models/fullres.py``), the encoder ablation and channels-last.

Facts checked: the heads have no learnable path from the raw input to the output that bypasses the encoder (with
the encoder zeroed, the output does not depend on the input beyond the parameter-free identity residual, and
no gradient reaches a head parameter through the input); the sub-pixel shuffle is the exact 3D depth-to-space;
a residual model starts exactly at its input (the views put a restoration input in its target's units,
tests/test_views_units.py); the factory gives the identity residual to same-modality restoration only; a slice
model takes its up-sampled view back to the target grid exactly; channels-last changes nothing beyond rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferlimits.data.views import _resize_slices, centre_channels, slice_centres, slice_triplets
from transferlimits.models.ablation import ZeroedEncoder
from transferlimits.models.convnext3d import build_profound
from transferlimits.models.fullres import from_view_size, pixel_shuffle_3d, residual_source, resize_to
from transferlimits.models.heads import build_task_model
from transferlimits.models.vit import build_provicnet
from transferlimits.tasks import get_task


def test_residual_source_is_the_detached_input():
    z = torch.randn(2, 4, 6, 6, requires_grad=True)
    src = residual_source(z)
    assert torch.equal(src, z.detach()) and not src.requires_grad


def test_residual_source_rejects_a_flat_input():
    with pytest.raises(ValueError, match="residual_source"):
        residual_source(torch.zeros(5))


def test_pixel_shuffle_3d_is_depth_to_space():
    """Output voxel (d*r + i, h*r + j, w*r + k) of channel c is input channel c*r^3 + i*r^2 + j*r + k at (d, h, w)."""
    r, x = 2, torch.randn(1, 2 * 8, 3, 4, 5)
    y = pixel_shuffle_3d(x, r)
    assert y.shape == (1, 2, 6, 8, 10)
    for c, d, h, w, i, j, k in [(0, 0, 0, 0, 0, 0, 0), (1, 2, 3, 4, 1, 0, 1), (0, 1, 2, 3, 1, 1, 0)]:
        assert y[0, c, d * r + i, h * r + j, w * r + k] == x[0, c * 8 + i * 4 + j * 2 + k, d, h, w]
    with pytest.raises(ValueError, match="pixel_shuffle_3d"):
        pixel_shuffle_3d(torch.zeros(1, 7, 2, 2, 2), 2)


def _model(model: str, task: str, **kw):
    """``model``: a registered name, or ``"<name>-light"``: its light decoder (``models/mlp_decoder3d.py``,
    ``models/token_mlp_head.py``)."""
    torch.manual_seed(0)
    name = model.split("-")[0]
    enc = build_profound("test") if name == "profound" else build_provicnet("test", img_size=56)
    return build_task_model(name, enc, get_task(task), width=8, out_size=(16, 32, 32), full_res=True,
                            residual=True, light=model.endswith("-light"), **kw)


def _inputs(model: str, seed: int):
    g = torch.Generator().manual_seed(seed)
    if model.startswith("profound"):
        x = torch.randn(2, 3, 16, 32, 32, generator=g)
        x[:, 1:] = 0  # a restoration input: one channel, the others zero
        return x, None
    return torch.randn(2, 16, 3, 56, 56, generator=g), torch.rand(2, 16, 2, generator=g)


@pytest.mark.parametrize("task", ["super_resolution", "modality_translation", "segmentation"])
@pytest.mark.parametrize("model", ["profound", "profound-light", "provicnet", "provicnet-light"])
def test_no_learnable_path_bypasses_the_encoder(model, task):
    """Zero the encoder: output - residual is the same for two different inputs, and no head parameter's
    gradient depends on the input (every learnable path goes through the encoder, STUDY §5.1)."""
    net = _model(model, task)
    for p in net.parameters():  # leave the zero-initialised start: random last layers
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.1)
    net.encoder = ZeroedEncoder(net.encoder)
    net.eval()
    residual_on = bool(getattr(net, "residual", False))
    outs, grads = [], []
    for seed in (1, 2):
        x, pos = _inputs(model, seed)
        net.zero_grad()
        out = net(x, pos)
        outs.append(out.detach() - (residual_part(model, net, x, pos) if residual_on else 0))
        out.sum().backward()
        grads.append({n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None})
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=1e-5)
    assert grads[0] and grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-5, atol=1e-6, msg=name)


def residual_part(model: str, net, x, pos):
    """The parameter-free identity residual the model adds (its input in target units, on the target grid)."""
    if model.startswith("profound"):
        return x.sum(1, keepdim=True)
    b, d = x.shape[:2]
    stacks = from_view_size(x.reshape(b * d, *x.shape[2:]), (32, 32))
    own = torch.from_numpy(np.tile(centre_channels(16), b))
    return stacks[torch.arange(b * d), own].reshape(b, d, 32, 32)[:, None]


@pytest.mark.parametrize("task, residual", [("super_resolution", True), ("distortion_correction", True),
                                            ("modality_translation", False), ("segmentation", False)])
@pytest.mark.parametrize("model", ["profound", "profound-light", "provicnet", "provicnet-light"])
def test_factory_gives_the_identity_residual_to_same_modality_restoration_only(model, task, residual):
    assert _model(model, task).residual is residual


@pytest.mark.parametrize("model", ["profound", "provicnet"])
def test_zeroed_encoder_keeps_the_heads_attributes_and_freezes_the_encoder(model):
    net = _model(model, "segmentation")
    inner = net.encoder
    z = ZeroedEncoder(inner)
    assert z.out_dim == inner.out_dim and not any(p.requires_grad for p in z.parameters())
    x, pos = _inputs(model, 0)
    if model == "provicnet":
        x, pos = x.reshape(-1, 3, 56, 56), pos.reshape(-1, 2)
    out = z.forward_features(x, pos) if pos is not None else z.forward_features(x)
    real = inner.forward_features(x, pos) if pos is not None else inner.forward_features(x)
    assert out.pooled.shape == real.pooled.shape and not out.pooled.any()
    assert [m.shape for m in out.maps] == [m.shape for m in real.maps] and not any(m.any() for m in out.maps)


@pytest.mark.parametrize("stages", [1, 2, 4])
def test_channels_last_stages_same_outputs_and_gradients(stages):
    torch.manual_seed(0)
    ref = build_profound("test")
    fast = build_profound("test", channels_last_stages=stages)
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 16, 32, 32)
    outs = []
    for net in (ref, fast):
        maps = net.forward_features(x).maps
        sum((m * torch.linspace(0, 1, m.numel()).reshape(m.shape)).sum() for m in maps).backward()
        outs.append((maps, {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}))
    for a, b in zip(outs[0][0], outs[1][0]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    for name, grad in outs[0][1].items():
        torch.testing.assert_close(outs[1][1][name], grad, rtol=1e-3, atol=1e-5)


def test_channels_last_stages_range():
    with pytest.raises(ValueError, match="channels_last_stages"):
        build_profound("test", channels_last_stages=5)


@pytest.mark.parametrize("model", ["profound", "provicnet"])
def test_residual_model_starts_at_its_residual_source(model):
    torch.manual_seed(0)
    if model == "profound":
        enc, x, pos = build_profound("test"), torch.randn(1, 3, 16, 32, 32), None
        x[:, 1:] = 0  # a restoration input: one channel, the others zero
        src = residual_source(x.sum(1))[:, None]
    else:
        enc, x, pos = build_provicnet("test", img_size=56), torch.randn(1, 16, 3, 56, 56), torch.rand(1, 16, 2)
        src = None
    net = build_task_model(model, enc, get_task("super_resolution"), width=8, out_size=(16, 32, 32), full_res=True,
                           residual=True).eval()
    with torch.no_grad():
        out = net(x, pos)
    if src is None:
        stacks = from_view_size(x[0], (32, 32))  # [16, 3, 32, 32]: each stack's own centre slice
        centre = stacks[torch.arange(16), torch.from_numpy(centre_channels(16))]
        src = residual_source(centre[None])[:, None]
    torch.testing.assert_close(out, src)


@pytest.mark.parametrize("grid,view", [(64, 112), (32, 56), (20, 20)])
def test_from_view_size_undoes_the_views_upsampling(grid, view):
    torch.manual_seed(0)
    native = torch.randn(4, grid, grid)
    up = _resize_slices(native, view)[:, None]  # the views' own resize: [D, 1, S, S]
    torch.testing.assert_close(from_view_size(up, (grid, grid))[:, 0], native, rtol=0, atol=1e-4)


def test_from_view_size_falls_back_to_a_resize_when_the_view_is_smaller():
    x = torch.randn(2, 3, 28, 28)
    torch.testing.assert_close(from_view_size(x, (40, 40)), resize_to(x, (40, 40)))


def test_slice_model_starts_at_the_identity_of_the_target_grid():
    """A residual slice model at init returns the target-grid centre slices (not a blurred 32 -> 56 -> 32 copy)."""
    torch.manual_seed(0)
    native = torch.randn(16, 32, 32)
    view = _resize_slices(native, 56)
    x = view[torch.from_numpy(slice_triplets(16))][None]  # [1, 16, 3, 56, 56]
    pos = torch.stack([torch.arange(16.0), torch.full((16,), 16.0)], 1)[None]
    net = build_task_model("provicnet", build_provicnet("test", img_size=56), get_task("super_resolution"), width=8,
                           out_size=(16, 32, 32), full_res=True, residual=True).eval()
    with torch.no_grad():
        out = net(x, pos)
    torch.testing.assert_close(out[0, 0], native, rtol=0, atol=1e-4)


@pytest.mark.parametrize("depth,step,want", [(5, 1, [0, 1, 1, 1, 2]), (16, 1, [0] + [1] * 14 + [2]),
                                             (9, 3, [0, 1, 2]), (16, 3, [0, 1, 1, 1, 1])])
def test_centre_channels_name_the_slice_nearest_each_stacks_centre(depth, step, want):
    trip, centre = slice_triplets(depth, step), slice_centres(depth, step)
    got = centre_channels(depth, step)
    assert got.tolist() == want
    nearest = np.abs(trip - centre[:, None]).min(1)
    assert (np.abs(trip[np.arange(len(got)), got] - centre) == nearest).all()
    if step == 1:  # every stack holds its own centre
        assert (trip[np.arange(len(got)), got] == centre).all()
