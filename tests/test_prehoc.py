"""Pre-hoc transferability (study.prehoc): per-patch targets that vary, their cells, and the recorded entry.

Facts checked against independent computations: the cells of ``patch_rows`` (encoders whose features ARE the mean
input over their cell), the kinds' per-cell targets (loops over the boxes), and, on the real smoke cohort, that
no task's LogME target is degenerate for either model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from transferlimits import paths
from transferlimits.config import TASKS, get_profile
from transferlimits.models.output import EncoderOutput
from transferlimits.study import runs as study_runs
from transferlimits.study.patch_features import cell_edges, patch_rows
from transferlimits.study.prehoc import transferability
from transferlimits.study.schema_transfer import validate_transferability
from transferlimits.tasks import get_kind, get_task
from transferlimits.tasks.kinds.dense import DenseKind, box_means

torch.set_num_threads(1)
CPU = torch.device("cpu")


class PoolVolume(nn.Module):
    """A volume 'encoder' whose last map is the mean input over (kz, ky, kx) blocks: cell features = cell means."""

    input_kind, map_names = "volume", ("coarse",)

    def __init__(self, kernel=(4, 8, 8)):
        super().__init__()
        self.kernel = kernel

    def forward_features(self, x, pos=None):
        m = F.avg_pool3d(x, self.kernel)
        return EncoderOutput(pooled=m.mean((2, 3, 4)), maps=[m])


class PoolSlices(nn.Module):
    """A slice 'encoder': each slice [3, S, S] -> its mean over (k, k) blocks (a token grid of S / k)."""

    input_kind, map_names = "slices", ("block0", "block1")

    def __init__(self, k=8):
        super().__init__()
        self.k = k

    def forward_features(self, x, pos=None):
        m = F.avg_pool2d(x, self.k)
        return EncoderOutput(pooled=m.mean((2, 3)), maps=[m * 0, m])


class Items(torch.utils.data.Dataset):
    """Items with ``x`` (volume, or the volume's slices as [D, 3, H, W] stacks), ``y`` and an optional input."""

    def __init__(self, vols, ys, slices=False, identity=None):
        self.vols, self.ys, self.slices, self.identity = vols, ys, slices, identity

    def __len__(self):
        return len(self.vols)

    def __getitem__(self, i):
        v = torch.as_tensor(self.vols[i], dtype=torch.float32)
        item = {"y": torch.as_tensor(self.ys[i]), "masks": {}, "case_id": f"c{i}"}
        if self.slices:
            d = v.shape[0]
            item.update(x=v[:, None].expand(d, 3, *v.shape[1:]).contiguous(),
                        pos=torch.stack([torch.arange(d).float(), torch.full((d,), float(d))], 1))
        else:
            item["x"] = v[None].expand(3, *v.shape).contiguous()
        return item


class WithInput(Items):
    def identity_input(self, i):
        return np.asarray(self.identity[i], np.float32)


def _vols(n=5, shape=(8, 16, 16), seed=0):
    return list(np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32))


def _direct(vol, boxes, f=np.mean):
    return np.array([f(vol[z0:z1, y0:y1, x0:x1]) for z0, z1, y0, y1, x0, x1 in boxes])


def test_box_means_equal_slicing():
    rng = np.random.default_rng(1)
    vol = rng.normal(size=(7, 9, 11))
    lo = rng.integers(0, (6, 8, 10), size=(50, 3))
    hi = lo + 1 + rng.integers(0, (7, 9, 11) - lo)
    boxes = np.stack([lo[:, 0], hi[:, 0], lo[:, 1], hi[:, 1], lo[:, 2], hi[:, 2]], 1)
    np.testing.assert_allclose(box_means(vol, boxes), _direct(vol, boxes), atol=1e-10)
    with pytest.raises(ValueError, match="inside the volume"):
        box_means(vol, np.array([[0, 8, 0, 1, 0, 1]]))


def test_cell_edges_split_evenly():
    assert cell_edges(16, 4).tolist() == [0, 4, 8, 12, 16]
    assert cell_edges(10, 3).tolist() == [0, 3, 6, 10]
    with pytest.raises(ValueError, match="size and n"):
        cell_edges(0, 2)


