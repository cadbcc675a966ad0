"""The PI-CAI layout reader on the two shipped cases, the mask-geometry rules, and the DICOM exam."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch

from transferlimits import paths
from transferlimits.data.io import DataError, Volume, read_volume
from transferlimits.data.picai import (
    PicaiDataset,
    body_mask,
    clinical_from_row,
    load_dicom_exam,
    load_real_cases,
    mask_on_grid,
)

torch.set_num_threads(1)

POS, NEG = "11373_1001396", "10795_1000811"
ZONE_SUB = "anatomical_delineations/zonal_pz_tz/AI/HeviAI23"


@pytest.fixture(scope="module")
def cases():
    return {c.case_id: c for c in load_real_cases()}


def _copy_layout(tmp_path):
    """A writable copy of the shipped labels and a symlinked image folder."""
    labels = tmp_path / "labels"
    shutil.copytree(paths.PICAI_LABELS, labels, copy_function=shutil.copyfile)  # writable copies
    return tmp_path / "images", labels


def test_case_discovery():
    ds = PicaiDataset(paths.REAL_CASES, paths.PICAI_LABELS)
    assert ds.case_ids == [NEG, POS] and len(ds) == 2


def test_positive_case_content(cases):
    case = cases[POS]
    assert case.shape == (19, 384, 384) and case.source == "real"
    np.testing.assert_allclose(case.spacing, (3.0, 0.5, 0.5), atol=1e-6)
    for name in ("t2w", "adc", "hbv"):
        assert case.sequence(name).dtype == np.float32
    assert case.clinical == {
        "pirads": 4, "isup": 3, "cspca": True, "center": "RUMC", "age": 63, "psa": 13.0, "psad": 0.25,
        "volume": 52.0, "histopath_type": "MRBx",
    }
    assert set(np.unique(case.zones)) == {0, 1, 2, 3}
    lesion = case.lesion > 0
    assert lesion.sum() == 414 and set(np.unique(case.lesion)) == {0, 2}  # README: 414 voxels
    assert set(np.unique(case.extra["lesion_isup"][lesion])) == {3}
    assert (case.zones[lesion] == 1).mean() > 0.8  # mostly in the PZ
    lesion_adc, pz_adc = case.adc[lesion].mean(), case.adc[case.zones == 1].mean()
    assert lesion_adc < pz_adc
    assert abs(lesion_adc - 1157) < 30 and abs(pz_adc - 1627) < 30


def test_negative_case_content(cases):
    case = cases[NEG]
    assert case.lesion.sum() == 0
    assert case.clinical["cspca"] is False and case.clinical["isup"] == 1 and case.clinical["pirads"] == 4
    assert 0.9 < case.body.mean() <= 1.0  # the field of view lies almost entirely inside the body


def test_unknown_case_id_lists_valid_ids():
    ds = PicaiDataset(paths.REAL_CASES, paths.PICAI_LABELS)
    with pytest.raises(DataError, match="unknown case id '99999_1'.*11373_1001396"):
        ds.load_case("99999_1")


def test_incomplete_case_is_reported_or_skipped_on_request(tmp_path):
    (tmp_path / "11373").mkdir()
    for seq in ("t2w", "adc"):  # no hbv
        (tmp_path / "11373" / f"{POS}_{seq}.mha").symlink_to(paths.REAL_CASES / "11373" / f"{POS}_{seq}.mha")
    with pytest.raises(DataError, match=f"1 case\\(s\\) lack a sequence: {POS} \\(no hbv\\).*skip_incomplete"):
        PicaiDataset(tmp_path, paths.PICAI_LABELS)
    ds = PicaiDataset(tmp_path, paths.PICAI_LABELS, skip_incomplete=True)
    assert ds.case_ids == [] and ds.skipped == {POS: ["hbv"]}


def test_bad_roots_and_sources(tmp_path):
    with pytest.raises(DataError, match="images folder not found"):
        PicaiDataset(tmp_path / "nope", paths.PICAI_LABELS)
    with pytest.raises(ValueError, match="gland_source='Nobody'.*valid: \\['Bosma22b'\\]"):
        PicaiDataset(paths.REAL_CASES, paths.PICAI_LABELS, gland_source="Nobody")


def test_shifted_mask_raises_naming_the_file(tmp_path):
    _, labels = _copy_layout(tmp_path)
    path = labels / ZONE_SUB / f"{POS}.nii.gz"
    img = sitk.ReadImage(str(path))
    img.SetOrigin(tuple(o + 5.0 for o in img.GetOrigin()))
    sitk.WriteImage(img, str(path))
    ds = PicaiDataset(paths.REAL_CASES, labels)
    with pytest.raises(DataError, match=f"HeviAI23/{POS}.nii.gz.*origin"):
        ds.load_case(POS)


def test_cropped_mask_is_placed_exactly(tmp_path, cases):
    _, labels = _copy_layout(tmp_path)
    path = labels / ZONE_SUB / f"{POS}.nii.gz"
    img = sitk.ReadImage(str(path))
    sitk.WriteImage(img[100:300, 90:290, 2:17], str(path))  # a crop (x, y, z), as HeviAI23 often stores
    case = PicaiDataset(paths.REAL_CASES, labels).load_case(POS)
    np.testing.assert_array_equal(case.zones, cases[POS].zones)


def _vol(origin=(0.0, 0.0, 0.0), shape=(3, 8, 8), fill=1, direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)):
    arr = np.zeros(shape, np.uint8)
    arr[1, 2:5, 2:5] = fill
    return Volume(arr, (1.0, 1.0, 2.0), origin, direction, None)


def test_mask_on_grid_rules():
    ref = _vol()
    assert mask_on_grid(_vol(origin=(0.2, 0, 0)), ref)[1] == "same"
    with pytest.raises(DataError, match="origin"):
        mask_on_grid(_vol(origin=(3.0, 0, 0)), ref)
    out, how = mask_on_grid(_vol(origin=(3.0, 0, 0), fill=0), ref)  # empty: header irrelevant
    assert how == "empty" and not out.any()
    crop = Volume(ref.array[:, 2:6, 1:7].copy(), ref.spacing, (1.0, 2.0, 0.0), ref.direction)
    out, how = mask_on_grid(crop, ref)
    assert how == "resampled"
    np.testing.assert_array_equal(out, ref.array)
    tilted = _vol(shape=(3, 8, 9), direction=(0, 1, 0, 1, 0, 0, 0, 0, 1))
    with pytest.raises(DataError, match="direction cosines"):
        mask_on_grid(tilted, ref)
    far = Volume(ref.array[:, 2:6, 1:7].copy(), ref.spacing, (500.0, 0.0, 0.0), ref.direction)
    with pytest.raises(DataError, match="outside the field of view"):
        mask_on_grid(far, ref)


def test_clinical_from_row_parsing():
    row = pd.Series({"lesion_PIRADS": "N/A,3,5", "case_ISUP": "2", "case_csPCa": "YES", "center": "ZGT",
                     "patient_age": "70", "psa": "", "psad": "N/A", "prostate_volume": "41.5", "histopath_type": ""})
    c = clinical_from_row(row)
    assert c["pirads"] == 5 and c["isup"] == 2 and c["cspca"] is True and c["age"] == 70
    assert c["psa"] is None and c["psad"] is None and c["volume"] == 41.5 and c["histopath_type"] is None
    assert clinical_from_row(row.replace({"N/A,3,5": "N/A"}))["pirads"] is None


def test_body_mask_rules():
    t2w = np.zeros((2, 32, 32), np.float32)
    t2w[:, 4:28, 4:28] = 500.0
    t2w[:, 12:20, 12:20] = 0.0  # a dark hole (rectal air) inside the body
    t2w[:, 0, 0] = 400.0  # an isolated bright speck outside
    body = body_mask(t2w, (3.0, 1.0, 1.0), sigma_mm=0.0)
    assert body[:, 15, 15].all() and body[:, 5, 5].all() and not body[:, 0, 0].any()
    with pytest.raises(ValueError, match="fraction"):
        body_mask(t2w, (3.0, 1.0, 1.0), fraction=1.5)


def test_dicom_exam_0218_on_t2w_grid():
    exam = load_dicom_exam(paths.DICOM_0218)
    assert sorted(exam) == ["adc", "hbv", "t2w"]
    for vol in exam.values():
        assert vol.shape == (20, 320, 320) and vol.array.dtype == np.float32
        np.testing.assert_allclose(vol.spacing, (0.625, 0.625, 3.6), atol=1e-5)
    assert 300 < np.median(exam["adc"].array[exam["adc"].array > 0]) < 3000
    assert read_volume(paths.DICOM_0218 / "5.000000-t2tsetra320p2-09906").shape == (20, 320, 320)
    with pytest.raises(DataError, match="not found"):
        load_dicom_exam(paths.DICOM_0218 / "missing")
