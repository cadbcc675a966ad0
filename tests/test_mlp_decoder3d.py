"""ProFound's light dense decoder (``models/mlp_decoder3d.py``) and the switch that selects it.

Facts checked here (the encoder-bypass, identity-start and warp facts are parameterised over every dense head in
tests/test_fullres.py and tests/test_warp.py, this decoder included): the output has the target's shape for every
dense kind; an encoder-ablated model's output does not depend on position beyond the sub-pixel layer's period 4
(no position prior from padding, unlike UperNet's zero-padded convolutions); the switch reaches the ProFound adapter
through ``FinetuneRecipe.light_decoder`` (ProViCNet's light head: tests/test_token_mlp_head.py); bad arguments are
named.
"""

from __future__ import annotations

import dataclasses

import pytest
import toy_model  # registers "toy": a user's model adapter (the new-model extension path)
import torch

from transferlimits.config import get_profile
from transferlimits.config.recipes import FinetuneRecipe
from transferlimits.models.ablation import ZeroedEncoder
from transferlimits.models.adapters.profound import LIGHT_WIDTH_FACTOR, PROFOUND
from transferlimits.models.convnext3d import build_profound
from transferlimits.models.heads import build_task_model
from transferlimits.models.mlp_decoder3d import MLPDecoder3D
from transferlimits.models.upernet3d import UperNet3D
from transferlimits.tasks import get_task
from transferlimits.training.finetune_setup import build_finetune_model

SHAPE = (16, 32, 32)


def _light(task: str, width: int = 8) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_task_model("profound", build_profound("test"), get_task(task), width=width, out_size=SHAPE,
                            full_res=True, residual=True, light=True)


@pytest.mark.parametrize("task", ["segmentation", "super_resolution", "modality_translation",
                                  "distortion_correction"])
def test_output_has_the_target_shape_in_training_and_evaluation(task):
    net = _light(task)
    assert isinstance(net, MLPDecoder3D)
    x = torch.randn(2, 3, *SHAPE)
    for train in (True, False):
        out = net.train(train)(x)
        assert isinstance(out, torch.Tensor) and out.shape == (2, 1, *SHAPE)  # no auxiliary output


def test_hidden_width_is_the_factor_times_the_decoder_width():
    net = _light("super_resolution", width=8)
    assert net.fuse[0].out_channels == LIGHT_WIDTH_FACTOR * 8
    assert net.fuse[0].in_channels == sum(net.encoder.map_dims)


def test_ablated_output_has_no_position_prior_beyond_the_sub_pixel_period():
    """Zero the encoder and randomise the head: the translation output is one 4 x 4 x 4 tile repeated, the same for
    two inputs (UperNet's zero-padded convolutions let an ablated model learn a position map instead)."""
    net = _light("modality_translation")
    for p in net.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.1)
    net.encoder = ZeroedEncoder(net.encoder)
    net.eval()
    with torch.no_grad():
        a = net(torch.randn(1, 3, *SHAPE))[0, 0]
        b = net(torch.randn(1, 3, *SHAPE))[0, 0]
    assert torch.equal(a, b)
    tile = a[:4, :4, :4]
    torch.testing.assert_close(a, tile.repeat(SHAPE[0] // 4, SHAPE[1] // 4, SHAPE[2] // 4), rtol=0, atol=1e-6)
    assert float(tile.std()) > 1e-3  # the tile itself is learnable (64 sub-positions)


def test_the_recipe_switch_selects_the_light_decoder():
    rec = FinetuneRecipe(epochs=1, batch_size=2, decoder_width=8, full_res_skip=True, residual=True,
                         light_decoder=True)
    spec = get_task("super_resolution")
    ds = [{"y": torch.zeros(*SHAPE)}]
    torch.manual_seed(0)
    light = build_finetune_model(spec, "profound", build_profound("test"), "scratch", rec, ds)
    published = build_finetune_model(spec, "profound", build_profound("test"), "scratch",
                                     dataclasses.replace(rec, light_decoder=False), ds)
    assert isinstance(light, MLPDecoder3D) and isinstance(published, UperNet3D)


def test_smoke_keeps_the_published_heads_and_the_gpu_profiles_take_the_cpu_design():
    assert not get_profile("smoke").finetune.light_decoder
    for name in ("reference", "picai"):  # issue 27: the cpu profile's design with the published encoders
        assert get_profile(name).finetune == get_profile("cpu").finetune


def test_bad_arguments_are_named():
    enc = build_profound("test")
    with pytest.raises(ValueError, match="width"):
        MLPDecoder3D(enc, 1, width=0)
    with pytest.raises(ValueError, match="warp_axis"):
        MLPDecoder3D(enc, 1, warp_axis=3)
    with pytest.raises(ValueError, match="map_dims"):
        MLPDecoder3D(torch.nn.Identity(), 1)
    with pytest.raises(ValueError, match="full_res"):
        PROFOUND.dense_head(enc, 1, width=8, light=True)
    with pytest.raises(ValueError, match="light_decoder=True needs full_res_skip"):
        FinetuneRecipe(epochs=1, batch_size=2, light_decoder=True)


def test_an_adapter_without_a_light_decoder_keeps_its_head_under_the_switch():
    """A user's model adapter (tests/toy_model.py: no ``light`` argument) builds its own head under a recipe with
    ``light_decoder`` on, as the ``cpu`` profile has, instead of failing on an unexpected argument."""
    assert not toy_model.TOY.has_light_decoder
    torch.manual_seed(0)
    net = build_task_model("toy", toy_model.ToyEncoder(), get_task("super_resolution"), width=8, out_size=SHAPE,
                           full_res=True, residual=True, light=True)
    assert isinstance(net, toy_model.ToyDense)
    assert net(torch.randn(1, 3, *SHAPE)).shape == (1, 1, *SHAPE)
