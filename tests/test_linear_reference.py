"""Closed-form linear references: the filter recovers a known linear map, the logistic reference separates a
separable lesion, the kinds say which tasks have one, and the smoke cohort's file is written with every task."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.ndimage import correlate

from transferlimits.config import get_profile
from transferlimits.data.cohort import build_cohort
from transferlimits.metrics.linear_reference import (apply_filter, fit_filter, fit_voxel_logistic,
                                                     neighbourhood_columns, voxel_features)
from transferlimits.study.linear_reference import (linear_references, read_linear_references,
                                                   write_linear_references)
from transferlimits.tasks import get_kind, get_task


def test_the_filter_recovers_a_known_linear_map():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 3))
    xs = [rng.normal(size=(6, 9, 8)).astype(np.float32) for _ in range(4)]
    ys = [correlate(x.astype(np.float64), kernel, mode="nearest") + 0.5 for x in xs]  # edge-padded like the columns
    w = fit_filter(zip(xs, ys), ridge=1e-9)
    np.testing.assert_allclose(w[:27].reshape(3, 3, 3), kernel, atol=1e-4)
    assert w[27] == pytest.approx(0.5, abs=1e-4)
    np.testing.assert_allclose(apply_filter(xs[0], w), ys[0], atol=1e-3)
    assert neighbourhood_columns(xs[0]).shape == (6 * 9 * 8, 28)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="pair 0"):
        fit_filter([(np.zeros((2, 3, 3)), np.zeros((2, 3, 4)))])
    with pytest.raises(ValueError, match="at least one"):
        fit_filter([])
    with pytest.raises(ValueError, match=r"\[D, H, W\]"):
        neighbourhood_columns(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"\[3, D, H, W\]"):
        voxel_features(np.zeros((2, 4, 4, 4)))
    with pytest.raises(ValueError, match="lesion and background"):
        fit_voxel_logistic([(np.zeros((3, 4, 4, 4)), np.zeros((4, 4, 4)))])


def test_the_logistic_reference_separates_a_bright_lesion():
    rng = np.random.default_rng(1)
    pairs = []
    for _ in range(3):
        y = np.zeros((6, 12, 12))
        y[2:4, 3:7, 3:7] = 1
        x = rng.normal(0, 0.1, size=(3, 6, 12, 12)) + 2.0 * y[None]
        pairs.append((x, y))
    clf, share = fit_voxel_logistic(pairs, n_background=500)
    x, y = pairs[0]
    pred = clf.predict_proba(voxel_features(x))[:, 1].reshape(y.shape) > 0.5
    assert share == pytest.approx(y.mean())
    assert 2 * (pred & (y > 0)).sum() / (pred.sum() + (y > 0).sum()) > 0.9


def test_kinds_that_have_a_reference():
    """Classification and translation have none: the kind returns None without touching the data."""
    for task in ("classification", "modality_translation"):
        assert get_kind(get_task(task).kind).linear_reference(get_task(task), [], []) is None


@pytest.fixture(scope="module")
def smoke():
    prof = get_profile("smoke")
    return prof, build_cohort(prof, progress=False)


def test_smoke_cohort_references(smoke, tmp_path):
    prof, cohort = smoke
    refs = write_linear_references(prof, cohort, "test machine", tmp_path / "linear_references.json")
    assert json.loads((tmp_path / "linear_references.json").read_text()) == json.loads(json.dumps(refs))
    assert read_linear_references(tmp_path / "linear_references.json") == json.loads(json.dumps(refs))
    assert refs["hardware"] == "test machine" and refs["profile"] == "smoke"
    restoration = [t for t in prof.tasks if t in ("super_resolution", "distortion_correction")]
    assert set(restoration) <= set(refs["tasks"])
    for task in restoration:
        ref = refs["tasks"][task]
        assert ref["metric"] == get_task(task).primary_metric and np.isfinite(ref["linear_filter"])
        assert ref["gain_mean"] == pytest.approx(ref["linear_filter"] - ref["identity"], abs=1e-9)
    assert "classification" not in refs["tasks"] and "modality_translation" not in refs["tasks"]
    again = linear_references(prof, cohort, "test machine")
    for task in refs["tasks"]:
        assert {k: v for k, v in again["tasks"][task].items() if k != "seconds"} == \
            {k: v for k, v in refs["tasks"][task].items() if k != "seconds"}


@pytest.mark.parametrize("content, problem", [(None, "cannot be read"), ("{not json", "cannot be read"),
                                              ('{"profile": "cpu"}', "no 'tasks' mapping")])
def test_reading_a_bad_references_file_names_it(tmp_path, content, problem):
    """A render reads the computing run's file: a missing or malformed one is an error naming the file."""
    path = tmp_path / "linear_references.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=problem) as err:
        read_linear_references(path)
    assert str(path) in str(err.value)