@pytest.mark.parametrize("slices", [False, True])
def test_patch_rows_cells_are_where_the_features_come_from(slices):
    vols = _vols()
    enc = PoolSlices(k=4) if slices else PoolVolume()
    ds = Items(vols, [np.zeros(v.shape) for v in vols], slices=slices)
    rows = patch_rows(enc, ds, CPU, max_rows=40, seed=3)
    cells = 8 * 4 * 4 if slices else 2 * 2 * 2
    assert rows.cells == cells and rows.layer == enc.map_names[-1]
    assert len(rows.features) == 5 * min(8, cells) and np.bincount(rows.groups).tolist() == [min(8, cells)] * 5
    for i, vol in enumerate(vols):
        mine = rows.groups == i
        np.testing.assert_allclose(rows.features[mine, 0], _direct(vol, rows.boxes[mine]), atol=1e-5)
        assert len(np.unique(rows.boxes[mine], axis=0)) == mine.sum()  # drawn without replacement
    if slices:
        assert (rows.boxes[:, 1] - rows.boxes[:, 0] == 1).all()  # one (centre) slice per token
    again = patch_rows(enc, ds, CPU, max_rows=40, seed=3)
    assert np.array_equal(again.boxes, rows.boxes)  # positions depend on the seed and map shapes only


@pytest.mark.parametrize("slices", [False, True])
def test_enriched_draws_take_half_their_rows_from_the_rare_cells(slices):
    """With ``enrich`` up to half of each image's rows come from the flagged cells (all of them when fewer), the
    rest from the others; the features still come from the drawn cells, and the draw is reproducible."""
    vols = _vols(n=4, shape=(8, 32, 32))
    ys = []
    for v in vols:
        y = np.zeros(v.shape)
        y[2:4, 4:12, 4:12] = 1.0  # a small lesion
        ys.append(y)
    enc = PoolSlices(k=4) if slices else PoolVolume(kernel=(2, 4, 4))
    ds = Items(vols, ys, slices=slices)

    def lesion(i, boxes):
        return box_means(np.asarray(ys[i]) > 0, boxes) > 0

    uniform = patch_rows(enc, ds, CPU, max_rows=4 * 32, seed=5)
    rows = patch_rows(enc, ds, CPU, max_rows=4 * 32, seed=5, enrich=lesion)
    for i, vol in enumerate(vols):
        mine = rows.groups == i
        hot = lesion(i, rows.boxes[mine])
        # the lesion touches 4 cells of the (2, 4, 4)-pooled volume, 8 tokens of the slices (2 centre slices x 4):
        # fewer than half of 32 rows, so all of them are drawn, the rest from the other cells
        assert mine.sum() == 32 and hot.sum() == (8 if slices else 4)
        np.testing.assert_allclose(rows.features[mine, 0], _direct(vol, rows.boxes[mine]), atol=1e-5)
        assert hot.mean() > lesion(i, uniform.boxes[uniform.groups == i]).mean()  # enriched beyond uniform
    again = patch_rows(enc, ds, CPU, max_rows=4 * 32, seed=5, enrich=lesion)
    assert np.array_equal(again.boxes, rows.boxes)
    with pytest.raises(ValueError, match="flags"):
        patch_rows(enc, ds, CPU, max_rows=4 * 32, seed=5, enrich=lambda i, boxes: np.ones(3, bool))


