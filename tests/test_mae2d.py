"""MAE2D on the provicnet ViT: shapes, masking via mask_token, masked-only loss, learning."""

from __future__ import annotations

import pytest
import torch

from transferlimits.models.mae2d import MAE2D, patchify2d, sincos_pos_embed_2d
from transferlimits.models.vit import build_provicnet

torch.set_num_threads(1)


def _model(img: int = 56, **kw) -> MAE2D:
    torch.manual_seed(0)
    return MAE2D(build_provicnet("test", img_size=img), **{"decoder_dim": 32, **kw})


def _pos(b: int) -> torch.Tensor:
    return torch.stack([torch.arange(b, dtype=torch.float32), torch.full((b,), 20.0)], dim=1)


@pytest.mark.parametrize("size", [28, 56, 70])
@pytest.mark.parametrize("depth", [1, 2])
def test_shapes(size, depth):
    model = _model(size, decoder_depth=depth)
    loss, pred, mask = model(torch.randn(3, 3, size, size), _pos(3))
    n = (size // 14) ** 2
    assert pred.shape == (3, n, 14 * 14 * 3) and mask.shape == (3, n)
    assert torch.all(mask.sum(1) == n - int(n * 0.4)) and torch.isfinite(loss)


def test_patchify_order():
    x = torch.randn(1, 3, 28, 42)
    p = patchify2d(x, 14)
    assert p.shape == (1, 6, 588)
    # token (row 1, col 2) = 1*3 + 2; pixel (3, 5), channel 1 -> (3*14+5)*3+1
    assert p[0, 5, (3 * 14 + 5) * 3 + 1] == x[0, 1, 14 + 3, 28 + 5]


def test_sincos_embedding_distinct_rows():
    e = sincos_pos_embed_2d(16, 3, 4)
    assert e.shape == (12, 16) and torch.cdist(e, e).add(torch.eye(12)).min() > 0
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_pos_embed_2d(6, 2, 2)


@pytest.mark.parametrize(
    "kwargs,match",
    [({"mask_ratio": 0.0}, "mask_ratio"), ({"mask_ratio": 1.5}, "mask_ratio"), ({"decoder_depth": 0}, "decoder_depth"),
     ({"decoder_dim": 30}, "decoder_dim"), ({"decoder_dim": 32, "decoder_heads": 3}, "decoder_heads")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MAE2D(build_provicnet("test", img_size=28), **kwargs)


def test_bad_inputs():
    model = _model()
    with pytest.raises(ValueError, match="multiple of the patch size"):
        model(torch.randn(1, 3, 50, 56), _pos(1))
    with pytest.raises(ValueError, match="mask must be"):
        model(torch.randn(1, 3, 56, 56), _pos(1), mask=torch.ones(1, 5))


def test_zero_gradient_at_visible_patches():
    model = _model()
    x = torch.randn(2, 3, 56, 56)
    mask = (torch.arange(16) % 3 == 0).float().repeat(2, 1)
    _, pred, _ = model(x, _pos(2), mask)
    pred.retain_grad()
    per_patch = (pred - model.target(x)).pow(2).mean(-1)
    loss = (per_patch * mask).sum() / mask.sum()
    loss.backward()
    g = pred.grad.abs().sum(-1)
    assert torch.all(g[mask == 0] == 0) and torch.all(g[mask == 1] > 0)


def test_masked_pixels_do_not_reach_the_prediction():
    model = _model()
    x = torch.randn(1, 3, 56, 56)
    mask = torch.zeros(1, 16)
    mask[0, [0, 5, 6, 11]] = 1  # token 5 = row 1, col 1
    _, pred, _ = model(x, _pos(1), mask)
    x2 = x.clone()
    x2[:, :, 14:28, 14:28] = 40 * torch.randn(1, 3, 14, 14)
    _, pred2, _ = model(x2, _pos(1), mask)
    torch.testing.assert_close(pred2, pred)
    x3 = x.clone()
    x3[:, :, 0:14, 14:28] += 1.0  # token 1 is visible
    _, pred3, _ = model(x3, _pos(1), mask)
    assert not torch.allclose(pred3, pred)


def test_loss_decreases_on_a_fixed_batch():
    model = _model(28)
    g = torch.Generator().manual_seed(0)
    t = torch.linspace(-2, 2, 28)
    base = torch.sin(t)[:, None] * torch.cos(2 * t)[None, :]
    x = base.expand(4, 3, 28, 28) + 0.1 * torch.randn(4, 3, 28, 28, generator=g)
    mask = torch.tensor([[1.0, 0, 0, 1]] * 2 + [[0.0, 1, 1, 0]] * 2)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(40):
        loss, _, _ = model(x, _pos(4), mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
