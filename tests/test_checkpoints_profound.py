"""ProFound checkpoint loading: layouts, sparse->dense remapping, strict errors, pickled Namespace."""

from __future__ import annotations

import argparse
import itertools

import pytest
import torch
import torch.nn.functional as F

from transferlimits.models.checkpoints_profound import (
    CheckpointError,
    convert_profound_state,
    detect_profound_layout,
    load_profound_checkpoint,
    remap_fcmae_sparse,
)
from transferlimits.models.convnext3d import ConvNeXtV2_3D, build_profound

torch.set_num_threads(1)
TINY = ((3, 3, 9, 3), (96, 192, 384, 768))


def sparse_fcmae_state(depths, dims, device="meta", dec=512, gen=None):
    """A raw FCMAE state dict with ProFound's key names and MinkowskiEngine tensor layouts."""

    def t(*shape):
        if device == "meta":
            return torch.empty(*shape, device="meta")
        return torch.randn(*shape, generator=gen)

    sd = {
        "encoder.downsample_layers.0.0.weight": t(dims[0], 3, 4, 4, 4),
        "encoder.downsample_layers.0.0.bias": t(dims[0]),
        "encoder.downsample_layers.0.1.weight": t(dims[0]),
        "encoder.downsample_layers.0.1.bias": t(dims[0]),
    }
    for i in (1, 2, 3):
        sd[f"encoder.downsample_layers.{i}.0.ln.weight"] = t(dims[i - 1])
        sd[f"encoder.downsample_layers.{i}.0.ln.bias"] = t(dims[i - 1])
        sd[f"encoder.downsample_layers.{i}.1.kernel"] = t(8, dims[i - 1], dims[i]) if i < 3 else t(dims[2], dims[3])
        sd[f"encoder.downsample_layers.{i}.1.bias"] = t(1, dims[i])
    for i, (d, c) in enumerate(zip(depths, dims)):
        for j in range(d):
            p = f"encoder.stages.{i}.{j}."
            sd.update({
                p + "dwconv.kernel": t(343, c), p + "dwconv.bias": t(1, c),
                p + "norm.ln.weight": t(c), p + "norm.ln.bias": t(c),
                p + "pwconv1.linear.weight": t(4 * c, c), p + "pwconv1.linear.bias": t(4 * c),
                p + "grn.gamma": t(1, 4 * c), p + "grn.beta": t(1, 4 * c),
                p + "pwconv2.linear.weight": t(c, 4 * c), p + "pwconv2.linear.bias": t(c),
            })
    sd.update({
        "proj.weight": t(dec, dims[3], 1, 1, 1), "proj.bias": t(dec), "mask_token": t(1, dec, 1, 1, 1),
        "decoder.0.dwconv.weight": t(dec, 1, 7, 7, 7), "decoder.0.grn.gamma": t(1, 1, 1, 1, 4 * dec),
        "pred.weight": t(16**3 * 3, dec, 1, 1, 1), "pred.bias": t(16**3 * 3),
    })
    return sd


def _meta_encoder_state(prefix="encoder."):
    with torch.device("meta"):
        enc = build_profound("tiny")
    return {prefix + k: v for k, v in enc.state_dict().items()}


def test_raw_fcmae_full_size_on_meta():
    sd = sparse_fcmae_state(*TINY)
    assert detect_profound_layout(sd) == "fcmae_sparse"
    ckpt = convert_profound_state({"model": sd, "epoch": 799})
    assert ckpt.layout == "fcmae_sparse" and ckpt.head_state == {} and ckpt.extra == {"epoch": 799}
    assert ckpt.config == {"depths": (3, 3, 9, 3), "dims": (96, 192, 384, 768), "in_chans": 3}
    enc = ckpt.encoder_state
    assert enc["downsample_layers.1.1.weight"].shape == (192, 96, 2, 2, 2)
    assert enc["downsample_layers.3.1.weight"].shape == (768, 384, 1, 1, 1)
    assert enc["stages.2.8.dwconv.weight"].shape == (384, 1, 7, 7, 7)
    assert enc["stages.2.8.dwconv.bias"].shape == (384,)
    assert enc["stages.3.0.grn.gamma"].shape == (1, 1, 1, 1, 3072)
    assert not any(k.startswith(("proj", "mask_token", "decoder", "pred")) for k in enc)


