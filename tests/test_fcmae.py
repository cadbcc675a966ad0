"""FCMAE: masking, norm-pix target, masked-only loss, sparse emulation, learning."""

from __future__ import annotations

import pytest
import torch

from transferlimits.models.convnext3d import build_profound
from transferlimits.models.fcmae import FCMAE, patchify3d, random_patch_mask, unpatchify3d

torch.set_num_threads(1)


def _model(dec: int = 16, **kw) -> FCMAE:
    torch.manual_seed(0)
    return FCMAE(build_profound("test"), decoder_dim=dec, **kw)


@pytest.mark.parametrize("shape", [(16, 16, 16), (16, 32, 48), (32, 32, 16)])
@pytest.mark.parametrize("ratio", [0.25, 0.6])
def test_shapes_and_mask_count(shape, ratio):
    model = _model(mask_ratio=ratio)
    x = torch.randn(2, 3, *shape)
    loss, pred, mask = model(x)
    num = (shape[0] // 16) * (shape[1] // 16) * (shape[2] // 16)
    assert pred.shape == (2, num, 16**3 * 3) and mask.shape == (2, num)
    assert torch.all(mask.sum(1) == num - int(num * (1 - ratio)))
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_patchify_roundtrip_and_order():
    x = torch.randn(2, 3, 32, 16, 48)
    p = patchify3d(x, 16)
    assert p.shape == (2, 6, 16**3 * 3)
    torch.testing.assert_close(unpatchify3d(p, 16, (2, 1, 3)), x)
    # patch (d=1, h=0, w=2) is index 1*1*3 + 0*3 + 2 = 5; voxel (1, 2, 3) channel 2 -> ((1*16+2)*16+3)*3+2
    assert p[0, 5, ((1 * 16 + 2) * 16 + 3) * 3 + 2] == x[0, 2, 16 + 1, 2, 32 + 3]


def test_norm_pix_target():
    model = _model()
    x = torch.randn(1, 3, 16, 32, 32) * 5 + 3
    t = model.target(x)
    torch.testing.assert_close(t.mean(-1), torch.zeros(1, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(t.std(-1), torch.ones(1, 4), atol=1e-4, rtol=0)
    raw = _model(norm_pix_loss=False).target(x)
    torch.testing.assert_close(raw, patchify3d(x, 16))


@pytest.mark.parametrize(
    "kwargs,match",
    [({"mask_ratio": 0.0}, "mask_ratio"), ({"mask_ratio": 1.0}, "mask_ratio"), ({"mask_ratio": -0.2}, "mask_ratio"),
     ({"patch_size": 8}, "patch_size"), ({"decoder_dim": 0}, "decoder_dim")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FCMAE(build_profound("test"), **{"decoder_dim": 8, **kwargs})


def test_bad_inputs():
    model = _model()
    with pytest.raises(ValueError, match="multiples"):
        model(torch.randn(1, 3, 16, 24, 16))
    with pytest.raises(ValueError, match="mask must be"):
        model(torch.randn(1, 3, 16, 16, 32), mask=torch.ones(1, 3))


def test_zero_gradient_at_visible_patches():
    model = _model()
    x = torch.randn(2, 3, 16, 32, 32)
    mask = torch.tensor([[1.0, 0, 1, 0], [0, 0, 1, 1]])
    pred = torch.randn(2, 4, 16**3 * 3, requires_grad=True)
    model.forward_loss(x, pred, mask).backward()
    per_patch = pred.grad.abs().sum(-1)
    assert torch.all(per_patch[mask == 0] == 0)
    assert torch.all(per_patch[mask == 1] > 0)


def test_masked_input_cannot_reach_the_prediction_or_the_loss():
    model = _model()
    with torch.no_grad():  # non-trivial GRN / LN / biases, so leaks would show
        for name, p in model.encoder.named_parameters():
            if p.ndim <= 1 or ".grn." in name:
                p.normal_(0.0, 0.5)
    x = torch.randn(1, 3, 32, 32, 32)
    mask = torch.tensor([[0.0, 1, 1, 0, 1, 0, 1, 1]])  # patch 1 = (d0, h0, w1) is masked
    loss, pred, _ = model(x, mask)
    # 1) arbitrary new content in a masked patch: the prediction is unchanged
    x_noise = x.clone()
    x_noise[:, :, 0:16, 0:16, 16:32] = 50 * torch.randn(1, 3, 16, 16, 16)
    _, pred_noise, _ = model(x_noise, mask)
    torch.testing.assert_close(pred_noise, pred)
    # 2) a shift and scale of a masked patch leaves its norm-pix target, so the loss, unchanged
    x_affine = x.clone()
    x_affine[:, :, 0:16, 0:16, 16:32] = 3.0 * x[:, :, 0:16, 0:16, 16:32] + 7.0
    loss_affine, _, _ = model(x_affine, mask)
    torch.testing.assert_close(loss_affine, loss, rtol=1e-4, atol=1e-5)
    # 3) control: changing a visible patch does change the prediction
    x_vis = x.clone()
    x_vis[:, :, 0:16, 0:16, 0:16] += 1.0
    _, pred_vis, _ = model(x_vis, mask)
    assert not torch.allclose(pred_vis, pred)


def test_random_mask_is_random_per_sample():
    torch.manual_seed(1)
    m = random_patch_mask(8, 20, 0.6)
    assert torch.all(m.sum(1) == 12) and len({tuple(r.tolist()) for r in m}) > 1


def test_loss_decreases_on_a_fixed_batch():
    model = _model(dec=16)
    g = torch.Generator().manual_seed(0)
    z = torch.linspace(-1, 1, 32)
    smooth = torch.sin(3 * z)[:, None, None] + torch.cos(2 * z)[None, :, None] * z[None, None, :]
    x = (smooth[None, None] + 0.1 * torch.randn(2, 3, 32, 32, 32, generator=g))[:, :, :16]
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    mask = random_patch_mask(2, 4, 0.5, generator=g)
    losses = []
    for _ in range(30):
        loss, _, _ = model(x, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
