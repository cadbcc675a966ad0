"""ProFound's adapter: everything specific to the 3D ConvNeXt-V2 + FCMAE foundation model.

Encoder :class:`~transferlimits.models.convnext3d.ConvNeXtV2_3D` (sizes ``test`` / ``smoke`` / ``tiny``) on
3-channel crops x [B, 3, D, H, W] (t2w, hbv, adc); released weights through
:func:`~transferlimits.models.checkpoints_profound.load_profound_checkpoint`; native objective ``fcmae``,
swapped ``contrastive`` (:class:`~transferlimits.models.contrastive.ConvNeXtContrastive`, pairs mined on the
stage-1 grid); dense head :class:`~transferlimits.models.upernet3d.UperNet3D` (published) or, as its light decoder
(``FinetuneRecipe.light_decoder``), :class:`~transferlimits.models.mlp_decoder3d.MLPDecoder3D`; layer-wise lr decay
when fine-tuning.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from transferlimits.data.views import channel_pretrain_volume, channel_view
from transferlimits.models.adapters.base import (
    LIGHT_WIDTH_FACTOR,
    ModelAdapter,
    ObjectiveInfo,
    ViewSettings,
    light_hidden_width,
)
from transferlimits.models.adapters.objectives import masked_objective_kwargs, pair_objective_kwargs
from transferlimits.models.checkpoints_profound import load_profound_checkpoint
from transferlimits.models.contrastive import ConvNeXtContrastive
from transferlimits.models.convnext3d import PROFOUND_SIZES, build_profound
from transferlimits.models.fcmae import FCMAE
from transferlimits.models.mlp_decoder3d import MLPDecoder3D
from transferlimits.models.registry import register_model
from transferlimits.models.upernet3d import UperNet3D
from transferlimits.runtime import PICKLE_HINT_ENV

__all__ = ["ProFoundAdapter", "PROFOUND", "LIGHT_WIDTH_FACTOR"]

#: FCMAE decoder width per encoder size: ProFound's decoder is 512 wide; small ones for CPU sizes.
_FCMAE_DECODER = {"tiny": 512, "cpu": 64, "smoke": 64, "test": 32}
#: CL_Head (hidden, bottleneck, out) widths and segmentation-head width for the non-published sizes.
_SMALL_PAIR_HEADS = {"cl_dims": (128, 32, 512), "head_mid": 16}
_PUBLISHED_SIZE = "tiny"


class ProFoundAdapter(ModelAdapter):
    """ProFound (3D ConvNeXt-V2 + FCMAE). See the module docstring."""

    name = "profound"
    display_name = "ProFound"
    color = "tab:blue"
    input_kind = "volume"
    objective_infos = (
        ObjectiveInfo("fcmae", "reconstruction", uses_labels=False,
                      description="FCMAE: masked sparse-conv autoencoding, MSE on the masked voxels"),
        ObjectiveInfo("contrastive", "contrastive", uses_labels=True,
                      description="ProViCNet's recipe on ConvNeXt: (1 - alpha) x DiceCE on the lesion labels + "
                                  "alpha x the patch-pair loss of label-mined pairs"),
    )
    objective_modules = {"fcmae": FCMAE, "contrastive": ConvNeXtContrastive}
    sizes = tuple(PROFOUND_SIZES)
    pretrain_keys = ("x",)
    pretrain_ndim = 5
    has_light_decoder = True  # models.mlp_decoder3d.MLPDecoder3D

    def build_encoder(self, size: str, **kw: Any) -> nn.Module:
        """``build_profound(size, **kw)``; kw: ``in_chans``, ``drop_path_rate``, ``channels_last_stages``."""
        return build_profound(size, **kw)

    def encoder_kwargs(self, profile: Any) -> dict[str, Any]:
        """``{"channels_last_stages": n}`` when the profile's pre-training recipe asks for the channels-last
        speed-up (``PretrainRecipe.channels_last_stages`` > 0; a memory layout, the weights are the same)."""
        n = int(getattr(getattr(profile, "pretrain", None), "channels_last_stages", 0) or 0)
        return {"channels_last_stages": n} if n else {}

    def load_released(self, path: str | Path, size: str | None = None, return_extras: bool = False,
                      **kw: Any) -> nn.Module | tuple[nn.Module, Any]:
        """ProFound checkpoints (``allow_pickle`` default False, ``strict`` default True, ``hint`` = how the
        refusal of a pickled file tells the user to opt in, ``drop_path_rate``); the size is inferred from the
        file when None. Extras: the ``ProFoundCheckpoint``."""
        loader_kw = {k: kw.pop(k) for k in ("allow_pickle", "strict", "hint") if k in kw}
        model = build_profound(size, **kw) if size is not None else None
        ckpt = load_profound_checkpoint(path, model=model, **loader_kw)
        return (ckpt.encoder, ckpt) if return_extras else ckpt.encoder

    def load_released_for_profile(self, profile: Any, path: str | Path) -> nn.Module:
        """Released weights at the profile's size. ProFound checkpoints pickle an argparse.Namespace: set
        ``TRANSFERLIMITS_ALLOW_PICKLE=1`` to opt in to reading it (only for files you trust)."""
        allow = os.environ.get("TRANSFERLIMITS_ALLOW_PICKLE", "") == "1"
        return self.load_released(path, size=self.size_for(profile), allow_pickle=allow, hint=PICKLE_HINT_ENV)

    def profile_objective_kwargs(self, objective: str, profile: Any) -> dict[str, Any]:
        """FCMAE: mask ratio and decoder width; contrastive: alpha and pair rules, pairs on the stage-1 grid."""
        size = self.size_for(profile)
        if self.objective_info(objective).family == "reconstruction":
            return masked_objective_kwargs(profile, _FCMAE_DECODER, size)
        # Pairs are mined on the stride-4 (stage-1) grid, not stage 4: a stage-4 cell is 16^3 voxels
        # (16x8x8 mm at the reference grid) and no csPCa lesion fills 62/64 of one, so the pair term was
        # always zero there (measured on the real lesion of 11373_1001396: max 19.7 % cancer per cell).
        # A stage-1 cell has 4^3 = 64 voxels, the same count as ProViCNet's 8x8-pixel label cells.
        return {**pair_objective_kwargs(profile, size == _PUBLISHED_SIZE, _SMALL_PAIR_HEADS), "pair_stage": 0}

    def task_view(self, sample: Any, spec: Any, settings: ViewSettings) -> dict:
        """The 3D channel view (``data.views.channel_view``): x [3, D, H, W]."""
        return channel_view(sample, spec)

    def pretrain_index(self, case_ids: Sequence[str], depth: int, settings: ViewSettings) -> list[tuple[str, Any]]:
        """One item per case (the whole crop)."""
        return [(c, None) for c in case_ids]

    def pretrain_prepare(self, case: Any, labels: torch.Tensor, settings: ViewSettings) -> tuple[torch.Tensor,
                                                                                                   torch.Tensor]:
        """x [3, D, H, W] (t2w, hbv, adc z-scored), labels [D, H, W]."""
        return channel_pretrain_volume(case, labels)

    def pretrain_item(self, case_id: str, key: Any, x: torch.Tensor, labels: torch.Tensor,
                      settings: ViewSettings) -> dict:
        """``{"x", "labels", "case_id"}`` of the whole crop."""
        return {"x": x, "labels": labels, "case_id": case_id}

    def dense_head(self, encoder: nn.Module, out_channels: int, width: int | None = None,
                   out_size: Sequence[int] | None = None, slice_step: int = 1, full_res: bool = False,
                   residual: bool = False, warp_axis: int | None = None, warp_jacobian: bool = True,
                   warp_blur: bool = False, light: bool = False) -> nn.Module:
        """UperNet3D (width 512 / aux 256 published; else ``width`` / ``width // 2``); returns the input size.
        ``full_res`` / ``residual``: the full-resolution skip and residual output (``models.fullres``);
        ``warp_axis`` / ``warp_jacobian`` / ``warp_blur``: a displacement-field output (``models.warp``).
        ``light`` (with ``full_res``): the all-MLP decoder instead (``models.mlp_decoder3d``), its hidden layer
        :data:`LIGHT_WIDTH_FACTOR` x ``width`` wide (64 when ``width`` is None)."""
        if light:
            if not full_res:
                raise ValueError("profound: the light (all-MLP) decoder has a full-resolution output only; "
                                 "set full_res=True (FinetuneRecipe.full_res_skip)")
            return MLPDecoder3D(encoder, out_channels, width=light_hidden_width(width), residual=residual,
                                warp_axis=warp_axis, warp_jacobian=warp_jacobian, warp_blur=warp_blur)
        kw = {"full_res": full_res, "residual": residual, "warp_axis": warp_axis, "warp_jacobian": warp_jacobian,
              "warp_blur": warp_blur}
        if width is None:
            return UperNet3D(encoder, out_channels, **kw)
        return UperNet3D(encoder, out_channels, width=int(width), aux_channels=max(int(width) // 2, 1), **kw)

    def lr_scales(self, model: nn.Module, recipe: Any) -> dict[str, float]:
        """Layer-wise decay ``recipe.layer_decay ** (num_layers + 1 - layer_id)`` via ``encoder.layer_id``
        (flat ``recipe.backbone_lr_scale`` for an encoder without ``layer_id``)."""
        enc = model.encoder
        if not hasattr(enc, "layer_id"):
            return super().lr_scales(model, recipe)
        return {name: float(recipe.layer_decay ** (enc.num_layers + 1 - enc.layer_id(name)))
                for name, p in model.named_parameters() if name.startswith("encoder.") and p.requires_grad}


PROFOUND = register_model(ProFoundAdapter())
