"""The profound encoder: shapes, parameter names, argument checks, masking, layer ids."""

from __future__ import annotations

import pytest
import torch

from transferlimits.models.convnext3d import PROFOUND_SIZES, ConvNeXtV2_3D, GRN3D, build_profound

torch.set_num_threads(1)


@pytest.mark.parametrize(
    "depths,dims,shape",
    [
        ((1, 1, 1, 1), (8, 16, 16, 32), (16, 16, 16)),
        ((1, 1, 2, 1), (8, 8, 16, 24), (16, 32, 48)),
        ((2, 1, 1, 1), (4, 8, 8, 16), (32, 16, 32)),
    ],
)
def test_output_shapes(depths, dims, shape):
    enc = ConvNeXtV2_3D(3, depths, dims)
    out = enc.forward_features(torch.randn(2, 3, *shape))
    assert out.pooled.shape == (2, dims[-1]) and out.tokens is None
    for m, c, s in zip(out.maps, dims, (4, 8, 16, 16)):
        assert m.shape == (2, c, *(d // s for d in shape))
    assert enc.map_dims == list(dims) and enc.map_names == ["stage1", "stage2", "stage3", "stage4"]
    assert enc.input_kind == "volume" and enc.out_dim == dims[-1]


def test_tiny_parameter_names_and_count():
    with torch.device("meta"):
        enc = build_profound("tiny")
    sd = enc.state_dict()
    assert sd["downsample_layers.0.0.weight"].shape == (96, 3, 4, 4, 4)
    assert sd["downsample_layers.3.1.weight"].shape == (768, 384, 1, 1, 1)
    assert sd["downsample_layers.1.0.weight"].shape == (96,)
    assert sd["stages.2.8.dwconv.weight"].shape == (384, 1, 7, 7, 7)
    assert sd["stages.3.2.grn.gamma"].shape == (1, 1, 1, 1, 3072)
    assert sd["stages.0.0.pwconv1.weight"].shape == (384, 96)
    assert sd["norm.weight"].shape == (768,)
    assert not any("gamma" in k and "grn" not in k for k in sd)  # no layer scale
    n = sum(p.numel() for p in enc.parameters())
    assert 28e6 < n < 31e6  # ~29 M (models.md estimate)


def test_sizes_registered():
    assert PROFOUND_SIZES["tiny"] == {"depths": (3, 3, 9, 3), "dims": (96, 192, 384, 768)}
    with pytest.raises(ValueError, match="unknown profound size 'huge'"):
        build_profound("huge")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"depths": (1, 1, 1)}, "depths"),
        ({"dims": (8, 16, 32)}, "dims"),
        ({"depths": (1, 0, 1, 1)}, "depths"),
        ({"in_chans": 0}, "in_chans"),
        ({"drop_path_rate": 1.0}, "drop_path_rate"),
    ],
)
def test_bad_arguments(kwargs, match):
    base = {"depths": (1, 1, 1, 1), "dims": (8, 8, 8, 8)}
    with pytest.raises(ValueError, match=match):
        ConvNeXtV2_3D(**{**base, **kwargs})


@pytest.mark.parametrize("shape", [(2, 3, 16, 16, 24), (2, 2, 16, 16, 16), (3, 16, 16, 16)])
def test_bad_input(shape):
    enc = build_profound("test")
    with pytest.raises(ValueError):
        enc.forward_features(torch.randn(*shape))


def test_grn_matches_definition():
    grn = GRN3D(4)
    torch.nn.init.normal_(grn.gamma)
    torch.nn.init.normal_(grn.beta)
    x = torch.randn(2, 3, 4, 5, 4)
    gx = x.pow(2).sum(dim=(1, 2, 3), keepdim=True).sqrt()
    nx = gx / (gx.mean(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(grn(x), grn.gamma * (x * nx) + grn.beta + x)


def test_keep_mask_zeroes_masked_sites_and_hides_their_content():
    torch.manual_seed(0)
    enc = build_profound("test")
    with torch.no_grad():  # non-trivial GRN, LayerNorm and biases so the test can fail
        for name, p in enc.named_parameters():
            if p.ndim <= 1 or ".grn." in name:
                p.normal_(0.0, 0.5)
    x = torch.randn(1, 3, 32, 32, 32)
    keep = torch.tensor([1.0, 0, 0, 1, 1, 0, 1, 0]).reshape(1, 2, 2, 2)
    maps = enc.forward_stages(x, keep=keep)
    assert torch.all(maps[-1][0, :, 0, 1, 0] == 0)  # a masked cell of stage 4
    x2 = x.clone()
    x2[:, :, 0:16, 0:16, 16:32] = 100 * torch.randn(1, 3, 16, 16, 16)  # the masked patch (0, 0, 1)
    maps2 = enc.forward_stages(x2, keep=keep)
    for a, b in zip(maps, maps2):
        torch.testing.assert_close(a, b)
    unmasked = enc.forward_stages(x2)[-1]
    assert not torch.allclose(unmasked, enc.forward_stages(x)[-1])  # without the mask the content leaks


def test_layer_ids():
    enc = build_profound("smoke")  # depths (1, 1, 2, 1)
    assert enc.num_layers == 5
    assert enc.layer_id("downsample_layers.0.0.weight") == 0
    assert enc.layer_id("stages.0.0.dwconv.weight") == 1
    assert enc.layer_id("downsample_layers.1.1.weight") == 2 == enc.layer_id("stages.1.0.grn.gamma")
    assert enc.layer_id("encoder.stages.2.1.pwconv2.bias") == 4
    assert enc.layer_id("stages.3.0.norm.weight") == 5
    assert enc.layer_id("norm.weight") == 6 == enc.layer_id("head.0.weight")


def test_drop_path_only_in_training():
    enc = ConvNeXtV2_3D(3, (1, 1, 1, 1), (4, 4, 4, 4), drop_path_rate=0.5)
    x = torch.randn(2, 3, 16, 16, 16)
    enc.eval()
    torch.testing.assert_close(enc(x), enc(x))
    enc.train()
    torch.manual_seed(0)
    outs = [enc(x) for _ in range(4)]
    assert any(not torch.allclose(outs[0], o) for o in outs[1:])


def test_channels_last_3d_same_result():
    enc = build_profound("test").eval()
    x = torch.randn(1, 3, 16, 32, 16)
    ref = enc(x)
    enc_cl = enc.to(memory_format=torch.channels_last_3d)
    out = enc_cl(x.contiguous(memory_format=torch.channels_last_3d))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
