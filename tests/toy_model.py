"""A third foundation model added the way a user would: one module, one ``register_model`` call.

``toy`` is a 2-layer 3D conv encoder on the ProFound channel view (x [B, 3, D, H, W]) with a trivial native
pre-training objective ``recon`` (reconstruct the input from the last feature map, MSE). It keeps the
encoder contract (``forward_features`` -> ``EncoderOutput``, ``out_dim``, ``map_dims``, ``map_names``,
``input_kind``) and reuses the library's channel view, pre-training volume and pooled heads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from transferlimits.data.views import channel_pretrain_volume, channel_view
from transferlimits.models.adapters.base import ModelAdapter, ObjectiveInfo, ViewSettings
from transferlimits.models.output import EncoderOutput
from transferlimits.models.registry import MODEL_REGISTRY, register_model

TOY_SIZES = {"toy": (8, 16)}


class ToyEncoder(nn.Module):
    """Two stride-2 Conv3d + GELU stages; ``forward_features(x [B, 3, D, H, W])`` -> pooled [B, C2], maps
    [[B, C1, D/2, H/2, W/2], [B, C2, D/4, H/4, W/4]]."""

    input_kind = "volume"

    def __init__(self, dims: tuple[int, int] = (8, 16)) -> None:
        super().__init__()
        self.stage1 = nn.Conv3d(3, dims[0], 3, stride=2, padding=1)
        self.stage2 = nn.Conv3d(dims[0], dims[1], 3, stride=2, padding=1)
        self.out_dim, self.map_dims, self.map_names = dims[1], list(dims), ["stage1", "stage2"]

    def forward_features(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> EncoderOutput:
        m1 = F.gelu(self.stage1(x))
        m2 = F.gelu(self.stage2(m1))
        return EncoderOutput(pooled=m2.mean(dim=(2, 3, 4)), maps=[m1, m2], tokens=None)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_features(x).pooled


class Recon(nn.Module):
    """Trivial objective: 1x1x1 conv of the last map back to 3 channels, upsampled, MSE to the input."""

    def __init__(self, encoder: ToyEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.proj = nn.Conv3d(encoder.out_dim, 3, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pred = F.interpolate(self.proj(self.encoder.forward_features(x).maps[-1]), size=x.shape[2:],
                             mode="trilinear", align_corners=False)
        return F.mse_loss(pred, x), pred


class ToyDense(nn.Module):
    """Dense head: 1x1x1 conv of the last map, upsampled to the input grid -> [B, C, D, H, W]."""

    def __init__(self, encoder: ToyEncoder, out_channels: int, residual: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Conv3d(encoder.out_dim, out_channels, 1)
        self.residual = residual

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        out = self.head(self.encoder.forward_features(x).maps[-1])
        out = F.interpolate(out, size=x.shape[2:], mode="trilinear", align_corners=False)
        # a parameter-free identity residual: output = input + f(encoder features)
        return out + x[:, : out.shape[1]] if self.residual else out


class ToyAdapter(ModelAdapter):
    """The toy model's adapter."""

    name = "toy"
    display_name = "Toy"
    color = "tab:green"
    input_kind = "volume"
    objective_infos = (ObjectiveInfo("recon", "reconstruction", uses_labels=False,
                                     description="MSE of the input reconstructed from the last feature map"),)
    sizes = tuple(TOY_SIZES)

    def size_for(self, profile: Any) -> str:
        return (getattr(profile, "encoder_sizes", {}) or {}).get(self.name, "toy")

    def build_encoder(self, size: str, **kw: Any) -> nn.Module:
        if size not in TOY_SIZES:
            raise ValueError(f"unknown toy size {size!r}; valid: {sorted(TOY_SIZES)}")
        return ToyEncoder(TOY_SIZES[size])

    def load_released(self, path: str | Path, size: str | None = None, return_extras: bool = False,
                      **kw: Any) -> nn.Module | tuple[nn.Module, Any]:
        enc = self.build_encoder(size or "toy")
        enc.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
        return (enc, {}) if return_extras else enc

    def build_objective(self, objective: str, encoder: nn.Module, profile_or_kwargs: Any = None) -> nn.Module:
        self.check_objective(objective)
        return Recon(encoder, **(dict(profile_or_kwargs) if isinstance(profile_or_kwargs, Mapping) else {}))

    def task_view(self, sample: Any, spec: Any, settings: ViewSettings) -> dict:
        return channel_view(sample, spec)

    def pretrain_index(self, case_ids: Sequence[str], depth: int, settings: ViewSettings) -> list[tuple[str, Any]]:
        return [(c, None) for c in case_ids]

    def pretrain_prepare(self, case: Any, labels: torch.Tensor, settings: ViewSettings):
        return channel_pretrain_volume(case, labels)

    def pretrain_item(self, case_id: str, key: Any, x: torch.Tensor, labels: torch.Tensor,
                      settings: ViewSettings) -> dict:
        return {"x": x, "labels": labels, "case_id": case_id}

    def dense_head(self, encoder: nn.Module, out_channels: int, width: int | None = None,
                   out_size: Sequence[int] | None = None, slice_step: int = 1, full_res: bool = False,
                   residual: bool = False) -> nn.Module:
        """The toy's decoder already works at the input's resolution (``full_res`` changes nothing); ``residual``
        adds the input to its output."""
        return ToyDense(encoder, out_channels, residual=residual)


TOY = MODEL_REGISTRY.get("toy") or register_model(ToyAdapter())
