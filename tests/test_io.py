"""Reading .mha / .nii.gz / DICOM into Volume, resampling, geometry checks and bad-input errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from transferlimits import paths
from transferlimits.data.io import (
    DataError,
    Volume,
    check_same_geometry,
    copy_geometry,
    list_dicom_series,
    read_nifti_nibabel,
    read_volume,
    resample_to,
)

torch.set_num_threads(1)

CASE = "11373_1001396"
T2W = paths.REAL_CASES / "11373" / f"{CASE}_t2w.mha"
ADC = paths.REAL_CASES / "11373" / f"{CASE}_adc.mha"
GLAND = paths.PICAI_LABELS / "anatomical_delineations/whole_gland/AI/Bosma22b" / f"{CASE}.nii.gz"
ZONES = paths.PICAI_LABELS / "anatomical_delineations/zonal_pz_tz/AI/HeviAI23" / f"{CASE}.nii.gz"
DICOM_T2W = paths.DICOM_0218 / "5.000000-t2tsetra320p2-09906"
DICOM_ADC = paths.DICOM_0218 / "9.000000-ep2dadvdiff3Scan4bvalspair511bADC-84922"


def _tiny(origin=(0.0, 0.0, 0.0), shape=(4, 5, 6), path=None, direction=None) -> Volume:
    arr = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    return Volume(arr, (1.0, 1.0, 2.0), origin, direction or (1, 0, 0, 0, 1, 0, 0, 0, 1), path)


def test_read_mha_t2w_and_adc_grids():
    t2w = read_volume(T2W)
    assert t2w.shape == (19, 384, 384)  # README: 384 x 384 x 19 (x, y, z)
    np.testing.assert_allclose(t2w.spacing, (0.5, 0.5, 3.0), atol=1e-6)
    np.testing.assert_allclose(t2w.spacing_zyx, (3.0, 0.5, 0.5), atol=1e-6)
    assert t2w.array.dtype == np.uint16 and t2w.path == T2W
    adc = read_volume(ADC)
    assert adc.shape == (19, 128, 84)
    np.testing.assert_allclose(adc.spacing, (2.0, 2.0, 3.0), atol=1e-6)


def test_read_nifti_mask_and_nibabel_agree_with_sitk_lps():
    sitk_vol = read_volume(ZONES)
    assert sitk_vol.shape == (19, 384, 384) and sitk_vol.array.dtype == np.uint8
    assert set(np.unique(sitk_vol.array)) == {0, 1, 2}
    nib_vol = read_nifti_nibabel(ZONES)
    np.testing.assert_array_equal(nib_vol.array, sitk_vol.array)
    np.testing.assert_allclose(nib_vol.spacing, sitk_vol.spacing, atol=1e-5)
    np.testing.assert_allclose(nib_vol.origin, sitk_vol.origin, atol=1e-4)  # LPS, not RAS
    np.testing.assert_allclose(nib_vol.direction, sitk_vol.direction, atol=1e-6)
    # the origin is LPS: x, y negative for this exam as in the mha header (RAS would flip the sign)
    np.testing.assert_allclose(sitk_vol.origin, read_volume(T2W).origin, atol=1e-3)


def test_read_dicom_series_0218():
    t2w = read_volume(DICOM_T2W)
    assert t2w.shape == (20, 320, 320)
    np.testing.assert_allclose(t2w.spacing, (0.625, 0.625, 3.6), atol=1e-5)
    adc = read_volume(DICOM_ADC)
    assert adc.shape == (20, 130, 160)
    np.testing.assert_allclose(adc.spacing, (1.625, 1.625, 3.6), atol=1e-5)
    # a single file of the series reads the whole series
    assert read_volume(DICOM_T2W / "1-01.dcm").shape == (20, 320, 320)


def test_multi_series_folder_needs_uid(tmp_path):
    for src in (DICOM_T2W, DICOM_ADC):
        for f in src.glob("*.dcm"):
            shutil.copy(f, tmp_path / f"{src.name[:2]}_{f.name}")
    uids = list_dicom_series(tmp_path)
    assert len(uids) == 2
    with pytest.raises(DataError, match="2 DICOM series") as err:
        read_volume(tmp_path)
    assert uids[0] in str(err.value)
    shapes = {read_volume(tmp_path, series_uid=u).shape for u in uids}
    assert shapes == {(20, 320, 320), (20, 130, 160)}
    with pytest.raises(DataError, match="no DICOM series with SeriesInstanceUID"):
        read_volume(tmp_path, series_uid="1.2.3")


def test_volume_sitk_roundtrip_and_index_to_world():
    vol = _tiny(origin=(1.0, 2.0, 3.0))
    back = Volume.from_sitk(vol.to_sitk())
    np.testing.assert_array_equal(back.array, vol.array)
    assert back.spacing == vol.spacing and back.origin == vol.origin and back.direction == vol.direction
    # index (z, y, x) = (1, 0, 2) -> x + 2*1mm, z + 1*2mm
    np.testing.assert_allclose(vol.index_to_world((1, 0, 2)), (3.0, 2.0, 5.0))


def test_resample_adc_onto_t2w_grid():
    t2w, adc = read_volume(T2W), read_volume(ADC)
    res = resample_to(adc, t2w, "linear")
    assert res.shape == t2w.shape and res.array.dtype == np.float32
    assert res.spacing == t2w.spacing and res.path == ADC
    inside = res.array[res.array > 0]
    assert 0 < inside.mean() < 4000  # ADC in 1e-6 mm^2/s
    nearest = resample_to(read_volume(ZONES), t2w, "nearest")
    assert nearest.array.dtype == np.uint8
    assert set(np.unique(nearest.array)) <= {0, 1, 2}


def test_resample_identity_and_bad_interpolation():
    vol = _tiny()
    np.testing.assert_allclose(resample_to(vol, vol, "linear").array, vol.array, atol=1e-4)
    with pytest.raises(ValueError, match="valid: \\['linear', 'nearest'\\]"):
        resample_to(vol, vol, "cubic")


def test_check_same_geometry_tolerances(tmp_path):
    a = _tiny(path=tmp_path / "image.mha")
    check_same_geometry(a, _tiny(origin=(0.3, 0, 0), path=tmp_path / "ok.nii.gz"))
    tilted = (1, 2e-4, 0, -2e-4, 1, 0, 0, 0, 1)  # the PI-CAI 2e-4 direction mismatch passes
    check_same_geometry(a, _tiny(direction=tilted))
    with pytest.raises(DataError) as err:
        check_same_geometry(_tiny(origin=(0, 0, 5.0), path=tmp_path / "mask.nii.gz"), a)
    msg = str(err.value)
    assert "mask.nii.gz" in msg and "image.mha" in msg and "origin" in msg
    with pytest.raises(DataError, match="shape"):
        check_same_geometry(a, _tiny(shape=(4, 5, 7)))
    with pytest.raises(DataError, match="direction"):
        check_same_geometry(a, _tiny(direction=(1, 0.01, 0, -0.01, 1, 0, 0, 0, 1)))


def test_real_mask_within_tolerance_of_t2w():
    gland, t2w = read_volume(GLAND), read_volume(T2W)
    # the known ~2e-4 direction-cosine difference: not identical, but within tolerance
    assert np.max(np.abs(np.subtract(gland.direction, t2w.direction))) > 1e-4
    check_same_geometry(gland, t2w)
    assert copy_geometry(gland, t2w).direction == t2w.direction


def test_corrupt_missing_unsupported_and_empty(tmp_path):
    bad = tmp_path / "garbage.mha"
    bad.write_bytes(b"\x00\x13not an image at all" * 50)
    with pytest.raises(DataError, match="garbage.mha.*corrupt"):
        read_volume(bad)
    badnii = tmp_path / "garbage.nii.gz"
    badnii.write_bytes(b"nope" * 10)
    with pytest.raises(DataError, match="garbage.nii.gz"):
        read_volume(badnii)
    with pytest.raises(DataError, match="garbage.nii.gz"):
        read_nifti_nibabel(badnii)
    with pytest.raises(DataError, match="missing.mha: file not found"):
        read_volume(tmp_path / "missing.mha")
    (tmp_path / "x.png").write_bytes(b"png")
    with pytest.raises(DataError, match="unsupported file type '.png'"):
        read_volume(tmp_path / "x.png")
    empty = tmp_path / "empty_dicom"
    empty.mkdir()
    with pytest.raises(DataError, match="empty DICOM folder"):
        read_volume(empty)
    with pytest.raises(DataError, match="sub-folders"):
        read_volume(paths.DICOM_0218)
    notdicom = tmp_path / "notdicom"
    notdicom.mkdir()
    (notdicom / "a.txt").write_text("hello")
    with pytest.raises(DataError, match="no DICOM series"):
        read_volume(notdicom)


def test_volume_rejects_bad_arrays():
    with pytest.raises(DataError, match="3D"):
        Volume(np.zeros((4, 4)), (1, 1, 1), (0, 0, 0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    with pytest.raises(DataError, match="9 direction"):
        Volume(np.zeros((2, 2, 2)), (1, 1, 1), (0, 0, 0), (1, 0, 0))
    with pytest.raises(DataError, match="3D scalar"):
        Volume.from_sitk(sitk.Image([4, 4], sitk.sitkUInt8))


def test_single_dicom_file_reads_its_own_series(tmp_path):
    for src in (DICOM_T2W, DICOM_ADC):
        for f in src.glob("*.dcm"):
            shutil.copy(f, tmp_path / f"{src.name[:2]}_{f.name}")
    assert read_volume(tmp_path / "9._1-05.dcm").shape == (20, 130, 160)
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"not dicom")
    with pytest.raises(DataError, match="broken.dcm"):
        read_volume(bad)
