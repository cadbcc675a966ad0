"""ProViCNet's adapter: everything specific to the 2.5D ViT + contrastive foundation model.

Encoder :class:`~transferlimits.models.vit.ProViCNetEncoder` (sizes ``test`` / ``smoke`` / ``vits14``, slice
size ``img_size`` = ``Profile.slice_size``) on 3-slice stacks x [B, 3, S, S] with slice tokens pos [B, 2];
released weights through :func:`~transferlimits.models.checkpoints_provicnet.load_provicnet_checkpoint`;
native objective ``contrastive`` (:class:`~transferlimits.models.contrastive.ProViCNetContrastive`), swapped
``mae`` (:class:`~transferlimits.models.mae2d.MAE2D`); dense head: the per-slice conv head re-stacked to 3D
(:class:`~transferlimits.models.heads.SliceDenseModel`) or, as its light decoder (``FinetuneRecipe.light_decoder``),
the per-token MLP head (:class:`~transferlimits.models.token_mlp_head.TokenMLPHead`); a flat backbone lr scale when
fine-tuning; the
slice-token projections ``axis_pos`` / ``axis_max`` are not weight-decayed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from transferlimits.data.views import slice_centres, stack_pretrain_item, stack_pretrain_volume, stack_view
from transferlimits.models.adapters.base import (
    LIGHT_WIDTH_FACTOR,
    ModelAdapter,
    ObjectiveInfo,
    ViewSettings,
    light_hidden_width,
)
from transferlimits.models.adapters.objectives import masked_objective_kwargs, pair_objective_kwargs
from transferlimits.models.checkpoints_provicnet import load_provicnet_checkpoint
from transferlimits.models.contrastive import ProViCNetContrastive
from transferlimits.models.heads import SliceDenseModel
from transferlimits.models.mae2d import MAE2D
from transferlimits.models.registry import register_model
from transferlimits.models.vit import PROVICNET_SIZES, build_provicnet

__all__ = ["ProViCNetAdapter", "PROVICNET", "LIGHT_WIDTH_FACTOR"]

#: MAE decoder width per encoder size.
_MAE2D_DECODER = {"vits14": 256, "cpu": 64, "smoke": 64, "test": 32}
#: CL_Head (hidden, bottleneck, out) and segmentation-head widths for the non-published sizes.
_SMALL_PAIR_HEADS = {"cl_dims": (128, 32, 512), "head_mid": (32, 16)}
_PUBLISHED_SIZE = "vits14"


class ProViCNetAdapter(ModelAdapter):
    """ProViCNet (2.5D ViT-S/14 + contrastive). See the module docstring."""

    name = "provicnet"
    display_name = "ProViCNet"
    color = "tab:orange"
    input_kind = "slices"
    # "contrastive" is ProViCNet's published recipe: (1 - alpha) x DiceCE on the lesion labels + alpha x the
    # patch-pair loss (alpha 0.05), so it uses labels although its family is contrastive
    objective_infos = (
        ObjectiveInfo("contrastive", "contrastive", uses_labels=True,
                      description="0.95 x DiceCE on the lesion labels + 0.05 x the patch-pair loss of label-mined pairs"),
        ObjectiveInfo("mae", "reconstruction", uses_labels=False,
                      description="MAE on 2.5D stacks: masked-patch reconstruction, MSE on the masked patches"),
    )
    objective_modules = {"contrastive": ProViCNetContrastive, "mae": MAE2D}
    sizes = tuple(PROVICNET_SIZES)
    pretrain_keys = ("x", "pos")
    pretrain_ndim = 4
    no_decay_names = ("axis_pos", "axis_max")
    has_light_decoder = True  # models.token_mlp_head.TokenMLPHead

    def build_encoder(self, size: str, **kw: Any) -> nn.Module:
        """``build_provicnet(size, **kw)``; kw: ``img_size`` (default 448)."""
        return build_provicnet(size, **kw)

    def encoder_kwargs(self, profile: Any) -> dict[str, Any]:
        """``{"img_size": profile.slice_size}``."""
        return {"img_size": profile.slice_size}

    def encoder_kwargs_from_meta(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        """``{"img_size": meta["img_size"]}``."""
        return {"img_size": meta["img_size"]}

    def load_released(self, path: str | Path, size: str | None = None, return_extras: bool = False,
                      **kw: Any) -> nn.Module | tuple[nn.Module, Any]:
        """ProViCNet state dicts (``img_size`` default 448, ``strict`` default True; size default ``vits14``).
        Extras: ``{"head", "CL_Head", "ChannelReducer"}``."""
        encoder, extras = load_provicnet_checkpoint(path, size=size or _PUBLISHED_SIZE, **kw)
        return (encoder, extras) if return_extras else encoder

    def profile_objective_kwargs(self, objective: str, profile: Any) -> dict[str, Any]:
        """MAE: mask ratio and decoder width; contrastive: alpha and the pair rules."""
        size = self.size_for(profile)
        if self.objective_info(objective).family == "reconstruction":
            return masked_objective_kwargs(profile, _MAE2D_DECODER, size)
        return pair_objective_kwargs(profile, size == _PUBLISHED_SIZE, _SMALL_PAIR_HEADS)

    def task_view(self, sample: Any, spec: Any, settings: ViewSettings) -> dict:
        """The 2.5D stack view (``data.views.stack_view``): x [D', 3, S, S], pos [D', 2]."""
        return stack_view(sample, spec, settings.slice_size, settings.slice_step)

    def pretrain_index(self, case_ids: Sequence[str], depth: int, settings: ViewSettings) -> list[tuple[str, Any]]:
        """One item per 2.5D stack of every case."""
        n = len(slice_centres(depth, settings.slice_step))
        return [(c, j) for c in case_ids for j in range(n)]

    def pretrain_prepare(self, case: Any, labels: torch.Tensor, settings: ViewSettings) -> tuple[torch.Tensor,
                                                                                                   torch.Tensor]:
        """T2W slices [D, S, S] (z-scored in the gland) and labels [D, S, S]."""
        return stack_pretrain_volume(case, labels, settings.slice_size)

    def pretrain_item(self, case_id: str, key: Any, x: torch.Tensor, labels: torch.Tensor,
                      settings: ViewSettings) -> dict:
        """Stack ``key``: x [3, S, S], pos [2], labels [S, S] of its centre slice."""
        return stack_pretrain_item(case_id, int(key), x, labels, settings.slice_step)

    def dense_head(self, encoder: nn.Module, out_channels: int, width: int | None = None,
                   out_size: Sequence[int] | None = None, slice_step: int = 1, full_res: bool = False,
                   residual: bool = False, warp_axis: int | None = None, warp_jacobian: bool = True,
                   warp_blur: bool = False, light: bool = False) -> nn.Module:
        """Per-slice conv head (128, 64 published; else ``width``, ``width // 2``), each slice resized to the
        (H, W) of ``out_size`` and, with ``slice_step`` > 1, interpolated back onto its D slices. ``full_res`` /
        ``residual``: the full-resolution skip and residual output (``models.fullres``); ``warp_axis`` /
        ``warp_jacobian`` / ``warp_blur``: a displacement-field output along H or W of each slice (``models.warp``).
        ``light``: the per-token MLP head instead (``models.token_mlp_head``), its hidden layer
        :data:`LIGHT_WIDTH_FACTOR` x ``width`` wide (64 when ``width`` is None)."""
        mid = (128, 64) if width is None else (int(width), max(int(width) // 2, 1))
        light_width = light_hidden_width(width) if light else None
        hw = None if out_size is None else tuple(out_size)[-2:]
        depth = None if out_size is None or slice_step == 1 else int(tuple(out_size)[0])
        return SliceDenseModel(encoder, out_channels, mid=mid, out_size=hw, out_depth=depth, slice_step=slice_step,
                               full_res=full_res, residual=residual, warp_axis=warp_axis,
                               warp_jacobian=warp_jacobian, warp_blur=warp_blur, light_width=light_width)


PROVICNET = register_model(ProViCNetAdapter())
