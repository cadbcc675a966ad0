"""Tests for the provicnet ViT encoder (``transferlimits.models.vit``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from transferlimits.models.output import EncoderOutput
from transferlimits.models.vit import PROVICNET_SIZES, DinoV2ViT, ProViCNetEncoder, build_provicnet

torch.set_num_threads(1)


def _pos(b: int) -> torch.Tensor:
    return torch.stack([torch.arange(b, dtype=torch.float32), torch.full((b,), 20.0)], dim=1)


@pytest.mark.parametrize("size", ["test", "smoke"])
@pytest.mark.parametrize("img_size", [28, 56, 112])
def test_output_shapes_over_config_grid(size, img_size):
    torch.manual_seed(0)
    enc = build_provicnet(size, img_size=img_size)
    dim, depth = PROVICNET_SIZES[size]["embed_dim"], PROVICNET_SIZES[size]["depth"]
    g = img_size // 14
    out = enc.forward_features(torch.randn(2, 3, img_size, img_size), _pos(2))
    assert isinstance(out, EncoderOutput)
    assert out.pooled.shape == (2, dim)
    assert out.tokens.shape == (2, g * g, dim)
    assert len(out.maps) == depth == len(enc.map_names) == len(enc.map_dims)
    assert all(m.shape == (2, dim, g, g) for m in out.maps)
    assert enc.map_names[0] == "block0" and enc.map_names[-1] == f"block{depth - 1}"
    assert enc.out_dim == dim and enc.grid_size == g and enc.input_kind == "slices" and enc.patch_size == 14
    # the last map is the final-norm patch tokens, reshaped row-major
    assert torch.equal(out.maps[-1].flatten(2).transpose(1, 2), out.tokens)


def test_hub_parameter_names_and_shapes():
    enc = build_provicnet("test", img_size=28)
    sd = enc.state_dict()
    c = 24
    assert sd["backbone.pos_embed"].shape == (1, 1 + 37 * 37, c)
    assert sd["backbone.cls_token"].shape == (1, 1, c)
    assert sd["backbone.register_tokens"].shape == (1, 4, c)
    assert sd["backbone.mask_token"].shape == (1, c)
    assert sd["backbone.patch_embed.proj.weight"].shape == (c, 3, 14, 14)
    assert sd["backbone.blocks.0.attn.qkv.weight"].shape == (3 * c, c)
    assert sd["backbone.blocks.0.attn.qkv.bias"].shape == (3 * c,)
    for name in ("norm1.weight", "attn.proj.weight", "ls1.gamma", "norm2.bias", "mlp.fc1.weight", "mlp.fc2.bias",
                 "ls2.gamma"):
        assert f"backbone.blocks.0.{name}" in sd
    assert sd["axis_pos.weight"].shape == (c, 1) and sd["axis_max.bias"].shape == (c,)
    assert enc.backbone.norm.eps == 1e-6 and enc.backbone.blocks[0].norm1.eps == 1e-6


def test_pos_embed_resized_bicubic_antialias_to_grid():
    vit = DinoV2ViT(embed_dim=8, depth=1, num_heads=2)
    pe = vit.interpolate_pos_encoding(4, 4)
    assert pe.shape == (1, 17, 8)
    grid = vit.pos_embed[:, 1:].reshape(1, 37, 37, 8).permute(0, 3, 1, 2)
    ref = F.interpolate(grid, size=(4, 4), mode="bicubic", antialias=True).permute(0, 2, 3, 1).reshape(1, 16, 8)
    torch.testing.assert_close(pe[:, 1:], ref)
    torch.testing.assert_close(pe[:, :1], vit.pos_embed[:, :1])
    # at 518 px the stored embedding is used unchanged
    assert vit.interpolate_pos_encoding(37, 37) is vit.pos_embed


def test_token_layout_slice_tokens_after_registers():
    enc = build_provicnet("test", img_size=28)
    assert enc.n_prefix == 1 + 4 + 2
    x = torch.randn(1, 3, 28, 28)
    pos = torch.tensor([[2.0, 10.0]])
    extra = torch.stack([enc.axis_pos(pos[:, :1]), enc.axis_max(pos[:, 1:])], dim=1)
    seq = enc.backbone.prepare_tokens(x, extra_tokens=extra)
    assert seq.shape == (1, 7 + 4, 24)
    torch.testing.assert_close(seq[:, 1:5], enc.backbone.register_tokens)
    torch.testing.assert_close(seq[:, 5:7], extra)  # no position embedding on the slice tokens


def test_slice_position_changes_output():
    torch.manual_seed(0)
    enc = build_provicnet("test", img_size=28)
    x = torch.randn(1, 3, 28, 28)
    a = enc.forward_features(x, torch.tensor([[1.0, 20.0]])).pooled
    b = enc.forward_features(x, torch.tensor([[15.0, 20.0]])).pooled
    assert not torch.allclose(a, b)


def test_mask_tokens_replace_masked_patch_inputs_only():
    torch.manual_seed(0)
    enc = build_provicnet("test", img_size=28)
    x = torch.randn(1, 3, 28, 28)
    masks = torch.tensor([[True, False, False, False]])
    seq0 = enc.backbone.prepare_tokens(x)
    seq1 = enc.backbone.prepare_tokens(x, masks=masks)
    k = 1 + 4  # cls + registers, no extra tokens here
    assert not torch.allclose(seq0[:, k], seq1[:, k])
    torch.testing.assert_close(seq0[:, k + 1:], seq1[:, k + 1:])
    pe = enc.backbone.interpolate_pos_encoding(2, 2)
    torch.testing.assert_close(seq1[0, k], enc.backbone.mask_token[0] + pe[0, 1])
    # changing the image under the masked patch changes nothing
    x2 = x.clone()
    x2[..., :14, :14] = 5.0
    pos = _pos(1)
    o1 = enc.forward_features(x, pos, masks=masks).tokens
    o2 = enc.forward_features(x2, pos, masks=masks).tokens
    torch.testing.assert_close(o1, o2)
    assert not torch.allclose(enc.forward_features(x2, pos).tokens, o1)


def test_gradients_reach_all_used_parameters():
    enc = build_provicnet("test", img_size=28)
    enc.forward_features(torch.randn(2, 3, 28, 28), _pos(2)).tokens.sum().backward()
    unused = {"backbone.mask_token"}
    for name, p in enc.named_parameters():
        if name not in unused:
            assert p.grad is not None, name


@pytest.mark.parametrize(
    "kwargs",
    [{"img_size": 30}, {"img_size": 0}, {"embed_dim": 25, "num_heads": 2}, {"depth": 0}],
)
def test_bad_construction_arguments(kwargs):
    base = {"img_size": 28, "embed_dim": 24, "depth": 1, "num_heads": 2}
    with pytest.raises(ValueError):
        ProViCNetEncoder(**{**base, **kwargs})


def test_bad_size_name_lists_valid_ones():
    with pytest.raises(ValueError, match="vits14"):
        build_provicnet("huge")


def test_bad_forward_arguments():
    enc = build_provicnet("test", img_size=28)
    x = torch.randn(2, 3, 28, 28)
    with pytest.raises(ValueError, match="pos"):
        enc.forward_features(x, None)
    with pytest.raises(ValueError, match="pos"):
        enc.forward_features(x, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="multiple"):
        enc.forward_features(torch.randn(2, 3, 30, 30), _pos(2))
    with pytest.raises(ValueError, match="x must be"):
        enc.forward_features(torch.randn(2, 1, 28, 28), _pos(2))
    with pytest.raises(ValueError, match="masks"):
        enc.forward_features(x, _pos(2), masks=torch.zeros(2, 5, dtype=torch.bool))
