"""Task heads: output shapes for both encoders x every task kind, ProFound key layouts, bad arguments."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from transferlimits.models.convnext3d import build_profound
from transferlimits.models.heads import Classifier, SliceDenseModel, UperNet3D, build_task_model, encode_pooled
from transferlimits.models.vit import build_provicnet

torch.set_num_threads(1)

B, D, H, S = 2, 16, 32, 28

UPERNET_KEYS = (
    [f"hidden_norm.{i}.{p}" for i in range(4) for p in ("weight", "bias")]
    + [f"decode_head.psp_modules.{i}.1.{m}" for i in range(4)
       for m in ("conv.weight", "batch_norm.weight", "batch_norm.bias")]
    + [f"decode_head.{n}.{m}" for n in ("bottleneck",) + tuple(f"lateral_convs.{i}" for i in range(3))
       + tuple(f"fpn_convs.{i}" for i in range(3)) + ("fpn_bottleneck",)
       for m in ("conv.weight", "batch_norm.weight", "batch_norm.bias")]
    + ["decode_head.classifier.weight", "decode_head.classifier.bias"]
    + [f"auxiliary_head.convs.0.{m}" for m in ("conv.weight", "batch_norm.weight", "batch_norm.bias")]
    + ["auxiliary_head.classifier.weight", "auxiliary_head.classifier.bias"]
)


def _spec(kind: str, out_channels: int = 1):
    return SimpleNamespace(name=f"t_{kind}", kind=kind, out_channels=out_channels)


def _inputs(model: str):
    if model == "profound":
        return build_profound("test"), torch.randn(B, 3, D, H, H), None
    pos = torch.stack([torch.arange(D).float(), torch.full((D,), float(D))], 1).expand(B, D, 2)
    return build_provicnet("test", img_size=S), torch.randn(B, D, 3, S, S), pos


@pytest.mark.parametrize("model", ["profound", "provicnet"])
@pytest.mark.parametrize("kind,out_channels,expected", [
    ("classification", 4, (B, 4)),
    ("segmentation", 2, (B, 1, D, H, H)),
    ("regression", 1, (B, 1, D, H, H)),
    ("scalar_regression", 1, (B,)),
])
def test_output_shapes(model, kind, out_channels, expected):
    enc, x, pos = _inputs(model)
    net = build_task_model(model, enc, _spec(kind, out_channels), width=8, out_size=(D, H, H)).eval()
    with torch.no_grad():
        out = net(x, pos)
    assert tuple(out.shape) == expected
    assert torch.isfinite(out).all()


def test_upernet_key_layout_matches_profound():
    net = UperNet3D(build_profound("test"), out_channels=1, width=8, aux_channels=4)
    head_keys = [k for k in net.state_dict() if not k.startswith("encoder.")]
    assert sorted(head_keys) == sorted(UPERNET_KEYS)
    # conv modules have no bias; "batch_norm" is a LayerNorm (no running statistics)
    assert not any(k.endswith("conv.bias") or "running_mean" in k for k in head_keys)
    assert net.decode_head.psp_modules[0][0].__class__.__name__ == "AdaptiveAvgPool3d"


def test_upernet_aux_only_in_training_and_default_width():
    net = UperNet3D(build_profound("test"), out_channels=1)
    assert net.decode_head.classifier.in_channels == 512 and net.auxiliary_head.classifier.in_channels == 256
    x = torch.randn(B, 3, D, H, H)
    main, aux = net.train()(x)
    assert main.shape == aux.shape == (B, 1, D, H, H)
    assert isinstance(net.eval()(x), torch.Tensor)


def test_classifier_key_layout():
    keys = set(Classifier(build_profound("test"), 4).state_dict())
    assert {"head.0.weight", "head.1.running_mean", "head.1.weight", "head.3.weight", "head.3.bias"} <= keys
    assert all(k.startswith(("encoder.", "head.")) for k in keys)


def test_slice_pooling_is_mean_over_slices():
    enc, x, pos = _inputs("provicnet")
    enc.eval()
    with torch.no_grad():
        got = encode_pooled(enc, x, pos)
        per_slice = enc.forward_features(x[0], pos[0]).pooled.mean(0)
    torch.testing.assert_close(got[0], per_slice, atol=1e-5, rtol=1e-5)


def test_bad_arguments():
    enc = build_profound("test")
    with pytest.raises(ValueError, match="unknown model"):
        build_task_model("resnet", enc, _spec("classification", 4))
    with pytest.raises(ValueError, match="unknown task kind"):
        build_task_model("profound", enc, _spec("detection"))
    with pytest.raises(ValueError, match="binary segmentation"):
        build_task_model("profound", enc, _spec("segmentation", 3))
    with pytest.raises(ValueError, match="slice encoder"):
        SliceDenseModel(enc, 1)
    with pytest.raises(ValueError, match="out_channels"):
        UperNet3D(enc, 0)
    vit, x, pos = _inputs("provicnet")
    with pytest.raises(ValueError, match="pos"):
        build_task_model("provicnet", vit, _spec("classification", 4))(x, None)


def test_slice_step_stacks_map_back_onto_every_slice():
    """Reference profile: stacks centred on every 3rd slice (ProViCNet's native 3 mm on a 1 mm grid).
    The head's per-stack outputs must land on their centre slices and be interpolated in between."""
    import torch

    from transferlimits.data.views import slice_centres, slice_triplets
    from transferlimits.models.heads import slices_to_grid

    assert slice_centres(9, 3).tolist() == [1, 4, 7]
    trip = slice_triplets(9, 3)
    assert trip.tolist() == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]  # edge windows shifted inward
    assert slice_triplets(9, 1).shape == (9, 3)
    out = torch.tensor([10.0, 40.0, 70.0]).view(1, 1, 3, 1, 1)  # values at centres 1, 4, 7
    grid = slices_to_grid(out, 9, 3).flatten().tolist()
    assert grid[1] == 10.0 and grid[4] == 40.0 and grid[7] == 70.0
    assert grid[2] == 20.0 and grid[0] == 10.0 and grid[8] == 70.0  # linear in between, constant outside


def test_slice_dense_model_with_step_returns_the_full_depth():
    import torch

    from transferlimits.data.tasks import get_task
    from transferlimits.models import build_encoder
    from transferlimits.models.heads import build_task_model

    torch.manual_seed(0)
    enc = build_encoder("provicnet", "test", img_size=28)
    net = build_task_model("provicnet", enc, get_task("super_resolution"), width=8, out_size=(9, 16, 16),
                           slice_step=3).eval()
    x, pos = torch.randn(2, 3, 3, 28, 28), torch.zeros(2, 3, 2)
    with torch.no_grad():
        assert net(x, pos).shape == (2, 1, 9, 16, 16)
