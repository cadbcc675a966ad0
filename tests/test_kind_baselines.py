"""Trivial baselines of the task kinds (STUDY §5), against values computed independently on the same data, and
the choice of the baseline a run must beat."""

from __future__ import annotations

import numpy as np
import pytest

from transferlimits.metrics.tasks import restoration_scores
from transferlimits.tasks import get_kind, get_task
from transferlimits.tasks.kinds.base import strongest_baseline

from _finetune_data import tiny_splits


class _WithIdentity:
    """A dense-regression dataset whose degraded input is the target plus small noise (identity is strong)."""

    def __init__(self, ds, noise: float):
        self.ds, rng = ds, np.random.default_rng(0)
        self.inputs = [np.asarray(ds[i]["y"]) + noise * rng.normal(size=np.shape(ds[i]["y"])) for i in range(len(ds))]

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        return self.ds[i]

    def identity_input(self, i):
        return self.inputs[i]


def test_class_prior_has_chance_auroc_and_majority_accuracy():
    data = tiny_splits("classification", "profound", n_train=9, n_test=8)
    out = get_kind("classification").baseline(get_task("classification"), data)
    train = [int(data["train"][i]["y"]) for i in range(9)]  # 0,1,2,3,0,1,2,3,0: class 0 is the majority
    test = np.array([int(data["test"][i]["y"]) for i in range(8)])
    assert np.bincount(train).argmax() == 0
    assert out["class_prior"]["auroc_ge4"] == 0.5 and out["class_prior"]["accuracy"] == np.mean(test == 0)


def test_empty_mask_scores_zero_dice_on_lesion_cases():
    data = tiny_splits("segmentation", "profound", n_test=6)
    out = get_kind("segmentation").baseline(get_task("segmentation"), data, (3.0, 1.0, 1.0))["empty_mask"]
    assert out["lesion_sensitivity"] == 0.0 and set(out) >= {"dice", "lesion_sensitivity"}


@pytest.mark.parametrize("noise, expected", [(0.01, "identity"), (None, "train_median")])
def test_dense_regression_must_beat_the_strongest_baseline(noise, expected):
    spec = get_task("super_resolution")
    data = tiny_splits("regression", "profound", n_train=4, n_test=3)
    if noise is not None:
        data["test"] = _WithIdentity(data["test"], noise)
    out = get_kind("regression").baseline(spec, data)
    test = data["test"]
    median = np.median(np.concatenate([np.asarray(data["train"][i]["y"]).ravel() for i in range(4)]))  # body = all
    psnr = np.mean([restoration_scores(np.full(np.shape(test[i]["y"]), median), np.asarray(test[i]["y"]),
                                       {k: np.asarray(v) for k, v in test[i]["masks"].items()})["psnr"]
                    for i in range(3)])
    assert out["train_median"]["psnr"] == pytest.approx(psnr)
    assert ("identity" in out) == (noise is not None)
    assert strongest_baseline(spec, out)[0] == expected


def test_scalar_regression_baseline_is_the_train_median_constant():
    spec = type("Spec", (), {"primary_metric": "mae", "higher_is_better": False})()
    data = tiny_splits("scalar_regression", "profound", n_train=5, n_test=6)
    out = get_kind("scalar_regression").baseline(spec, data)["train_median"]
    train = [float(data["train"][i]["y"]) for i in range(5)]  # 0, 1, 2, 0, 1 -> median 1
    test = np.array([float(data["test"][i]["y"]) for i in range(6)])
    assert out["mae"] == pytest.approx(np.mean(np.abs(test - np.median(train))))
    assert strongest_baseline(spec, {"a": {"mae": 2.0}, "b": {"mae": 1.0}, "c": {"mae": float("nan")}}) == ("b", 1.0)
    assert strongest_baseline(spec, {}) is None
