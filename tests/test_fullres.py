"""The full-resolution dense-head path (``models/fullres.py``) and the ConvNeXt channels-last option.

Facts checked: the zero-initialised refinement leaves the published head's output unchanged at init (so the
switch only adds capacity), the residual source is the input channel itself (the views put a restoration input in
its target's units, tests/test_views_units.py), the task-model factory gives the residual to regression tasks only, and the
channels-last layout changes neither outputs nor gradients beyond fp32 rounding; a slice model takes its up-sampled
view back to the target grid exactly, so it too starts at the identity baseline.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferlimits.models.convnext3d import build_profound
from transferlimits.data.views import _resize_slices, centre_channels, slice_centres, slice_triplets
from transferlimits.models.fullres import FullResRefine, from_view_size, residual_source, resize_to
from transferlimits.models.heads import SliceDenseModel, build_task_model
from transferlimits.models.upernet3d import UperNet3D
from transferlimits.models.vit import build_provicnet
from transferlimits.tasks import get_task


def test_residual_source_is_the_detached_input():
    z = torch.randn(2, 4, 6, 6, requires_grad=True)
    src = residual_source(z)
    assert torch.equal(src, z.detach()) and not src.requires_grad


def test_residual_source_rejects_a_flat_input():
    with pytest.raises(ValueError, match="residual_source"):
        residual_source(torch.zeros(5))


@pytest.mark.parametrize("residual", [False, True])
def test_refine_is_identity_on_head_at_init(residual):
    torch.manual_seed(0)
    head, skip, src = torch.randn(2, 1, 4, 8, 8), torch.randn(2, 3, 4, 8, 8), torch.randn(2, 1, 4, 8, 8)
    out = FullResRefine(3, 1, 1, width=4, ndim=3, residual=residual)(head, skip, src)
    torch.testing.assert_close(out, head + src if residual else head)


def test_refine_rejects_bad_arguments():
    with pytest.raises(ValueError, match="ndim"):
        FullResRefine(3, 1, 1, ndim=4)
    with pytest.raises(ValueError, match="src"):
        FullResRefine(3, 1, 1, ndim=2, residual=True)(torch.zeros(1, 1, 4, 4), torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="full_res"):
        UperNet3D(build_profound("test"), 1, width=8, aux_channels=4, residual=True)


def test_upernet_full_res_equals_published_head_at_init():
    torch.manual_seed(0)
    plain = UperNet3D(build_profound("test"), 1, width=8, aux_channels=4).eval()
    full = UperNet3D(build_profound("test"), 1, width=8, aux_channels=4, full_res=True).eval()
    missing = full.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("full_res.") for k in missing)
    x = torch.randn(1, 3, 16, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(full(x), plain(x))


def test_slice_model_full_res_equals_published_head_at_init():
    torch.manual_seed(0)
    kw = {"mid": (8, 4), "out_size": (32, 32)}
    plain = SliceDenseModel(build_provicnet("test", img_size=56), 1, **kw).eval()
    full = SliceDenseModel(build_provicnet("test", img_size=56), 1, full_res=True, **kw).eval()
    full.load_state_dict(plain.state_dict(), strict=False)
    x, pos = torch.randn(2, 5, 3, 56, 56), torch.rand(2, 5, 2)
    with torch.no_grad():
        torch.testing.assert_close(full(x, pos), plain(x, pos))


@pytest.mark.parametrize("task, residual", [("super_resolution", True), ("modality_translation", True),
                                            ("segmentation", False)])
@pytest.mark.parametrize("model", ["profound", "provicnet"])
def test_factory_gives_residual_to_regression_only(model, task, residual):
    enc = build_profound("test") if model == "profound" else build_provicnet("test", img_size=56)
    net = build_task_model(model, enc, get_task(task), width=8, out_size=(16, 32, 32), full_res=True, residual=True)
    assert net.full_res is not None and net.full_res.residual is residual
    assert build_task_model(model, enc, get_task(task), width=8, out_size=(16, 32, 32)).full_res is None


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
