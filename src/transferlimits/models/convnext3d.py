"""The ``profound`` encoder: a dense 3D ConvNeXt-V2 with ProFound's exact parameter names.

Layout (``reference/models.md`` §1.2): a stem ``Conv3d(k4, s4)`` + channels-first LayerNorm, then three
downsampling layers (channels-first LayerNorm + ``Conv3d``) with kernel/stride 2, 2 and **1**, so the
total stride is 16 and stages 3 and 4 share a resolution. Each stage stacks ConvNeXt-V2 blocks::

    dwconv k7 -> LayerNorm (channels-last) -> Linear(C, 4C) -> GELU -> GRN(4C) -> Linear(4C, C) -> + x

with stochastic depth on the residual branch and no layer-scale. The state-dict keys are
``downsample_layers.i.{0,1}.*``, ``stages.i.j.{dwconv,norm,pwconv1,grn,pwconv2}.*`` and ``norm.*``, so
the dense ProFound checkpoints (and remapped FCMAE ones, see :mod:`.checkpoints_profound`) load
strictly.

``forward_stages`` takes an optional keep-mask on the stride-16 patch grid: that is how
:class:`~transferlimits.models.fcmae.FCMAE` emulates sparse convolution (see its docstring).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .output import EncoderOutput

__all__ = ["ConvNeXtV2_3D", "Block3D", "GRN3D", "LayerNormCF", "PROFOUND_SIZES", "build_profound"]

#: Named sizes: ``test`` for unit tests, ``smoke`` for the smoke profile, ``cpu`` for the two-core ``cpu``
#: profile (sized by ``benchmarks/estimate_cpu.py``), ``tiny`` = ConvNeXt-V2-Tiny.
PROFOUND_SIZES: dict[str, dict[str, tuple[int, ...]]] = {
    "test": {"depths": (1, 1, 1, 1), "dims": (8, 16, 16, 32)},
    "smoke": {"depths": (1, 1, 2, 1), "dims": (16, 32, 64, 128)},
    "cpu": {"depths": (1, 1, 3, 1), "dims": (16, 32, 64, 128)},
    "tiny": {"depths": (3, 3, 9, 3), "dims": (96, 192, 384, 768)},
}
#: Stride of each stage's output relative to the input (stem 4, then x2, x2, x1).
STAGE_STRIDES: tuple[int, int, int, int] = (4, 8, 16, 16)
TOTAL_STRIDE = 16


class LayerNormCF(nn.Module):
    """LayerNorm over the channel axis of a channels-first tensor [B, C, *spatial] (eps 1e-6)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return x * self.weight.view(shape) + self.bias.view(shape)


class GRN3D(nn.Module):
    """Global response normalisation on a channels-last tensor [B, D, H, W, C].

    ``Gx = ||x||_2`` over the three spatial axes, ``Nx = Gx / (mean_C(Gx) + 1e-6)``,
    ``out = gamma * (x * Nx) + beta + x``; gamma and beta have shape (1, 1, 1, 1, C), zero-initialised.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, 1, dim))

    def forward(self, x: Tensor) -> Tensor:
        gx = torch.linalg.vector_norm(x, ord=2, dim=(1, 2, 3), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class DropPath(nn.Module):
    """Stochastic depth: drop the residual branch per sample with probability ``p`` (training only)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        return x * x.new_empty(shape).bernoulli_(keep) / keep


