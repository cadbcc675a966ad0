"""Nothing silently wrong in the readers: broken DICOM series, sheared headers, the two readers agreeing.

The bad inputs are tmp_path copies of the shipped data: ProstateX-0218's T2W series with a slice removed,
duplicated or truncated; NIfTI and MHA files whose direction matrix is sheared. The agreement test reads
every shipped NIfTI mask with SimpleITK and nibabel, and every shipped .mha with SimpleITK and a minimal
MetaImage parser (header text + zlib), and compares array, spacing, origin and direction.
"""

from __future__ import annotations

import shutil
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from transferlimits import paths
from transferlimits.data.io import DataError, read_nifti_nibabel, read_volume
from transferlimits.data.io_exam import load_dicom_exam

T2W_SERIES = "5.000000-t2tsetra320p2-09906"
ADC_SERIES = "9.000000-ep2dadvdiff3Scan4bvalspair511bADC-84922"
SHARED_LABELS = Path("/work/shared/data/picai_labels")


def _series_copy(tmp_path: Path, series: str = T2W_SERIES) -> Path:
    dst = tmp_path / series
    shutil.copytree(paths.DICOM_0218 / series, dst)
    return dst


def _by_position(folder: Path) -> list[str]:
    """The series' file names sorted along the slice normal (what the error messages list)."""
    keyed = []
    for f in folder.glob("*.dcm"):
        r = sitk.ImageFileReader()
        r.SetFileName(str(f))
        r.ReadImageInformation()
        ipp = np.array([float(v) for v in r.GetMetaData("0020|0032").split("\\")])
        iop = np.array([float(v) for v in r.GetMetaData("0020|0037").split("\\")])
        keyed.append((float(ipp @ np.cross(iop[:3], iop[3:])), f.name))
    return [name for _, name in sorted(keyed)]


def test_intact_series_reads_as_before():
    vol = read_volume(paths.DICOM_0218 / T2W_SERIES)
    assert vol.shape == (20, 320, 320) and vol.spacing[2] == pytest.approx(3.6, abs=1e-5)


def test_missing_middle_slice_is_a_gap(tmp_path):
    folder = _series_copy(tmp_path)
    order = _by_position(folder)
    (folder / order[10]).unlink()
    with pytest.raises(DataError) as err:
        read_volume(folder)
    msg = str(err.value)
    assert msg.startswith(f"{folder}: not a uniform stack of slices (median step 3.6 mm")
    assert f"gap of 7.2 mm between {order[9]} and {order[11]} (1 slice(s) missing)" in msg


def test_duplicated_slice_is_named(tmp_path):
    folder = _series_copy(tmp_path)
    order = _by_position(folder)
    shutil.copy(folder / order[7], folder / "copy.dcm")
    with pytest.raises(DataError) as err:
        read_volume(folder)
    msg = str(err.value)
    assert msg.startswith(f"{folder}: not a uniform stack")
    assert "duplicate position:" in msg and "copy.dcm" in msg and order[7] in msg and "are 0 mm apart" in msg


@pytest.mark.parametrize("keep", [0, 300, 100_000])  # empty, torn header, torn pixel data
def test_truncated_slice_is_named_with_the_gap(tmp_path, keep):
    folder = _series_copy(tmp_path)
    order = _by_position(folder)
    bad = folder / order[12]
    bad.write_bytes(bad.read_bytes()[:keep])
    with pytest.raises(DataError) as err:
        read_volume(folder)
    msg = str(err.value)
    assert msg.startswith(str(folder)) and f"gap of 7.2 mm between {order[11]} and {order[13]}" in msg
    assert f"unreadable or non-DICOM file(s) in the folder: ['{bad.name}']" in msg


def test_truncated_end_slice_is_still_caught(tmp_path):
    folder = _series_copy(tmp_path)
    bad = folder / _by_position(folder)[-1]  # no gap: only the stray file tells
    bad.write_bytes(bad.read_bytes()[:1000])
    with pytest.raises(DataError, match=rf"unreadable or non-DICOM file\(s\) in the folder: \['{bad.name}'\]"):
        read_volume(folder)


def test_harmless_files_next_to_a_series_are_ignored(tmp_path):
    folder = _series_copy(tmp_path)
    (folder / "README.txt").write_text("notes")
    (folder / ".DS_Store").write_bytes(b"\0")
    assert read_volume(folder).shape == (20, 320, 320)


def test_dicom_exam_with_a_broken_adc_names_the_adc_series(tmp_path):
    exam = tmp_path / "exam"
    shutil.copytree(paths.DICOM_0218, exam)
    adc = exam / ADC_SERIES
    (adc / _by_position(adc)[5]).unlink()
    with pytest.raises(DataError, match=rf"^{adc}: not a uniform stack .* gap of 7\.2 mm"):
        load_dicom_exam(exam)


