"""FeatureMemo: one extraction per (encoder, images), the same features as a direct extraction, no false hits."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from transferlimits.models import build_encoder
from transferlimits.study.feature_memo import FeatureMemo
from transferlimits.study.features import extract_features

torch.set_num_threads(1)


def _volumes(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"x": torch.randn(3, 16, 16, 16, generator=g), "case_id": f"c{i}"} for i in range(n)]


def _slices(n, depth=4, size=28, seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.stack([torch.arange(depth, dtype=torch.float32), torch.full((depth,), float(depth))], 1)
    return [{"x": torch.randn(depth, 3, size, size, generator=g), "pos": pos, "case_id": f"v{i}"} for i in range(n)]


@pytest.mark.parametrize("model,images", [("profound", _volumes(5)), ("provicnet", _slices(3))])
def test_memo_matches_a_direct_extraction(model, images):
    torch.manual_seed(0)
    enc = build_encoder(model, "test")
    memo = FeatureMemo("cpu")
    got = memo.get(enc, images, token_samples=12, seed=3)
    ref = extract_features(enc, images, "cpu", batch_size=2, token_samples=12, seed=3)
    np.testing.assert_allclose(got.pooled, ref.pooled, rtol=1e-5, atol=1e-5)
    assert set(got.layers) == set(ref.layers)
    for name in ref.layers:
        np.testing.assert_allclose(got.layers[name], ref.layers[name], rtol=1e-5, atol=1e-5)
    assert {k: v.shape for k, v in got.tokens.items()} == {k: v.shape for k, v in ref.tokens.items()}
    assert got.case_ids == ref.case_ids


def test_each_encoder_and_image_set_is_extracted_once():
    torch.manual_seed(0)
    enc, images = build_encoder("profound", "test"), _volumes(3)
    memo = FeatureMemo("cpu")
    first = memo.get(enc, images, token_samples=6, seed=1)
    assert memo.get(enc, images, token_samples=6, seed=1) is first
    assert memo.get(enc, images) is first  # pooled rows do not depend on the token sampler
    assert memo.extractions == 1
    # other token positions, another set of the same images, a copy of the encoder: new extractions
    memo.get(enc, images, token_samples=6, seed=2)
    memo.get(enc, list(images))
    twin = copy.deepcopy(enc)
    np.testing.assert_allclose(memo.get(twin, images).pooled, first.pooled, rtol=1e-5, atol=1e-6)
    assert memo.extractions == 4


def test_a_request_with_tokens_is_not_answered_by_an_entry_without():
    torch.manual_seed(0)
    enc, images = build_encoder("profound", "test"), _volumes(3)
    memo = FeatureMemo("cpu")
    assert memo.get(enc, images).tokens == {}
    with_tokens = memo.get(enc, images, token_samples=6, seed=0)
    assert with_tokens.tokens and memo.extractions == 2


def test_bad_batch_size_is_named():
    with pytest.raises(ValueError, match="batch_size"):
        FeatureMemo("cpu", batch_size=0)
