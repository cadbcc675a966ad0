"""Task metrics on hand-made inputs with known answers (transferlimits.metrics.tasks)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from transferlimits.metrics.tasks import (
    METRIC_DIRECTION,
    PSNR_CAP_DB,
    aggregate,
    classification_scores,
    restoration_scores,
    segmentation_scores,
)

torch.set_num_threads(1)


# ----------------------------------------------------------------------------------- classification
def test_classification_perfect_and_known_auroc():
    labels = np.array([0, 1, 2, 3, 3, 0])
    perfect = np.eye(4)[labels]
    out = classification_scores(perfect, labels)
    assert out == {"auroc_ge4": 1.0, "auroc_ge3": 1.0, "qwk": 1.0, "accuracy": 1.0}
    # AUROC >= 4 uses p(2) + p(3): scores 0.1, 0.2, 0.3, 0.4 vs labels (>=2): 0, 1, 0, 1 -> 3 of 4 pairs ordered
    probs = np.array([[0.9, 0, 0.1, 0], [0.8, 0, 0.2, 0], [0.7, 0, 0, 0.3], [0.6, 0, 0, 0.4]])
    out = classification_scores(probs, [0, 2, 1, 3])
    assert out["auroc_ge4"] == pytest.approx(0.75)
    assert out["accuracy"] == pytest.approx(0.25)


def test_qwk_penalises_far_errors_more():
    labels = np.array([0, 1, 2, 3] * 3)
    near = np.eye(4)[np.clip(labels + 1, 0, 3)]
    far = np.eye(4)[3 - labels]
    assert classification_scores(near, labels)["qwk"] > classification_scores(far, labels)["qwk"]


def test_single_class_auroc_is_nan_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = classification_scores(np.full((3, 4), 0.25), [3, 3, 3])
    assert math.isnan(out["auroc_ge4"]) and math.isnan(out["auroc_ge3"])


# ------------------------------------------------------------------------------------- segmentation
def cube(shape, start, size):
    m = np.zeros(shape, dtype=np.uint8)
    m[tuple(slice(s, s + size) for s in start)] = 1
    return m


def test_identical_masks():
    m = cube((8, 10, 10), (2, 2, 2), 3)
    out = segmentation_scores(m.astype(float), m, spacing=(3.0, 0.5, 0.5))
    assert out == {"dice": 1.0, "dice_all": 1.0, "hd95": 0.0, "lesion_sensitivity": 1.0}


def test_hd95_of_offset_cubes_uses_spacing():
    """2×2×2 cubes 5 voxels apart along z: surface distances are 4 and 5 voxels, the 95th percentile is 5."""
    a, b = cube((12, 6, 6), (0, 2, 2), 2), cube((12, 6, 6), (5, 2, 2), 2)
    out = segmentation_scores(a, b, spacing=(3.0, 1.0, 1.0))
    assert out["hd95"] == pytest.approx(15.0)
    assert out["dice"] == 0.0 and out["lesion_sensitivity"] == 0.0


def test_dice_and_lesion_sensitivity_known_values():
    target = cube((10, 12, 12), (1, 1, 1), 2) | cube((10, 12, 12), (6, 8, 8), 2)  # two lesions of 8 voxels
    pred = cube((10, 12, 12), (1, 1, 1), 2).astype(float)  # finds one
    out = segmentation_scores(pred, target, spacing=(1, 1, 1))
    assert out["dice"] == pytest.approx(2 * 8 / (8 + 16))
    assert out["lesion_sensitivity"] == pytest.approx(0.5)
    diag = np.zeros((4, 4, 4), np.uint8)
    diag[0, 0, 0] = diag[1, 1, 1] = 1  # corner-touching voxels: one lesion under 26-connectivity
    assert segmentation_scores(diag * 0.9, diag, (1, 1, 1))["lesion_sensitivity"] == 1.0
    half = diag.astype(float)
    half[1, 1, 1] = 0.4  # below threshold
    assert segmentation_scores(half, diag, (1, 1, 1))["lesion_sensitivity"] == 1.0  # still touches the lesion


def test_empty_conventions_and_batch_aggregation():
    empty = np.zeros((6, 6, 6))
    both_empty = segmentation_scores(empty, empty, (1, 1, 1))
    assert math.isnan(both_empty["dice"]) and both_empty["dice_all"] == 1.0
    assert math.isnan(both_empty["hd95"]) and math.isnan(both_empty["lesion_sensitivity"])
    fp = segmentation_scores(cube((6, 6, 6), (1, 1, 1), 2), empty, (1, 1, 1))
    assert fp["dice_all"] == 0.0 and math.isnan(fp["hd95"])
    lesion = cube((6, 6, 6), (1, 1, 1), 2)
    batch = segmentation_scores(np.stack([lesion, empty, lesion]), np.stack([lesion, empty, empty]), (1, 1, 1))
    assert batch["dice"] == 1.0  # only the case with a lesion
    assert batch["dice_all"] == pytest.approx((1 + 1 + 0) / 3)
    assert batch["n_cases"] == 3 and batch["n_cases_with_lesion"] == 1


# -------------------------------------------------------------------------------------- restoration
def test_identical_volumes():
    t = np.random.default_rng(0).random((12, 12, 12))
    out = restoration_scores(t, t, {"body": np.ones_like(t), "gland": t > 0.5})
    assert out["mae"] == 0.0 and out["nmse"] == 0.0 and out["mae_gland"] == 0.0
    assert out["psnr"] == PSNR_CAP_DB and out["psnr_gland"] == PSNR_CAP_DB
    assert out["ssim"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("shape", [(16, 64, 64), (9, 20, 30), (5, 12, 12), (4, 8, 8)])
def test_ssim_equals_monai(shape):
    """The separable SSIM is MONAI's SSIMMetric (cubic Gaussian window, valid positions) to float32 rounding,
    including the shrunken odd window of a small volume."""
    from monai.metrics import SSIMMetric

    rng = np.random.default_rng(sum(shape))
    t = rng.normal(size=shape)
    p = t + 0.3 * rng.normal(size=shape)
    body = np.ones(shape)
    got = restoration_scores(p, t, {"body": body})["ssim"]
    win = min(11, *shape)
    win = win if win % 2 == 1 else win - 1
    as_t = lambda a: torch.from_numpy(a[None, None].astype(np.float32))  # noqa: E731
    ref = SSIMMetric(spatial_dims=3, data_range=float(t.max() - t.min()), win_size=win)(as_t(p), as_t(t))
    assert got == pytest.approx(float(ref.mean()), abs=2e-6)
    assert 0.0 < got < 1.0


def test_known_offset_error_and_masking():
    t = np.zeros((8, 8, 8))
    t[2:6, 2:6, 2:6] = 1.0
    body = np.ones_like(t)
    pred = t.copy()
    pred[0, 0, 0] = 0.5  # one error, outside the gland
    out = restoration_scores(pred, t, {"body": body, "gland": t > 0})
    assert out["mae"] == pytest.approx(0.5 / 512)
    assert out["psnr"] == pytest.approx(10 * np.log10(1.0 / (0.25 / 512)))  # data range 1
    assert out["nmse"] == pytest.approx(0.25 / 64)
    assert out["mae_gland"] == 0.0 and out["psnr_gland"] == PSNR_CAP_DB
    assert out["ssim"] < 1.0
    assert "psnr_gland" not in restoration_scores(pred, t, {"body": body})


def test_metric_direction_covers_every_name():
    t = np.random.default_rng(1).random((8, 8, 8))
    names = set(restoration_scores(t, t, {"body": t > 0, "gland": t > 0.5}))
    names |= set(segmentation_scores(t, t > 0.5, (1, 1, 1)))
    names |= set(classification_scores(np.eye(4), [0, 1, 2, 3]))
    assert names <= set(METRIC_DIRECTION)
    assert METRIC_DIRECTION["hd95"] is False and METRIC_DIRECTION["dice"] is True


def test_aggregate():
    out = aggregate([{"a": 1.0, "b": float("nan")}, {"a": 3.0}])
    assert out["a"] == 2.0 and math.isnan(out["b"])


def test_ill_arguments():
    with pytest.raises(ValueError, match=r"\[n, 4\]"):
        classification_scores(np.ones((3, 3)), [0, 1, 2])
    with pytest.raises(ValueError, match="labels must be in"):
        classification_scores(np.ones((2, 4)), [0, 4])
    with pytest.raises(ValueError, match="share"):
        segmentation_scores(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)), (1, 1, 1))
    with pytest.raises(ValueError, match="spacing"):
        segmentation_scores(np.zeros((4, 4, 4)), np.zeros((4, 4, 4)), (1, 1))
    with pytest.raises(ValueError, match="body"):
        restoration_scores(np.zeros((4, 4, 4)), np.zeros((4, 4, 4)), {"gland": np.ones((4, 4, 4))})
    with pytest.raises(ValueError, match="data_range"):
        restoration_scores(np.zeros((4, 4, 4)), np.zeros((4, 4, 4)), {"body": np.ones((4, 4, 4))})