def test_wrong_key_and_wrong_shape_are_named():
    sd = sparse_fcmae_state(*TINY)
    sd["encoder.stages.1.2.dwconv.kernal"] = sd.pop("encoder.stages.1.2.dwconv.kernel")
    with pytest.raises(CheckpointError, match=r"stages\.1\.2\.dwconv\.kernal") as err:
        convert_profound_state(sd)
    assert "stages.1.2.dwconv.weight" in str(err.value)  # and the missing one
    sd = sparse_fcmae_state(*TINY)
    sd["encoder.stages.0.1.pwconv1.linear.weight"] = torch.empty(385, 96, device="meta")
    with pytest.raises(CheckpointError, match=r"stages\.0\.1\.pwconv1\.weight.*\(385, 96\)"):
        convert_profound_state(sd)
    sd = sparse_fcmae_state(*TINY)
    sd["encoder.stages.0.0.dwconv.kernel"] = torch.empty(300, 96, device="meta")
    with pytest.raises(CheckpointError, match=r"stages\.0\.0\.dwconv\.kernel"):
        convert_profound_state(sd)


def test_classifier_layout_full_size():
    sd = _meta_encoder_state()
    m = lambda *s: torch.empty(*s, device="meta")  # noqa: E731
    heads = {"head.0.weight": m(256, 768), "head.0.bias": m(256), "head.1.weight": m(256), "head.1.bias": m(256),
             "head.1.running_mean": m(256), "head.1.running_var": m(256), "head.1.num_batches_tracked": m(()),
             "head.3.weight": m(4, 256), "head.3.bias": m(4)}
    ckpt = convert_profound_state({"model": {**sd, **heads}})
    assert ckpt.layout == "classifier" and set(ckpt.head_state) == set(heads)
    assert len(ckpt.encoder_state) == len(sd) and "norm.weight" in ckpt.encoder_state
    with pytest.raises(CheckpointError, match="classfier_head"):
        convert_profound_state({**sd, **heads, "classfier_head.weight": m(2)})


def test_upernet_layout_full_size():
    sd = _meta_encoder_state()
    m = lambda *s: torch.empty(*s, device="meta")  # noqa: E731
    heads = {f"hidden_norm.{i}.weight": m(c) for i, c in enumerate(TINY[1])}
    for i in range(4):
        heads[f"decode_head.psp_modules.{i}.1.conv.weight"] = m(512, 768, 1, 1, 1)
        heads[f"decode_head.psp_modules.{i}.1.batch_norm.weight"] = m(512)
    heads["decode_head.bottleneck.conv.weight"] = m(512, 768 + 4 * 512, 3, 3, 3)
    heads["decode_head.fpn_bottleneck.conv.weight"] = m(512, 2048, 3, 3, 3)
    heads["decode_head.classifier.weight"] = m(9, 512, 1, 1, 1)
    heads["auxiliary_head.convs.0.conv.weight"] = m(256, 384, 3, 3, 3)
    heads["auxiliary_head.classifier.weight"] = m(9, 256, 1, 1, 1)
    ckpt = convert_profound_state({**sd, **heads})
    assert ckpt.layout == "upernet" and set(ckpt.head_state) == set(heads)
    bad = dict(sd)
    bad["encoder.stages.3.2.grn.beta"] = m(1, 1, 1, 1, 3000)
    with pytest.raises(CheckpointError, match=r"stages\.3\.2\.grn\.beta"):
        convert_profound_state({**bad, **heads})


def test_unknown_layout():
    with pytest.raises(CheckpointError, match="not a recognised"):
        convert_profound_state({"foo.weight": torch.zeros(2)})


