"""Registry: encoder construction by name/size, objectives for the 2x2 pairs, load_pretrained."""

from __future__ import annotations

import pytest
import torch

from transferlimits.config import get_profile
from transferlimits.models import EncoderOutput, build_encoder, build_objective, encoder_for_profile, load_pretrained
from transferlimits.models.convnext3d import ConvNeXtV2_3D
from transferlimits.models.fcmae import FCMAE
from transferlimits.models.mae2d import MAE2D

torch.set_num_threads(1)


@pytest.mark.parametrize("name,size,dim", [("profound", "test", 32), ("profound", "smoke", 128),
                                           ("provicnet", "test", 24), ("provicnet", "smoke", 48)])
def test_build_encoder(name, size, dim):
    kw = {"img_size": 28} if name == "provicnet" else {}
    enc = build_encoder(name, size, **kw)
    assert enc.out_dim == dim and len(enc.map_dims) == len(enc.map_names)
    assert enc.input_kind == ("volume" if name == "profound" else "slices")
    if name == "profound":
        out = enc.forward_features(torch.randn(1, 3, 16, 16, 16))
    else:
        out = enc.forward_features(torch.randn(1, 3, 28, 28), torch.tensor([[1.0, 5.0]]))
    assert isinstance(out, EncoderOutput) and out.pooled.shape == (1, dim)


def test_bad_names():
    with pytest.raises(ValueError, match=r"unknown model 'resnet'.*profound.*provicnet"):
        build_encoder("resnet", "tiny")
    with pytest.raises(ValueError, match="unknown profound size"):
        build_encoder("profound", "vits14")
    with pytest.raises(ValueError, match="unknown provicnet size"):
        build_encoder("provicnet", "tiny")
    enc = build_encoder("profound", "test")
    with pytest.raises(ValueError, match=r"unknown objective 'mae' for 'profound'; valid: \['fcmae', 'contrastive'\]"):
        build_objective("profound", "mae", enc)
    with pytest.raises(ValueError, match="unknown model 'unet'"):
        build_objective("unet", "fcmae", enc)


def test_objectives_follow_the_profile():
    prof = get_profile("smoke")
    names = {}
    for model, objective in [("profound", "fcmae"), ("profound", "contrastive"),
                             ("provicnet", "mae"), ("provicnet", "contrastive")]:
        enc = encoder_for_profile(model, prof)
        obj = build_objective(model, objective, enc, prof)
        assert obj.encoder is enc
        names[(model, objective)] = type(obj).__name__
    assert names == {("profound", "fcmae"): "FCMAE", ("profound", "contrastive"): "ConvNeXtContrastive",
                     ("provicnet", "mae"): "MAE2D", ("provicnet", "contrastive"): "ProViCNetContrastive"}
    fc = build_objective("profound", "fcmae", encoder_for_profile("profound", prof), prof)
    assert fc.proj.out_channels == 64 and fc.mask_ratio == prof.pretrain.mask_ratio
    mae = build_objective("provicnet", "mae", encoder_for_profile("provicnet", prof), {"decoder_dim": 16,
                                                                                        "mask_ratio": 0.5})
    assert isinstance(mae, MAE2D) and mae.decoder_embed.out_features == 16 and mae.mask_ratio == 0.5
    loss, _, _ = mae(torch.randn(2, 3, 56, 56), torch.tensor([[0.0, 4.0], [1.0, 4.0]]))
    assert torch.isfinite(loss)
    assert isinstance(build_objective("profound", "fcmae", build_encoder("profound", "test")), FCMAE)


def test_load_pretrained_profound(tmp_path):
    src = build_encoder("profound", "test")
    torch.save(src.state_dict(), tmp_path / "enc.pth")
    enc = load_pretrained("profound", tmp_path / "enc.pth")
    assert isinstance(enc, ConvNeXtV2_3D) and enc.dims == src.dims
    torch.testing.assert_close(enc.norm.weight, src.norm.weight)
    enc, ckpt = load_pretrained("profound", tmp_path / "enc.pth", size="test", return_extras=True)
    assert ckpt.layout == "dense_encoder"
    with pytest.raises(ValueError, match="shape mismatches"):
        load_pretrained("profound", tmp_path / "enc.pth", size="smoke")


def test_load_pretrained_provicnet(tmp_path):
    prof = get_profile("smoke")
    obj = build_objective("provicnet", "contrastive", build_encoder("provicnet", "test", img_size=28), prof)
    sd = dict(obj.encoder.state_dict())  # upstream layout: backbone.*, axis_*, head.*, CL_Head.*
    sd.update({f"head.{k}": v for k, v in obj.head.state_dict().items()})
    sd.update({f"CL_Head.{k}": v for k, v in obj.CL_Head.state_dict().items()})
    torch.save(sd, tmp_path / "T2_best.pth")
    enc, extras = load_pretrained("provicnet", tmp_path / "T2_best.pth", size="test", img_size=28, return_extras=True)
    torch.testing.assert_close(enc.axis_pos.weight, obj.encoder.axis_pos.weight)
    assert "CL_Head" in extras