class Block3D(nn.Module):
    """ConvNeXt-V2 block (3D). ``keep`` ([B, 1, D, H, W], 1 = visible) zeroes masked sites (FCMAE)."""

    def __init__(self, dim: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.dwconv = nn.Conv3d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.grn = GRN3D(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, keep: Tensor | None = None) -> Tensor:
        shortcut = x
        x = self.dwconv(x).permute(0, 2, 3, 4, 1)  # channels-last [B, D, H, W, C]
        x = self.act(self.pwconv1(self.norm(x)))
        if keep is not None:  # the GRN norm must see visible sites only (as a sparse GRN does)
            x = x * keep.permute(0, 2, 3, 4, 1)
        x = self.pwconv2(self.grn(x)).permute(0, 4, 1, 2, 3)
        x = shortcut + self.drop_path(x)
        return x if keep is None else x * keep


class ConvNeXtV2_3D(nn.Module):
    """Dense 3D ConvNeXt-V2 (ProFound-Conv), total stride 16.

    Args:
        in_chans: input channels; 3 = [T2W, high-b DWI, ADC]. Default 3.
        depths: blocks per stage, 4 ints. Default (3, 3, 9, 3) (Tiny).
        dims: channels per stage, 4 ints. Default (96, 192, 384, 768) (Tiny).
        drop_path_rate: maximum stochastic-depth rate, linearly increasing over blocks. Default 0.0.
        channels_last_stages: run the stem and the first N stages (0..4) in the ``channels_last_3d`` memory
            format (a CPU speed-up; the maths and the parameters are unchanged, outputs equal within fp32
            rounding). oneDNN's depthwise 3D convolution backward falls back to im2col + GEMM in the default
            layout; channels-last on the stem and stages 1-2 measured 2.09x on a ConvNeXt-V2-Tiny step, while
            stage 3 gets slower in that layout (``benchmarks/bench_training.py``). Default 0 (off).

    Input ``x`` is [B, in_chans, D, H, W] with D, H, W multiples of 16. ``forward_features`` returns an
    :class:`EncoderOutput` with ``pooled = norm(GAP(stage4))`` [B, dims[3]] and ``maps`` = the four
    stage outputs [B, dims[i], D/s_i, H/s_i, W/s_i] with s = (4, 8, 16, 16).

    Raises:
        ValueError: ``depths``/``dims`` not 4 positive ints, ``in_chans`` < 1, drop_path_rate outside [0, 1),
            ``channels_last_stages`` outside 0..4.
    """

    input_kind = "volume"

    def __init__(
        self,
        in_chans: int = 3,
        depths: Sequence[int] = (3, 3, 9, 3),
        dims: Sequence[int] = (96, 192, 384, 768),
        drop_path_rate: float = 0.0,
        channels_last_stages: int = 0,
    ) -> None:
        super().__init__()
        depths, dims = tuple(int(d) for d in depths), tuple(int(d) for d in dims)
        if len(depths) != 4 or min(depths) < 1:
            raise ValueError(f"depths must be 4 positive ints, got {depths}")
        if len(dims) != 4 or min(dims) < 1:
            raise ValueError(f"dims must be 4 positive ints, got {dims}")
        if in_chans < 1:
            raise ValueError(f"in_chans must be >= 1, got {in_chans}")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        if not 0 <= int(channels_last_stages) <= 4:
            raise ValueError(f"channels_last_stages must be in 0..4, got {channels_last_stages}")
        self.channels_last_stages = int(channels_last_stages)
        self.in_chans, self.depths, self.dims = in_chans, depths, dims
        stem = nn.Sequential(nn.Conv3d(in_chans, dims[0], kernel_size=4, stride=4), LayerNormCF(dims[0]))
        self.downsample_layers = nn.ModuleList([stem])
        for i, k in zip(range(3), (2, 2, 1)):
            self.downsample_layers.append(
                nn.Sequential(LayerNormCF(dims[i]), nn.Conv3d(dims[i], dims[i + 1], kernel_size=k, stride=k))
            )
        rates = [drop_path_rate * i / max(sum(depths) - 1, 1) for i in range(sum(depths))]
        self.stages = nn.ModuleList()
        start = 0
        for i in range(4):
            self.stages.append(nn.Sequential(*[Block3D(dims[i], rates[start + j]) for j in range(depths[i])]))
            start += depths[i]
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.out_dim = dims[-1]
        self.map_dims = list(dims)
        self.map_names = [f"stage{i + 1}" for i in range(4)]
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv3d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    @property
    def num_layers(self) -> int:
        """Number of layer ids for layer-wise lr decay ("single" mode: one id per block)."""
        return sum(self.depths)

    def layer_id(self, param_name: str) -> int:
        """Layer id of a parameter for layer-wise lr decay (ProFound "single" mode).

        The stem gets 0, block ``stages.i.j`` gets ``sum(depths[:i]) + j + 1``, downsampling layer ``i``
        (i >= 1) shares the id of the first block of stage ``i``, and anything else (the final ``norm``,
        task heads) gets ``num_layers + 1``. The lr scale is ``decay ** (num_layers + 1 - id)``.
        """
        name = param_name[len("encoder.") :] if param_name.startswith("encoder.") else param_name
        parts = name.split(".")
        if parts[0] == "downsample_layers":
            i = int(parts[1])
            return 0 if i == 0 else sum(self.depths[:i]) + 1
        if parts[0] == "stages":
            i, j = int(parts[1]), int(parts[2])
            return sum(self.depths[:i]) + j + 1
        return self.num_layers + 1

    def _check_input(self, x: Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != self.in_chans:
            raise ValueError(f"expected input [B, {self.in_chans}, D, H, W], got {tuple(x.shape)}")
        if any(s % TOTAL_STRIDE for s in x.shape[2:]):
            raise ValueError(f"D, H, W must be multiples of {TOTAL_STRIDE} (the total stride), got {tuple(x.shape[2:])}")

    def forward_stages(self, x: Tensor, keep: Tensor | None = None) -> list[Tensor]:
        """The four stage outputs.

        Args:
            x: [B, in_chans, D, H, W], D, H, W multiples of 16.
            keep: optional [B, D/16, H/16, W/16] float/bool, 1 = visible patch. Masked sites are set to
                exactly zero after the stem, after every downsampling layer, inside every block before
                the GRN, and after every block (sparse-convolution emulation, used by FCMAE).
        """
        self._check_input(x)
        maps = []
        for i in range(4):
            if i < self.channels_last_stages:
                x = x.contiguous(memory_format=torch.channels_last_3d)
            elif i == self.channels_last_stages and i > 0:
                x = x.contiguous()
            x = self.downsample_layers[i](x)
            k = None
            if keep is not None:
                k = F.interpolate(keep[:, None].to(x.dtype), size=x.shape[2:], mode="nearest")
                x = x * k
            for blk in self.stages[i]:
                x = blk(x, k)
            maps.append(x)
        return maps

    def forward_features(self, x: Tensor, pos: Tensor | None = None) -> EncoderOutput:
        """Pooled ``norm(GAP(stage4))`` [B, C4] and the four stage maps. ``pos`` is ignored (volume input)."""
        maps = self.forward_stages(x)
        pooled = self.norm(maps[-1].mean(dim=(-3, -2, -1)))
        return EncoderOutput(pooled=pooled, maps=maps, tokens=None)

    def forward(self, x: Tensor, pos: Tensor | None = None) -> Tensor:
        """The pooled embedding [B, C4]."""
        return self.forward_features(x, pos).pooled


def build_profound(size: str = "tiny", **kwargs) -> ConvNeXtV2_3D:
    """Build the ``profound`` encoder of a named size (``test``, ``smoke``, ``cpu``, ``tiny``).

    Args:
        size: key of :data:`PROFOUND_SIZES`. Default ``"tiny"``.
        **kwargs: passed to :class:`ConvNeXtV2_3D` (``in_chans``, ``drop_path_rate``, ``channels_last_stages``).

    Raises:
        ValueError: unknown size (the message lists the valid ones).
    """
    if size not in PROFOUND_SIZES:
        raise ValueError(f"unknown profound size {size!r}; valid: {sorted(PROFOUND_SIZES)}")
    return ConvNeXtV2_3D(**PROFOUND_SIZES[size], **kwargs)