def _sparse_conv(x, kernel, k, stride, pad):
    """Minkowski definition, written as an explicit sum over kernel offsets (a, b, c) along (D, H, W):
    out[o, u] = sum_{a,b,c} sum_i K[a + k*b + k^2*c, i, o] * x[i, stride*u + (a, b, c) - pad]."""
    xp = F.pad(x, (pad,) * 6)
    cin = x.shape[1]
    out_sz = [(s + 2 * pad - k) // stride + 1 for s in x.shape[2:]]
    out = 0
    for a, b, c in itertools.product(range(k), repeat=3):
        patch = xp[:, :, a : a + stride * out_sz[0] : stride, b : b + stride * out_sz[1] : stride,
                   c : c + stride * out_sz[2] : stride]
        w = kernel[a + k * b + k * k * c]  # (Cin, Cout) or (C,) for depthwise
        if w.ndim == 1:
            out = out + patch * w.view(1, cin, 1, 1, 1)
        else:
            out = out + torch.einsum("nidhw,io->nodhw", patch, w)
    return out


def test_remapped_kernels_match_the_sparse_definition():
    g = torch.Generator().manual_seed(0)
    depths, dims = (1, 1, 1, 1), (3, 4, 5, 6)
    raw = sparse_fcmae_state(depths, dims, device="cpu", dec=8, gen=g)
    dense, origin = remap_fcmae_sparse(raw)
    assert origin["stages.0.0.dwconv.weight"] == "encoder.stages.0.0.dwconv.kernel"
    x = torch.randn(1, 4, 6, 8, 10, generator=g)
    # downsampling k2 s2: (8, Cin, Cout)
    ref = _sparse_conv(x, raw["encoder.downsample_layers.2.1.kernel"], 2, 2, 0)
    got = F.conv3d(x, dense["downsample_layers.2.1.weight"], stride=2)
    torch.testing.assert_close(got, ref)
    # depthwise k7 (pad 3): (343, C)
    xs = torch.randn(1, 3, 5, 6, 7, generator=g)
    ref = _sparse_conv(xs, raw["encoder.stages.0.0.dwconv.kernel"], 7, 1, 3)
    got = F.conv3d(xs, dense["stages.0.0.dwconv.weight"], padding=3, groups=3)
    torch.testing.assert_close(got, ref)
    # the 2-D k1 kernel of downsample_layers.3.1: (Cin, Cout)
    x5 = torch.randn(1, 5, 2, 3, 2, generator=g)
    ref = torch.einsum("nidhw,io->nodhw", x5, raw["encoder.downsample_layers.3.1.kernel"])
    torch.testing.assert_close(F.conv3d(x5, dense["downsample_layers.3.1.weight"]), ref)
    # an axis-reversal bug would be caught: the kernel is not symmetric
    w = dense["stages.0.0.dwconv.weight"]
    assert not torch.allclose(w, w.flip(2))
    # biases, GRN, fresh norm
    assert dense["stages.1.0.dwconv.bias"].shape == (4,)
    assert dense["downsample_layers.1.1.bias"].shape == (4,)
    assert dense["stages.2.0.grn.gamma"].shape == (1, 1, 1, 1, 20)
    torch.testing.assert_close(dense["norm.weight"], torch.ones(6))
    torch.testing.assert_close(dense["norm.bias"], torch.zeros(6))


def test_load_file_needs_opt_in_for_namespace(tmp_path):
    g = torch.Generator().manual_seed(0)
    raw = sparse_fcmae_state((1, 1, 1, 1), (3, 4, 5, 6), device="cpu", dec=8, gen=g)
    path = tmp_path / "checkpoint-0.pth"
    torch.save({"model": raw, "epoch": 0, "args": argparse.Namespace(mask_ratio=0.6)}, path)
    with pytest.raises(CheckpointError, match="allow_pickle=True"):
        load_profound_checkpoint(path)
    ckpt = load_profound_checkpoint(path, allow_pickle=True)
    assert ckpt.extra["args"].mask_ratio == 0.6 and isinstance(ckpt.encoder, ConvNeXtV2_3D)
    torch.testing.assert_close(ckpt.encoder.stages[0][0].dwconv.weight, ckpt.encoder_state["stages.0.0.dwconv.weight"])
    out = ckpt.encoder.forward_features(torch.randn(1, 3, 16, 16, 16))
    assert out.pooled.shape == (1, 6)
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_profound_checkpoint(path, model=build_profound("test"), allow_pickle=True)
    with pytest.raises(FileNotFoundError):
        load_profound_checkpoint(tmp_path / "missing.pth")


def test_dense_encoder_roundtrip(tmp_path):
    src = build_profound("test")
    path = tmp_path / "enc.pth"
    torch.save(src.state_dict(), path)
    ckpt = load_profound_checkpoint(path)
    assert ckpt.layout == "dense_encoder"
    for (n, a), (_, b) in zip(src.state_dict().items(), ckpt.encoder.state_dict().items()):
        torch.testing.assert_close(a, b, msg=n)


def test_own_fcmae_checkpoint_loads():
    from transferlimits.models.fcmae import FCMAE

    model = FCMAE(build_profound("test"), decoder_dim=8)
    ckpt = convert_profound_state({"model": model.state_dict()})
    assert ckpt.layout == "fcmae_dense" and "norm.weight" in ckpt.encoder_state
