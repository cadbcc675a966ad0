"""Loader for released ProViCNet state dicts (``transferlimits.models.checkpoints_provicnet``).

The state dicts are written here by hand with the upstream key names of ``ProViCNet_contrastive``
(``reference/models.md`` §2.5), independent of this project's module definitions.
"""

from __future__ import annotations

import pytest
import torch

from transferlimits.models.checkpoints_provicnet import (
    CheckpointError,
    load_provicnet_checkpoint,
    load_provicnet_state_dict,
    provicnet_head_config,
)
from transferlimits.models.contrastive import ProViCNetContrastive

torch.set_num_threads(1)


def upstream_state_dict(
    dim=384, depth=12, mlp=1536, n_classes=4, mid=(128, 64), cl=(2048, 256, 65536), legacy_wn=True, device="meta"
) -> dict[str, torch.Tensor]:
    """Upstream key names and shapes; ``device="meta"`` keeps full-size dicts free."""

    def t(*shape, dtype=torch.float32):
        if dtype.is_floating_point and device != "meta":
            return torch.randn(shape, device=device)
        return torch.zeros(shape, dtype=dtype, device=device)

    sd = {
        "backbone.cls_token": t(1, 1, dim),
        "backbone.pos_embed": t(1, 1370, dim),
        "backbone.register_tokens": t(1, 4, dim),
        "backbone.mask_token": t(1, dim),
        "backbone.patch_embed.proj.weight": t(dim, 3, 14, 14),
        "backbone.patch_embed.proj.bias": t(dim),
        "backbone.norm.weight": t(dim),
        "backbone.norm.bias": t(dim),
        "axis_pos.weight": t(dim, 1),
        "axis_pos.bias": t(dim),
        "axis_max.weight": t(dim, 1),
        "axis_max.bias": t(dim),
    }
    for i in range(depth):
        p = f"backbone.blocks.{i}."
        sd.update({
            p + "norm1.weight": t(dim), p + "norm1.bias": t(dim),
            p + "attn.qkv.weight": t(3 * dim, dim), p + "attn.qkv.bias": t(3 * dim),
            p + "attn.proj.weight": t(dim, dim), p + "attn.proj.bias": t(dim),
            p + "ls1.gamma": t(dim),
            p + "norm2.weight": t(dim), p + "norm2.bias": t(dim),
            p + "mlp.fc1.weight": t(mlp, dim), p + "mlp.fc1.bias": t(mlp),
            p + "mlp.fc2.weight": t(dim, mlp), p + "mlp.fc2.bias": t(dim),
            p + "ls2.gamma": t(dim),
        })
    chans = [(1, dim, mid[0]), (5, mid[0], mid[1]), (9, mid[1], n_classes)]
    for idx, cin, cout in chans:
        sd[f"head.segmentation_conv.{idx}.weight"] = t(cout, cin, 3, 3)
        sd[f"head.segmentation_conv.{idx}.bias"] = t(cout)
    for idx, c in [(2, mid[0]), (6, mid[1])]:
        for name in ("weight", "bias", "running_mean", "running_var"):
            sd[f"head.segmentation_conv.{idx}.{name}"] = t(c)
        sd[f"head.segmentation_conv.{idx}.num_batches_tracked"] = t(dtype=torch.int64)
    hidden, bottleneck, out = cl
    for idx, cin, cout in [(0, dim, hidden), (2, hidden, hidden), (4, hidden, bottleneck)]:
        sd[f"CL_Head.mlp.{idx}.weight"] = t(cout, cin)
        sd[f"CL_Head.mlp.{idx}.bias"] = t(cout)
    g_name, v_name = ("weight_g", "weight_v") if legacy_wn else (
        "parametrizations.weight.original0", "parametrizations.weight.original1")
    sd[f"CL_Head.last_layer.{g_name}"] = t(out, 1)
    sd[f"CL_Head.last_layer.{v_name}"] = t(out, bottleneck)
    return sd


@pytest.mark.parametrize("legacy_wn", [True, False])
def test_full_size_upstream_keys_load(legacy_wn):
    sd = upstream_state_dict(legacy_wn=legacy_wn)
    assert sd["backbone.blocks.0.attn.qkv.weight"].shape == (1152, 384)
    encoder, extras = load_provicnet_state_dict(sd, size="vits14", img_size=448)
    assert encoder.backbone.pos_embed.shape == (1, 1370, 384)  # kept at 518 px size
    assert encoder.grid_size == 32 and len(encoder.backbone.blocks) == 12
    assert extras["CL_Head"]["last_layer.parametrizations.weight.original1"].shape == (65536, 256)
    assert extras["CL_Head"]["last_layer.parametrizations.weight.original0"].shape == (65536, 1)
    assert "segmentation_conv.9.weight" in extras["head"]
    assert extras["report"] == {"missing": [], "unexpected": [], "mismatched": []}
    assert provicnet_head_config(extras) == {"n_classes": 4, "head_mid": (128, 64), "cl_dims": (2048, 256, 65536)}


