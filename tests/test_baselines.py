"""Facts about the trivial baselines (transferlimits.metrics.baselines), against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from transferlimits.metrics.baselines import (
    class_prior,
    class_prior_scores,
    empty_mask_scores,
    identity_scores,
    median_constant_scores,
    train_median,
)

SHAPE = (4, 6, 6)


def body_mask() -> np.ndarray:
    m = np.zeros(SHAPE, dtype=np.uint8)
    m[1:3, 1:5, 1:5] = 1  # 32 voxels
    return m


def ramp(offset: float = 0.0) -> np.ndarray:
    return np.arange(np.prod(SHAPE), dtype=np.float64).reshape(SHAPE) / 10.0 + offset


# ------------------------------------------------------------------------------------ restoration
def test_identity_scores_hand_computed():
    target, body = ramp(), body_mask()
    degraded = target + 0.5  # error 0.5 everywhere
    out = identity_scores(degraded, target, {"body": body}, ssim=False)
    inside = target[body > 0]
    data_range = inside.max() - inside.min()
    assert out["n_cases"] == 1
    assert out["mae"] == pytest.approx(0.5)
    assert out["psnr"] == pytest.approx(10 * math.log10(data_range**2 / 0.25))
    assert out["nmse"] == pytest.approx(32 * 0.25 / np.sum(inside**2))
    assert math.isnan(out["ssim"])


def test_identity_scores_average_cases_and_accept_batches():
    t = np.stack([ramp(), ramp(1.0)])
    d = t + np.array([0.5, 1.5])[:, None, None, None]
    body = np.stack([body_mask(), body_mask()])
    batched = identity_scores(d, t, {"body": body}, ssim=False)
    listed = identity_scores(list(d), list(t), [{"body": body[0]}, {"body": body[1]}], ssim=False)
    assert batched["mae"] == pytest.approx(1.0) == listed["mae"]  # mean of 0.5 and 1.5
    assert batched["n_cases"] == 2
    perfect = identity_scores(t, t, {"body": body}, ssim=True)
    assert perfect["psnr"] == 100.0 and perfect["ssim"] == pytest.approx(1.0)  # capped PSNR, identical volumes


def test_train_median_and_constant_scores():
    body = body_mask()
    train = [np.full(SHAPE, 7.0), np.full(SHAPE, 9.0), np.full(SHAPE, 100.0)]
    train[2][body == 0] = -1000.0  # outside the body: never counted
    train[0][body > 0] = 1.0
    assert train_median(train, [{"body": body}] * 3) == pytest.approx(9.0)  # median of 32×1, 32×9, 32×100
    target = ramp()
    out = median_constant_scores(train, [{"body": body}] * 3, target, {"body": body}, ssim=False)
    assert out["constant"] == 9.0
    assert out["mae"] == pytest.approx(np.mean(np.abs(9.0 - target[body > 0])))
    with pytest.raises(ValueError, match="empty"):
        train_median(train, [{"body": np.zeros(SHAPE)}] * 3)


# ------------------------------------------------------------------------------------ classification
def test_class_prior_scores_hand_computed():
    train = [0, 0, 0, 1, 2]
    assert class_prior(train) == pytest.approx([0.6, 0.2, 0.2, 0.0])
    test = [0, 1, 2, 3, 0]
    out = class_prior_scores(train, test)
    assert out["auroc_ge4"] == 0.5 and out["auroc_ge3"] == 0.5  # constant scores
    assert out["accuracy"] == pytest.approx(2 / 5)  # the majority class 0 is right twice
    assert out["qwk"] == pytest.approx(0.0)  # a constant rater agrees no better than chance
    assert out["prior"] == pytest.approx([0.6, 0.2, 0.2, 0.0])


def test_class_prior_ties_go_to_lower_class_and_errors():
    assert class_prior_scores([1, 1, 3, 3], [1, 3, 3, 3])["accuracy"] == pytest.approx(0.25)  # predicts class 1
    with pytest.raises(ValueError, match="train_labels"):
        class_prior([0, 4])


# ------------------------------------------------------------------------------------ segmentation
def test_empty_mask_scores_hand_computed():
    lesion = np.zeros(SHAPE, dtype=np.uint8)
    lesion[1, 2:4, 2:4] = 1
    lesion[3, 0, 0] = 1  # two components
    free = np.zeros(SHAPE, dtype=np.uint8)
    out = empty_mask_scores([lesion, free], (3.0, 0.5, 0.5))
    assert out["dice"] == 0.0  # mean over cases with a lesion only
    assert out["dice_all"] == pytest.approx(0.5)  # 0 for the lesion case, 1 for the empty-and-empty case
    assert out["lesion_sensitivity"] == 0.0 and math.isnan(out["hd95"])
    assert out["n_cases"] == 2 and out["n_cases_with_lesion"] == 1
    per_case = empty_mask_scores(np.stack([lesion, free]), [(3.0, 0.5, 0.5), (2.0, 1.0, 1.0)])
    assert per_case["dice_all"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="spacings"):
        empty_mask_scores([lesion, free], [(3.0, 0.5, 0.5)] * 3)


@pytest.mark.parametrize("bad", [np.zeros((2, 3)), [np.zeros((2, 3))], []])
def test_volume_layout_errors(bad):
    with pytest.raises(ValueError, match="degraded"):
        identity_scores(bad, ramp(), {"body": body_mask()})
