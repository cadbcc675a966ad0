"""Encoders (``profound`` 3D ConvNeXt-V2, ``provicnet`` 2.5D ViT), pre-training objectives, heads and
checkpoint loaders.

Entry points::

    from transferlimits.models import build_encoder, load_pretrained, build_objective
    enc = build_encoder("profound", "tiny")
    enc = load_pretrained("provicnet", "T2_best.pth")
    out = enc.forward_features(x, pos)   # EncoderOutput(pooled, maps, tokens)
"""

from __future__ import annotations

from .output import EncoderOutput
from .registry import build_encoder, build_objective, encoder_for_profile, load_pretrained

__all__ = ["EncoderOutput", "build_encoder", "build_objective", "encoder_for_profile", "load_pretrained"]
