"""Feature extraction: shapes, pooling definitions, batching invariance, seeded token samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferlimits.study.features import extract_features
from transferlimits.models import build_encoder

torch.set_num_threads(1)


def _volumes(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"x": torch.randn(3, *s, generator=g), "case_id": f"c{i}"} for i, s in enumerate(shapes)]


def _slices(depths, size=28, seed=0):
    g = torch.Generator().manual_seed(seed)
    items = []
    for i, d in enumerate(depths):
        pos = torch.stack([torch.arange(d, dtype=torch.float32), torch.full((d,), float(d))], 1)
        items.append({"x": torch.randn(d, 3, size, size, generator=g), "pos": pos, "case_id": f"v{i}"})
    return items


def test_profound_shapes_and_definitions():
    torch.manual_seed(0)
    enc = build_encoder("profound", "test")
    data = _volumes([(16, 16, 16)] * 3 + [(16, 32, 16)])
    fs = extract_features(enc, data, "cpu", batch_size=2, token_samples=10, seed=0)
    assert fs.pooled.shape == (4, 32) and fs.case_ids == ["c0", "c1", "c2", "c3"]
    assert set(fs.layers) == {"pooled", "stage1", "stage2", "stage3", "stage4"}
    for name, c in zip(enc.map_names, enc.map_dims):
        assert fs.layers[name].shape == (4, c) and fs.tokens[name].shape == (10, c)
    with torch.no_grad():
        out = enc.eval().forward_features(data[3]["x"][None])
    np.testing.assert_allclose(fs.pooled[3], out.pooled[0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fs.layers["stage2"][3], out.maps[1][0].mean((1, 2, 3)).numpy(), rtol=1e-5, atol=1e-6)
    # token samples are voxel features of the maps: ceil(10 / 4) = 3 per item, item 0 first
    with torch.no_grad():
        s1 = enc.forward_features(data[0]["x"][None]).maps[0][0].flatten(1).t().numpy()
    for row in fs.tokens["stage1"][:3]:
        assert np.isclose(s1, row, atol=1e-5).all(axis=1).any()
    assert fs.tokens["stage4"].dtype == np.float32


def test_batching_and_loader_invariance_and_seeding():
    torch.manual_seed(0)
    enc = build_encoder("profound", "test")
    data = _volumes([(16, 16, 16)] * 3)
    a = extract_features(enc, data, "cpu", batch_size=1, token_samples=6, seed=3)
    b = extract_features(enc, data, "cpu", batch_size=3, token_samples=6, seed=3)
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    c = extract_features(enc, loader, "cpu", batch_size=2, token_samples=6, seed=3)
    for other in (b, c):
        np.testing.assert_allclose(other.pooled, a.pooled, rtol=1e-5, atol=1e-6)
        for k in a.tokens:
            np.testing.assert_allclose(other.tokens[k], a.tokens[k], rtol=1e-5, atol=1e-6)
    assert c.case_ids == a.case_ids
    d = extract_features(enc, data, "cpu", token_samples=6, seed=4)
    assert not np.allclose(d.tokens["stage1"], a.tokens["stage1"])
    assert extract_features(enc, data, "cpu").tokens == {}


def test_provicnet_volume_pooling():
    torch.manual_seed(0)
    enc = build_encoder("provicnet", "test", img_size=28)
    data = _slices([3, 5])
    fs = extract_features(enc, data, "cpu", batch_size=2, token_samples=8)
    assert set(fs.layers) == {"final_cls", "final_mean_patch", *enc.map_names}
    assert fs.pooled.shape == (2, 24) and fs.layers["final_mean_patch"].shape == (2, 24)
    assert fs.tokens["block0"].shape == (8, 24)
    with torch.no_grad():
        out = enc.eval().forward_features(data[1]["x"], data[1]["pos"])
    np.testing.assert_allclose(fs.layers["final_cls"][1], out.pooled.mean(0).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fs.pooled, fs.layers["final_cls"])
    np.testing.assert_allclose(fs.layers["final_mean_patch"][1], out.tokens.mean((0, 1)).numpy(), rtol=1e-5, atol=1e-6)
    # a single-slice item ([3, S, S] + pos [2]) is a one-slice volume
    one = [{"x": data[1]["x"][2], "pos": data[1]["pos"][2]}]
    fs1 = extract_features(enc, one, "cpu")
    np.testing.assert_allclose(fs1.pooled[0], out.pooled[2].numpy(), rtol=1e-5, atol=1e-6)
    assert fs1.case_ids == ["0"]


def test_mode_restored_and_bad_arguments():
    enc = build_encoder("profound", "test").train()
    data = _volumes([(16, 16, 16)])
    extract_features(enc, data, "cpu")
    assert enc.training
    with pytest.raises(ValueError, match="batch_size"):
        extract_features(enc, data, "cpu", batch_size=0)
    with pytest.raises(ValueError, match="token_samples"):
        extract_features(enc, data, "cpu", token_samples=-1)
    with pytest.raises(ValueError, match="empty"):
        extract_features(enc, [], "cpu")
    with pytest.raises(ValueError, match="input_kind"):
        extract_features(torch.nn.Linear(2, 2), data, "cpu")
