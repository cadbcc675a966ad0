"""Task kinds: the registry of kinds, their losses and scores against independent implementations, the
scalar-regression metrics, and a new kind added as one module-like class."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from transferlimits import config
from transferlimits.metrics.regression import scalar_scores
from transferlimits.tasks import KIND_REGISTRY, TASK_REGISTRY, TaskKind, TaskSpec, get_kind, get_task, register_kind
from transferlimits.data.views import channel_view, stack_view
from transferlimits.tasks.kinds import KIND_MODULES
from transferlimits.tasks.registry import TaskSample, check_profile_tasks


def test_kind_names_recorded_in_metrics_are_unchanged():
    assert set(KIND_REGISTRY) >= {"classification", "segmentation", "regression", "scalar_regression"}
    assert {get_task(t).kind for t in config.TASKS} == {"classification", "segmentation", "regression"}


def test_config_tasks_are_the_registered_study_tasks():
    assert config.TASKS == config.STUDY_TASKS == ("classification", "segmentation", "super_resolution",
                                                  "distortion_correction", "modality_translation")
    assert config.STUDY_TASKS == tuple(TASK_REGISTRY)[:5]  # registered first, in the book's order


def test_profile_task_names_are_checked_by_the_registry():
    check_profile_tasks(config.get_profile("cpu"))
    prof = config.get_profile("smoke", control_tasks=("classification", "detection"))
    with pytest.raises(ValueError, match=r"profile 'smoke': unknown task\(s\) \['detection'\]; valid: \['classification'"):
        check_profile_tasks(prof)


@pytest.mark.parametrize("kind, dense, head", [("classification", False, "classifier"),
                                               ("segmentation", True, "dense"), ("regression", True, "dense"),
                                               ("scalar_regression", False, "scalar")])
def test_head_choice_and_density(kind, dense, head):
    k = get_kind(kind)
    assert (k.dense, k.head) == (dense, head)


def test_segmentation_is_binary():
    spec = get_task("segmentation")
    assert get_kind("segmentation").head_channels(spec) == 1
    with pytest.raises(ValueError, match="binary"):
        TaskSpec("seg3", "segmentation", 3, "dice", True, ("dice",), ("t2w", "", ""), "t2w", True, lambda c, r: None)


@pytest.mark.parametrize("pred, target", [([1.0, 2.0, 4.0], [1.5, 2.0, 3.0]), ([0.0, 1.0], [1.0, 3.0])])
def test_scalar_scores_match_independent_formulas(pred, target):
    s = scalar_scores(np.array(pred), np.array(target))
    err = np.subtract(pred, target)
    assert s["mae"] == pytest.approx(np.mean(np.abs(err)))
    assert s["rmse"] == pytest.approx(np.sqrt(np.mean(err ** 2)))
    assert s["pearson_r"] == pytest.approx(stats.pearsonr(pred, target)[0])
    assert np.isnan(scalar_scores(np.array([1.0, 1.0]), np.array([0.0, 2.0]))["pearson_r"])
    with pytest.raises(ValueError, match="same shape"):
        scalar_scores(np.zeros(2), np.zeros(3))


def test_scalar_directions_extend_the_metric_table():
    d = get_kind("scalar_regression").directions()
    assert d["rmse"] is False and d["pearson_r"] is True and d["mae"] is False
    assert "rmse" not in get_kind("regression").directions()


@pytest.mark.parametrize("task, power", [("super_resolution", 2), ("distortion_correction", 2),
                                         ("modality_translation", 1), (None, 1)])
def test_dense_regression_loss_is_body_masked_error_of_the_primary_metric_plus_aux(task, power):
    """PSNR-scored tasks train on the squared error, the gland-MAE task (and no spec) on the absolute error."""
    kind = get_kind("regression")
    spec = get_task(task) if task else None
    g = torch.Generator().manual_seed(0)
    pred, aux, y = (torch.randn(2, 1, 3, 4, 4, generator=g) for _ in range(3))
    body = (torch.rand(2, 3, 4, 4, generator=g) > 0.5).to(torch.uint8)
    batch = {"y": y[:, 0], "masks": {"body": body}}
    m = body.bool().unsqueeze(1)
    expected = (pred - y).abs()[m].pow(power).mean() + 0.4 * (aux - y).abs()[m].pow(power).mean()
    assert float(kind.loss(spec, (pred, aux), batch)) == pytest.approx(float(expected), rel=1e-5)


def test_classification_scores_and_targets():
    kind = get_kind("classification")
    state = kind.new_state()
    logits = torch.tensor([[3.0, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, 0, 3.0]])
    kind.add_batch(state, get_task("classification"), logits, {"y": torch.tensor([0, 1, 3])}, ["a", "b", "c"],
                   None, False, 0)
    scores, per_case, examples = kind.finish(state, get_task("classification"), ["a", "b", "c"], 0)
    assert scores["accuracy"] == pytest.approx(1.0) and [d["label"] for d in per_case] == [0, 1, 3]
    assert examples == {} and kind.case_target({"y": np.int64(2)}) == 2


def test_a_new_kind_is_one_class_and_one_registration():
    class CountKind(TaskKind):
        name = "count_test_kind"
        head = "scalar"
        regression = True

    with pytest.raises(ValueError, match="unknown kind"):
        TaskSpec("count", "count_test_kind", 1, "mae", False, ("mae",), ("t2w", "", ""), "t2w", True,
                 lambda c, r: None)
    register_kind(CountKind(), overwrite=True)
    try:
        spec = TaskSpec("count", "count_test_kind", 1, "mae", False, ("mae",), ("t2w", "", ""), "t2w", True,
                        lambda c, r: None)
        assert get_kind(spec.kind).baseline(spec, {}) == {}  # a kind without a trivial baseline has none
        with pytest.raises(ValueError, match="already registered"):
            register_kind(CountKind())
    finally:
        KIND_REGISTRY.pop("count_test_kind")


def test_a_new_kind_owns_its_view_target_and_an_unknown_kind_is_an_error():
    class DoubleKind(TaskKind):
        name = "double_test_kind"
        head = "scalar"
        regression = True

        def target_tensor(self, sample, spec, units=(0.0, 1.0)):
            return torch.tensor(2.0 * float(sample.target), dtype=torch.float32)

    sample = TaskSample({"t2w": np.arange(4 * 8 * 8, dtype=np.float32).reshape(4, 8, 8)}, 3, {}, "c0")
    register_kind(DoubleKind(), overwrite=True)
    try:
        spec = TaskSpec("double", "double_test_kind", 1, "mae", False, ("mae",), ("t2w", "", ""), "t2w", True,
                        lambda c, r: None)
        for item in (channel_view(sample, spec), stack_view(sample, spec, 14)):
            assert float(item["y"]) == 6.0 and (item["offset"], item["scale"]) == (0.0, 1.0)
        with pytest.raises(NotImplementedError, match="'classification_copy' does not define target_tensor"):
            type("Copy", (TaskKind,), {"name": "classification_copy"})().target_tensor(sample, spec)
    finally:
        KIND_REGISTRY.pop("double_test_kind")
    with pytest.raises(ValueError, match=r"unknown task kind 'double_test_kind'; valid: \['classification'"):
        channel_view(sample, spec)


def test_the_kinds_package_imports_every_kind_module():
    assert {"classification", "dense_regression", "scalar_regression", "segmentation"} <= set(KIND_MODULES)
    assert list(KIND_REGISTRY)[:4] == ["classification", "regression", "scalar_regression", "segmentation"]


def test_segmentation_draws_lesion_cases_half_the_time():
    kind = get_kind("segmentation")
    ds = [{"y": np.zeros((2, 4, 4), np.uint8)} for _ in range(9)]
    for i in (0, 4, 7):
        ds[i]["y"][1, 2, 2] = 1
    w = kind.train_weights(ds)
    assert w.sum() == pytest.approx(1.0) and w[[0, 4, 7]].sum() == pytest.approx(0.5)
    assert len(set(np.round(w, 12))) == 2  # one weight for lesion cases, one for the others
    assert kind.train_weights(ds[1:4]) is None  # no lesion case: plain shuffling
    assert get_kind("classification").train_weights(ds) is None


def test_segmentation_dice_term_is_over_the_batch():
    """A lesion-free case in the batch does not add its own Dice term (MONAI DiceCELoss(batch=True))."""
    kind = get_kind("segmentation")
    y = torch.zeros(2, 1, 2, 4, 4)
    y[0, 0, 1, 1:3, 1:3] = 1
    pred = torch.where(y > 0, 12.0, -12.0)
    assert float(kind.voxel_loss(pred, y, {})) < 0.01  # ~0, though case 1 has no lesion (per case: ~0.5)
