"""Foundation models as registered adapters (ProFound 3D ConvNeXt-V2, ProViCNet 2.5D ViT), their
pre-training objectives, heads and checkpoint loaders.

Importing this package registers the study's two models (``models.adapters``). Entry points::

    from transferlimits.models import get_model, build_encoder, load_pretrained, build_objective
    adapter = get_model("profound")          # everything model-specific (see adapters/base.py)
    enc = build_encoder("profound", "tiny")
    enc = load_pretrained("provicnet", "T2_best.pth")
    out = enc.forward_features(x, pos)   # EncoderOutput(pooled, maps, tokens)
"""

from __future__ import annotations

from transferlimits.models.output import EncoderOutput
from transferlimits.models.registry import (
    MODEL_REGISTRY,
    build_encoder,
    build_objective,
    encoder_for_profile,
    get_model,
    load_pretrained,
    model_names,
    register_model,
)
from transferlimits.models import adapters  # noqa: E402,F401  (registers ProFound and ProViCNet)

__all__ = ["EncoderOutput", "MODEL_REGISTRY", "build_encoder", "build_objective", "encoder_for_profile",
           "get_model", "load_pretrained", "model_names", "register_model", "adapters"]