def test_kind_patch_targets_against_loops():
    vols, ys = _vols(2, seed=4), _vols(2, seed=5)
    boxes = np.array([[0, 4, 0, 8, 0, 8], [4, 8, 8, 16, 0, 16], [2, 3, 5, 6, 7, 8]])
    reg = get_kind("regression")
    restore, translate = get_task("super_resolution"), get_task("modality_translation")
    with_input = WithInput(vols, ys, identity=vols)
    rms = lambda a: np.sqrt(np.mean(a ** 2))  # noqa: E731
    np.testing.assert_allclose(reg.patch_targets(with_input, 1, boxes, restore), _direct(ys[1] - vols[1], boxes, rms),
                               rtol=1e-6)
    assert "residual" in reg.patch_target_info(restore, with_input)[0]
    for spec, ds in ((translate, with_input), (restore, Items(vols, ys))):  # another modality, or no input at hand
        np.testing.assert_allclose(reg.patch_targets(ds, 0, boxes, spec), _direct(ys[0], boxes), rtol=1e-6)
        assert reg.patch_target_info(spec, ds)[0].startswith("mean target")
    lesion = np.zeros((8, 16, 16), np.int64)
    lesion[1:3, 2:9, 4:6] = 1
    seg = get_kind("segmentation")
    got = seg.patch_targets(Items(vols[:1], [lesion]), 0, boxes, get_task("segmentation"))
    np.testing.assert_allclose(got, _direct(lesion.astype(float), boxes))
    assert got[0] == pytest.approx(2 * 6 * 2 / (4 * 8 * 8)) and got[1] == 0
    assert get_kind("classification").transfer_unit == "case" and seg.transfer_unit == "patch"
    plain = type("Plain", (DenseKind,), {"name": "plain"})()  # a new dense kind: the cell mean of y by default
    np.testing.assert_allclose(plain.patch_targets(Items(vols, ys), 1, boxes, None), _direct(ys[1], boxes), rtol=1e-6)


def test_degenerate_patch_target_is_null_with_the_reason():
    vols = _vols()
    ds = Items(vols, [np.zeros(v.shape, np.int64) for v in vols])
    prof = get_profile("smoke")
    out = transferability(PoolVolume(), ds, get_task("segmentation"), prof, CPU, seed=0)
    assert out["logme"] is None and "lesion (csPCa) fraction" in out["logme_note"] and "degenerate" in out["logme_note"]
    assert out["unit"] == "patch" and out["n"] == 40 and out["n_groups"] == 5 and "note" in out["linear_probe"]
    validate_transferability(out)


def test_transferability_entry_is_validated():
    good = {"target": "t", "target_type": "continuous", "regression": True, "logme": -1.0, "linear_probe": {}}
    validate_transferability(good)  # an older file: only the required fields
    for bad, msg in (({"unit": "voxel"}, "unit must be one of"), ({"n_groups": 2.5}, "n_groups must be int"),
                     ({"logme": "high"}, "logme must be float")):
        with pytest.raises(ValueError, match=msg):
            validate_transferability({**good, **bad})
    with pytest.raises(ValueError, match="missing field transferability.linear_probe"):
        validate_transferability({k: v for k, v in good.items() if k != "linear_probe"})


@pytest.fixture(scope="module")
def smoke_cohort(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path_factory.mktemp("results")))
        prof = get_profile("smoke")
        study_runs.load_cohort(prof)
        yield prof


@pytest.mark.skipif(not paths.GEOMETRY_PACK.exists(), reason="geometry pack not built")
@pytest.mark.parametrize("model", ["profound", "provicnet"])
def test_no_task_has_a_degenerate_target_on_the_smoke_cohort(smoke_cohort, model):
    """Every task's LogME target varies on the real (phantom) smoke train split: LogME is a number, not the
    −½ ln(2πe) of a constant, and dense tasks score patches, images as groups."""
    prof = smoke_cohort
    enc = study_runs.scratch_encoder(prof, model, seed=0)
    for task in TASKS:
        spec, data = study_runs.load_data(prof, task, model, 0)
        out = transferability(enc, data["train"], spec, prof, CPU, seed=0, max_rows=1024)
        assert out["logme"] is not None, (task, out.get("logme_note"))
        assert out["logme"] != pytest.approx(-0.5 * np.log(2 * np.pi * np.e), abs=1e-6), task
        assert out["n_groups"] == len(data["train"]) and out["n"] <= max(1024, len(data["train"]))
        assert out["unit"] == get_kind(spec.kind).transfer_unit
        if out["regression"]:
            assert out["target_sd"] > 0 and out["standardised"]
        validate_transferability(out)
