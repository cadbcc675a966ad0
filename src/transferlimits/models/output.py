"""The common output of every encoder: a pooled embedding, the multi-scale maps, optional tokens."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

__all__ = ["EncoderOutput"]


@dataclass
class EncoderOutput:
    """What ``encoder.forward_features(x, pos)`` returns, for both encoders.

    Attributes:
        pooled: [B, C] the encoder's global embedding (profound: ``LN(GAP(stage4))``; provicnet: the
            final-norm CLS token).
        maps: feature maps, one per stage/block that the encoder exposes (names in
            ``encoder.map_names``; channels in ``encoder.map_dims``). profound: [B, C_i, D_i, H_i, W_i];
            provicnet: [B, C, H/14, W/14].
        tokens: [B, N, C] final-norm patch tokens (provicnet) or ``None`` (profound).
    """

    pooled: Tensor
    maps: list[Tensor] = field(default_factory=list)
    tokens: Tensor | None = None