# --- shear ---------------------------------------------------------------------------------------------
def _sheared_nifti(path: Path, qform: bool) -> Path:
    aff = np.diag([0.5, 0.5, 3.0, 1.0])
    aff[0, 1] = 0.1  # x moves 0.1 mm per voxel of y: |cos| between the axes = 0.196
    img = nib.Nifti1Image(np.ones((6, 5, 4), np.uint8), aff)
    img.set_sform(aff, code=1)
    img.set_qform(aff if qform else None, code=1 if qform else 0)
    img.to_filename(str(path))
    return path


@pytest.mark.parametrize("qform", [True, False])  # True: SimpleITK silently used the orthonormal qform
def test_sheared_nifti_fails_in_both_readers(tmp_path, qform):
    path = _sheared_nifti(tmp_path / "sheared.nii.gz", qform)
    for reader in (read_volume, read_nifti_nibabel):
        with pytest.raises(DataError) as err:
            reader(path)
        msg = str(err.value)
        assert msg.startswith(f"{path}: sheared sform affine: image axes x and y are not orthogonal (|cos| = 0.196")


def test_sheared_mha_is_refused(tmp_path):
    ok = tmp_path / "ok.mha"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((4, 5, 6), np.float32)), str(ok))
    text = ok.read_bytes()
    assert b"TransformMatrix = 1 0 0 0 1 0 0 0 1" in text
    bad = tmp_path / "sheared.mha"
    bad.write_bytes(text.replace(b"TransformMatrix = 1 0 0 0 1 0 0 0 1", b"TransformMatrix = 1 0 0 0.2 1 0 0 0 1"))
    assert read_volume(ok).shape == (4, 5, 6)
    with pytest.raises(DataError, match=rf"^{bad}: sheared direction matrix: image axes x and y"):
        read_volume(bad)


# --- the two readers agree on every valid shipped file ---------------------------------------------------
def _shipped_niftis() -> list[Path]:
    files = sorted(paths.PICAI_LABELS.rglob("*.nii.gz"))
    if SHARED_LABELS.is_dir():  # the full picai_labels copy: every 100th file (60 of 6000) keeps it quick
        files += sorted(SHARED_LABELS.rglob("*.nii.gz"))[::100]
    return files


def _assert_same(a, b, what):
    np.testing.assert_array_equal(a.array, b.array, err_msg=what)
    np.testing.assert_allclose(a.spacing, b.spacing, atol=1e-5, err_msg=what)
    np.testing.assert_allclose(a.origin, b.origin, atol=1e-3, err_msg=what)
    np.testing.assert_allclose(a.direction, b.direction, atol=1e-5, err_msg=what)


def test_sitk_and_nibabel_agree_on_shipped_niftis():
    files = _shipped_niftis()
    assert len(files) >= 7
    for path in files:
        _assert_same(read_volume(path), read_nifti_nibabel(path), str(path))


def _read_mha_raw(path: Path):
    """Minimal MetaImage reader: header keys, then the (zlib-compressed or raw) voxels of a LOCAL file."""
    blob = path.read_bytes()
    header, pos = {}, 0
    while True:
        end = blob.index(b"\n", pos)
        key, _, value = blob[pos:end].decode().partition(" = ")
        header[key.strip()] = value.strip()
        pos = end + 1
        if key.strip() == "ElementDataFile":
            break
    dims = [int(v) for v in header["DimSize"].split()]
    dtype = {"MET_SHORT": "<i2", "MET_USHORT": "<u2", "MET_FLOAT": "<f4", "MET_UCHAR": "u1",
             "MET_INT": "<i4", "MET_DOUBLE": "<f8"}[header["ElementType"]]
    data = blob[pos:]
    if header.get("CompressedData") == "True":
        data = zlib.decompress(data)
    array = np.frombuffer(data, dtype=dtype).reshape(dims[::-1])
    matrix = np.array([float(v) for v in header["TransformMatrix"].split()]).reshape(3, 3).T  # MetaIO: columns
    return (array, [float(v) for v in header["ElementSpacing"].split()],
            [float(v) for v in header["Offset"].split()], matrix.ravel())


def test_sitk_and_raw_header_agree_on_shipped_mha():
    files = sorted(paths.REAL_CASES.rglob("*.mha"))
    assert len(files) == 6
    for path in files:
        vol = read_volume(path)
        array, spacing, origin, direction = _read_mha_raw(path)
        np.testing.assert_array_equal(vol.array, array, err_msg=str(path))
        np.testing.assert_allclose(vol.spacing, spacing, atol=1e-9, err_msg=str(path))
        np.testing.assert_allclose(vol.origin, origin, atol=1e-9, err_msg=str(path))
        np.testing.assert_allclose(vol.direction, direction, atol=1e-9, err_msg=str(path))
