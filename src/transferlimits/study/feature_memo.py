"""One feature extraction per (encoder, image set) within a point's measurements.

A point's measurements read the same encoders on the same images several times: the alignment of the pretrained
and of the scratch start (starting vs fine-tuned encoder, pooled, per layer and token rows) and the calibration
(starting, random-init and fine-tuned encoders' pooled embedding). Both read the *calibration set*
(:func:`~transferlimits.study.calibration_point.calibration_test_set`), so each (encoder, image set) is encoded
once here: on the ``cpu`` profile a native point encoded its images 8 times and now 4 (the random init *is* the
scratch start), and encoding was ~90 % of its measurement time (measured on ProViCNet super-resolution, seed 1: 45 of 51 s in
:func:`~transferlimits.study.features.extract_features`).

:data:`MEASURE_BATCH` slices (ProViCNet) or volumes (ProFound) go through the encoder per forward pass: at 8
instead of 2 the test split of the ``cpu`` super-resolution task encodes in 4.3 s instead of 7.0 (ProViCNet) and
0.4 s instead of 1.3 (ProFound), with features equal to 6e-7 (float32 summation order).

A request without token rows is answered by any entry of the same encoder and images (the pooled and per-layer
rows do not depend on the token sampler); one with token rows only by an entry with the same ``token_samples``
and ``seed`` (the same positions). Encoders and datasets are matched by identity (the memo holds them), so a
fine-tuned copy is never mistaken for its start.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from transferlimits.study.features import FeatureSet, extract_features

__all__ = ["MEASURE_BATCH", "FeatureMemo"]

#: slices (ProViCNet) or volumes (ProFound) per forward pass of the measurements (module docstring)
MEASURE_BATCH = 8


class FeatureMemo:
    """Features of (encoder, image set) pairs, each extracted once.

    Args:
        device: where the encoders run.
        batch_size: slices or volumes per forward pass (default :data:`MEASURE_BATCH`).

    Attributes:
        extractions: how many extractions ran (the rest were answered from the memo).
    """

    def __init__(self, device: torch.device | str, batch_size: int = MEASURE_BATCH) -> None:
        if int(batch_size) < 1:
            raise ValueError(f"FeatureMemo: batch_size must be >= 1, got {batch_size}")
        self.device, self.batch_size = device, int(batch_size)
        self._entries: list[tuple[nn.Module, Any, int, int, FeatureSet]] = []
        self.extractions = 0

    def get(self, encoder: nn.Module, images: Any, token_samples: int = 0, seed: int = 0) -> FeatureSet:
        """The :class:`~transferlimits.study.features.FeatureSet` of ``encoder`` on ``images``.

        Args:
            encoder: an encoder (``input_kind``, ``forward_features``). images: a map-style dataset.
            token_samples: token rows per layer in total (0: none). seed: the token-position seed.
        """
        for enc, ds, k, s, feats in self._entries:
            if enc is encoder and ds is images and (token_samples == 0 or (k == token_samples and s == seed)):
                return feats
        feats = extract_features(encoder, images, self.device, batch_size=self.batch_size,
                                 token_samples=int(token_samples), seed=int(seed))
        self._entries.append((encoder, images, int(token_samples), int(seed), feats))
        self.extractions += 1
        return feats