def _small(**kw):
    return upstream_state_dict(dim=24, depth=1, mlp=96, mid=(8, 6), cl=(16, 8, 32), device="cpu", **kw)


@pytest.mark.parametrize("legacy_wn", [True, False])
def test_file_roundtrip_values_and_extras(tmp_path, legacy_wn):
    sd = _small(legacy_wn=legacy_wn)
    path = tmp_path / "T2_best.pth"
    torch.save(sd, path)
    encoder, extras = load_provicnet_checkpoint(path, size="test", img_size=28)
    torch.testing.assert_close(encoder.backbone.blocks[0].attn.qkv.weight, sd["backbone.blocks.0.attn.qkv.weight"])
    torch.testing.assert_close(encoder.axis_max.weight, sd["axis_max.weight"])
    model = ProViCNetContrastive(encoder, **provicnet_head_config(extras))
    model.load_extras(extras)
    v_key = "CL_Head.last_layer." + ("weight_v" if legacy_wn else "parametrizations.weight.original1")
    torch.testing.assert_close(model.CL_Head.last_layer.parametrizations.weight.original1, sd[v_key])
    torch.testing.assert_close(model.head.segmentation_conv[6].running_var, sd["head.segmentation_conv.6.running_var"])
    out = encoder.forward_features(torch.randn(1, 3, 28, 28), torch.tensor([[1.0, 4.0]]))
    assert out.tokens.shape == (1, 4, 24)
    assert encoder.backbone.pos_embed.requires_grad


def test_wrong_key_is_named():
    sd = upstream_state_dict()
    sd["backbone.blocks.3.attn.qkvv.weight"] = sd.pop("backbone.blocks.3.attn.qkv.weight")
    with pytest.raises(CheckpointError) as err:
        load_provicnet_state_dict(sd)
    assert "backbone.blocks.3.attn.qkv.weight" in str(err.value)  # missing
    assert "backbone.blocks.3.attn.qkvv.weight" in str(err.value)  # unexpected


def test_wrong_shape_is_named():
    sd = upstream_state_dict()
    sd["backbone.blocks.7.mlp.fc1.weight"] = torch.empty(1024, 384, device="meta")
    with pytest.raises(CheckpointError, match=r"backbone\.blocks\.7\.mlp\.fc1\.weight.*\(1024, 384\).*\(1536, 384\)"):
        load_provicnet_state_dict(sd)


def test_missing_head_key_is_named_and_non_strict_reports():
    sd = _small()
    del sd["CL_Head.mlp.2.bias"]
    sd["stray.key"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"CL_Head\.mlp\.2\.bias"):
        load_provicnet_state_dict(sd, size="test", img_size=28)
    _, extras = load_provicnet_state_dict(sd, size="test", img_size=28, strict=False)
    assert "CL_Head.mlp.2.bias" in extras["report"]["missing"]
    assert "stray.key" in extras["report"]["unexpected"]


def test_wrong_size_for_checkpoint_is_an_error():
    with pytest.raises(CheckpointError, match="pos_embed"):
        load_provicnet_state_dict(upstream_state_dict(), size="smoke")


def test_fusion_file_is_rejected_clearly(tmp_path):
    fusion = {
        "Stream_T2W.UpsampleModule.1.weight": torch.zeros(2, 2, 3, 3),
        "FusionSegmentation.1.weight": torch.zeros(2, 2, 3, 3),
    }
    path = tmp_path / "mpMRI_Fusion_best.pth"
    torch.save(fusion, path)
    with pytest.raises(CheckpointError, match="fusion"):
        load_provicnet_checkpoint(path)


def test_missing_file_and_non_dict():
    with pytest.raises(FileNotFoundError):
        load_provicnet_checkpoint("/nonexistent/T2_best.pth")
    with pytest.raises(CheckpointError):
        load_provicnet_state_dict([1, 2, 3])


def test_pickled_objects_are_refused(tmp_path):
    import argparse

    path = tmp_path / "pickled.pth"
    torch.save({"args": argparse.Namespace(a=1), **_small()}, path)
    with pytest.raises(Exception, match="(?i)weights_only|unsupported global"):
        load_provicnet_checkpoint(path, size="test", img_size=28)
