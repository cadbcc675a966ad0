"""Bad real data is refused with the file, the case and the problem named, and nothing good is lost.

Each test makes its bad input from tmp_path copies of the shipped exams (``data/pi-cai-images``) and
labels (``data/picai_labels``): a shifted ADC, a missing sequence, malformed marksheet values, a
truncated or empty image, NaN voxels, and changed inputs after a first cohort build.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from transferlimits import paths
from transferlimits.config import get_profile
from transferlimits.data.cohort import build_cohort
from transferlimits.data.io import DataError, read_volume
from transferlimits.data.picai import PicaiDataset
from transferlimits.data.picai_labels import MARKSHEET

POS, NEG = "11373_1001396", "10795_1000811"
GRID = {"shape": (8, 32, 32), "spacing": (3.0, 2.0, 2.0)}



def _image(images, case_id, seq):
    return images / case_id.split("_")[0] / f"{case_id}_{seq}.mha"


def _edit_marksheet(labels, case_id, column, value):
    path = labels / MARKSHEET
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.loc[(df["patient_id"] + "_" + df["study_id"]) == case_id, column] = value
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("shift, gland, grid", [
    ((500.0, 0.0, 0.0), "0.0%", "0.0%"),  # another exam: nothing of it on the T2W grid
    ((0.0, 0.0, 40.0), "8.4%", "27.6%"),  # partly off the grid: 91.6 % of the gland would be zero-filled
    ((0.0, 0.0, 20.0), "92.0%", "59.9%"),  # 8 % of the gland zero-filled: still more than the 5 % allowed
])
def test_adc_off_the_t2w_gland_is_refused_not_zeroed(tree, shift, gland, grid):
    images, labels = tree
    adc = _image(images, POS, "adc")
    img = sitk.ReadImage(str(adc))
    img.SetOrigin(tuple(np.add(img.GetOrigin(), shift)))
    sitk.WriteImage(img, str(adc), True)
    ds = PicaiDataset(images, labels)
    with pytest.raises(DataError, match=rf"{adc.name}: adc covers {gland} of the gland mask and {grid} of the grid "
                                        rf"of .*{POS}_t2w\.mha \(need >= 95% of the gland"):
        ds.load_case(POS)
    assert ds.load_case(NEG).adc.any()  # the other case is untouched


def test_missing_sequence_is_reported_or_skipped_with_count(tree, tmp_path, monkeypatch, capsys):
    images, labels = tree
    _image(images, NEG, "hbv").unlink()
    monkeypatch.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path / "results"))
    prof = get_profile("picai", splits={"pretrain": 0, "train": 1, "val": 0, "test": 0}, grid=GRID, slice_size=28)
    with pytest.raises(DataError, match=rf"1 case\(s\) lack a sequence: {NEG} \(no hbv\)"):
        build_cohort(prof, progress=False, images_root=str(images), labels_root=str(labels),
                     held_out_patients=())
    # held_out_patients=(): the shipped exams are this test's whole cohort, not an external test set here
    cohort = build_cohort(prof, progress=False, images_root=str(images), labels_root=str(labels),
                          skip_incomplete=True, held_out_patients=())
    err = capsys.readouterr().err
    assert f"skipped 1 incomplete case(s) of {images}: {NEG} (no hbv)" in err
    assert cohort.case_ids("train") == [POS]
    with pytest.raises(DataError, match=f"case {NEG} was left out"):
        PicaiDataset(images, labels, skip_incomplete=True).load_case(NEG)


@pytest.mark.parametrize("column, value, problem", [
    ("patient_age", "sixty", "is not a number"),
    ("case_ISUP", "", "is not an integer in 0..5"),
    ("psa", "-3", "is not a finite number >= 0"),
    ("lesion_PIRADS", "4,x", "not a PI-RADS score"),
    ("case_csPCa", "maybe", "is not YES or NO"),
])
def test_malformed_marksheet_value_names_file_line_case_column(tree, column, value, problem):
    images, labels = tree
    sheet = _edit_marksheet(labels, POS, column, value)
    ds = PicaiDataset(images, labels)
    with pytest.raises(DataError) as err:
        ds.clinical(POS)
    msg = str(err.value)
    assert msg.startswith(f"{sheet} line 3, case {POS}, column {column!r}: value {value!r}") and problem in msg
    assert ds.clinical(NEG)["isup"] == 1  # the good row still parses


@pytest.mark.parametrize("keep", [0.5, 0.0])
def test_truncated_or_empty_image_is_named_as_such(tree, keep):
    images, _ = tree
    path = _image(images, POS, "t2w")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DataError) as err:
        read_volume(path)
    msg = str(err.value)
    assert msg.startswith(str(path)) and ("truncated" in msg or "empty" in msg) and "No such file" not in msg


def test_nan_voxels_name_file_and_count(tree):
    images, labels = tree
    path = _image(images, POS, "hbv")
    img = sitk.Cast(sitk.ReadImage(str(path)), sitk.sitkFloat32)
    arr = sitk.GetArrayFromImage(img)
    arr[0, :2, :3] = np.nan
    arr[1, 0, 0] = np.inf
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(img)
    sitk.WriteImage(out, str(path), True)
    with pytest.raises(DataError, match=rf"{path.name}: 7 of {arr.size} voxels are NaN or infinite"):
        PicaiDataset(images, labels).load_case(POS)


def _build(images, labels):
    prof = get_profile("picai", splits={"pretrain": 0, "train": 1, "val": 0, "test": 1}, grid=GRID, slice_size=28)
    return build_cohort(prof, progress=False, images_root=str(images), labels_root=str(labels),
                        held_out_patients=())


def test_cohort_cache_is_keyed_by_content(tree, tmp_path, monkeypatch, capsys):
    images, labels = tree
    monkeypatch.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path / "results"))
    first = _build(images, labels)
    files = {c: first.root / first.manifest["cases"][c]["file"] for c in (POS, NEG)}
    stamp = {c: f.stat().st_mtime_ns for c, f in files.items()}
    # 1. one changed lesion mask: only that case is rebuilt, with the new mask
    mask = labels / "csPCa_lesion_delineations/human_expert/resampled" / f"{POS}.nii.gz"
    img = sitk.ReadImage(str(mask))
    arr = sitk.GetArrayFromImage(img)
    arr[:] = 0
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(img)
    sitk.WriteImage(out, str(mask), True)
    second = _build(images, labels)
    assert files[POS].stat().st_mtime_ns != stamp[POS] and files[NEG].stat().st_mtime_ns == stamp[NEG]
    assert not second.case(POS).lesion.any() and first.manifest["cases"][NEG] == second.manifest["cases"][NEG]
    assert f"1 case(s) (re)built because they or their inputs changed: ['{POS}']" in capsys.readouterr().err
    # 2. one changed PI-RADS value: only that case is rebuilt, its clinical fields follow
    stamp = {c: f.stat().st_mtime_ns for c, f in files.items()}
    _edit_marksheet(labels, NEG, "lesion_PIRADS", "5")
    third = _build(images, labels)
    assert files[NEG].stat().st_mtime_ns != stamp[NEG] and files[POS].stat().st_mtime_ns == stamp[POS]
    assert third.case(NEG).clinical["pirads"] == 5
    # 3. a truncated image: a clear error, and the good cache and manifest stay as they were
    manifest = (third.root / "manifest.json").read_text()
    t2w = _image(images, POS, "t2w")
    t2w.write_bytes(t2w.read_bytes()[:1000])
    with pytest.raises(DataError, match=rf"{t2w.name}: truncated or corrupt image file"):
        _build(images, labels)
    assert (third.root / "manifest.json").read_text() == manifest
    assert json.loads(manifest)["cases"][POS]["sha256"] == third.manifest["cases"][POS]["sha256"]
    assert third.case(POS).shape == (8, 32, 32)


def test_picai_split_fractions_need_enough_patients(tree, tmp_path, monkeypatch):
    images, labels = tree
    monkeypatch.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path / "results"))
    prof = get_profile("picai", grid=GRID, slice_size=28)
    with pytest.raises(ValueError, match=rf"2 usable patient\(s\) found in {images}, the split fractions need at "
                                         r"least 14"):
        build_cohort(prof, progress=False, images_root=str(images), labels_root=str(labels), held_out_patients=())
    assert not (paths.data_dir("picai") / "manifest.json").exists()
