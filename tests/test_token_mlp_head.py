"""ProViCNet's light dense head (``models/token_mlp_head.py``) and the switch that selects it.

Facts checked here (the encoder-bypass, identity-start and warp facts are parameterised over every dense head in
tests/test_fullres.py and tests/test_warp.py, this head included): the depth-to-space layout (each token fills its
own ``scale x scale`` cell and nothing else); the published conv head's interface (tokens or a map, a grid, the
square default); an encoder-ablated model's output is one tile repeated; the switch reaches the ProViCNet adapter
through ``FinetuneRecipe.light_decoder`` with the hidden width ``LIGHT_WIDTH_FACTOR x decoder_width``; bad arguments
are named.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from transferlimits.config.recipes import FinetuneRecipe
from transferlimits.models.ablation import ZeroedEncoder
from transferlimits.models.adapters.provicnet import LIGHT_WIDTH_FACTOR
from transferlimits.models.heads import SliceDenseModel, build_task_model
from transferlimits.models.provicnet_heads import SegmentationConvHead
from transferlimits.models.token_mlp_head import TokenMLPHead
from transferlimits.models.vit import build_provicnet
from transferlimits.tasks import get_task
from transferlimits.training.finetune_setup import build_finetune_model

SHAPE = (16, 32, 32)


@pytest.mark.parametrize("out_channels, scale, grid", [(1, 8, (3, 5)), (2, 4, (4, 4)), (3, 1, (2, 6))])
def test_each_token_fills_its_own_cell_only(out_channels, scale, grid):
    """Perturb one token: the output changes inside that token's ``scale x scale`` cell and nowhere else."""
    torch.manual_seed(0)
    head = TokenMLPHead(8, out_channels, width=16, scale=scale).eval()
    n = grid[0] * grid[1]
    tokens = torch.randn(2, n, 8)
    with torch.no_grad():
        base = head(tokens, grid)
        assert base.shape == (2, out_channels, scale * grid[0], scale * grid[1])
        k = n - 2  # row k // w, column k % w
        moved = tokens.clone()
        moved[1, k] += torch.randn(8)  # not a constant shift, which the LayerNorm removes
        diff = (head(moved, grid) - base).abs()
    r, c = divmod(k, grid[1])
    cell = (slice(r * scale, (r + 1) * scale), slice(c * scale, (c + 1) * scale))
    assert float(diff[1, :, cell[0], cell[1]].amax()) > 1e-4
    diff[1, :, cell[0], cell[1]] = 0.0
    assert float(diff.amax()) == 0.0  # every other pixel, of both images, is unchanged


def test_tokens_and_map_inputs_agree_and_a_square_grid_is_the_default():
    torch.manual_seed(0)
    head = TokenMLPHead(6, 1, width=4).eval()
    tokens = torch.randn(1, 16, 6)
    as_map = tokens.transpose(1, 2).reshape(1, 6, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(head(tokens), head(tokens, (4, 4)))
        torch.testing.assert_close(head(as_map), head(tokens, (4, 4)))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="width=0"):
        TokenMLPHead(8, 1, width=0)
    head = TokenMLPHead(8, 1)
    with pytest.raises(ValueError, match="not a square grid"):
        head(torch.zeros(1, 6, 8))
    with pytest.raises(ValueError, match=r"grid=\(2, 2\) does not hold 6 tokens"):
        head(torch.zeros(1, 6, 8), (2, 2))
    with pytest.raises(ValueError, match="tokens must be"):
        head(torch.zeros(6, 8))


def _light(task: str, width: int = 8) -> SliceDenseModel:
    torch.manual_seed(0)
    return build_task_model("provicnet", build_provicnet("test", img_size=56), get_task(task), width=width,
                            out_size=SHAPE, full_res=True, residual=True, light=True)


@pytest.mark.parametrize("task", ["segmentation", "super_resolution", "modality_translation",
                                  "distortion_correction"])
def test_output_has_the_target_shape(task):
    net = _light(task)
    assert isinstance(net.head, TokenMLPHead)
    x, pos = torch.randn(2, 16, 3, 56, 56), torch.rand(2, 16, 2)
    for train in (True, False):
        assert net.train(train)(x, pos).shape == (2, 1, *SHAPE)


def test_hidden_width_is_the_factor_times_the_decoder_width():
    net = _light("super_resolution", width=8)
    assert net.head.hidden[0].out_features == LIGHT_WIDTH_FACTOR * 8
    assert net.head.hidden[0].in_features == net.encoder.out_dim


def test_ablated_translation_output_is_one_tile_repeated():
    """Zero the encoder and randomise the head: every token is the same, so the output is one 8 x 8 tile per slice
    (resized to the grid), the same for two inputs: no position prior beyond the tile."""
    net = _light("modality_translation")
    for p in net.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.1)
    net.encoder = ZeroedEncoder(net.encoder)
    net.out_size = None  # the head's own 8x grid (4 x 4 tokens of the 56 px test slices at patch 14 -> 32 x 32)
    net.eval()
    with torch.no_grad():
        a = net(torch.randn(1, 16, 3, 56, 56), torch.rand(1, 16, 2))[0, 0]
        b = net(torch.randn(1, 16, 3, 56, 56), torch.rand(1, 16, 2))[0, 0]
    assert torch.equal(a, b)
    tile = a[0, :8, :8]
    torch.testing.assert_close(a, tile.repeat(16, 4, 4), rtol=0, atol=1e-6)
    assert float(tile.std()) > 1e-3


def test_the_recipe_switch_selects_the_light_head():
    rec = FinetuneRecipe(epochs=1, batch_size=2, decoder_width=8, full_res_skip=True, residual=True,
                         light_decoder=True)
    spec = get_task("super_resolution")
    ds = [{"y": torch.zeros(*SHAPE)}]
    light = build_finetune_model(spec, "provicnet", build_provicnet("test", img_size=56), "scratch", rec, ds)
    published = build_finetune_model(spec, "provicnet", build_provicnet("test", img_size=56), "scratch",
                                     dataclasses.replace(rec, light_decoder=False), ds)
    assert isinstance(light.head, TokenMLPHead) and isinstance(published.head, SegmentationConvHead)
    assert float(light.output_layer().weight.abs().sum()) == 0.0  # residual: starts at the identity
