"""The encoder-ablated control (STUDY §5.1): the same head and recipe with the encoder's output replaced by zeros.

A task model trained on a :class:`ZeroedEncoder` shows what the head alone makes of the task: since every learnable
path to the output goes through the encoder (:mod:`transferlimits.models.fullres`), the ablated model can use only
its biases (and the parameter-free identity residual of a restoration task). Its score ``P_ablated`` gives each
initialisation's ``encoder_share = (P - P_ablated) / (P - P_baseline)``.

The zeros have the shapes the real encoder would return: the wrapped encoder runs once per input shape, without
gradients, and its output is cached as zeros (so an ablated run does not pay for the encoder). Every attribute
the heads read (``out_dim``, ``map_dims``, ``patch_size``, ``input_kind`` ...) is the wrapped encoder's.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["ZeroedEncoder", "zeros_like_output"]


def zeros_like_output(out: Any) -> Any:
    """Zeros shaped like an encoder output (a tensor, a list/tuple/dict of them, or a dataclass of them)."""
    if isinstance(out, Tensor):
        return torch.zeros_like(out)
    if is_dataclass(out) and not isinstance(out, type):
        return replace(out, **{f.name: zeros_like_output(getattr(out, f.name)) for f in fields(out)})
    if isinstance(out, (list, tuple)):
        return type(out)(zeros_like_output(v) for v in out)
    if isinstance(out, dict):
        return {k: zeros_like_output(v) for k, v in out.items()}
    return out


class ZeroedEncoder(nn.Module):
    """An encoder whose ``forward_features`` / ``forward`` return zeros of the real output's shapes.

    Args:
        encoder: the real encoder (kept as ``inner``, frozen: its parameters get ``requires_grad=False``).

    Attribute reads that ``nn.Module`` does not resolve fall through to ``inner`` (``out_dim``, ``map_dims``,
    ``patch_size``, ``input_kind``, ``layer_id`` ...).
    """

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.inner = encoder
        for p in self.inner.parameters():
            p.requires_grad_(False)
        self._zeros: dict[tuple, Any] = {}

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("inner"), name)

    def _key(self, args: tuple[Any, ...]) -> tuple:
        return tuple((tuple(a.shape), a.dtype, a.device) if isinstance(a, Tensor) else a for a in args)

    def forward_features(self, *args: Any) -> Any:
        key = self._key(args)
        if key not in self._zeros:
            was_training = self.inner.training
            self.inner.eval()
            with torch.no_grad():
                self._zeros[key] = zeros_like_output(self.inner.forward_features(*args))
            self.inner.train(was_training)
        return self._zeros[key]

    def forward(self, x: Tensor, pos: Tensor | None = None) -> Tensor:
        return self.forward_features(x, pos).pooled
