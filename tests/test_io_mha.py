"""The pure-NumPy MetaImage reader (:mod:`transferlimits.data.io_mha`) against SimpleITK, and the compute path's
reading without SimpleITK (issue 26): bit-identical volumes, the real exams left out with a recorded reason."""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from transferlimits import paths
from transferlimits.data import cohort_real
from transferlimits.data.io import read_volume, resample_to
from transferlimits.data.io_mha import read_mha
from transferlimits.data.io_volume import DataError, Volume

SHARED = Path("/work/shared/data/pi-cai-images")


def _shipped() -> list[Path]:
    files = sorted(paths.REAL_CASES.glob("*/*.mha"))
    if SHARED.is_dir():  # the shared copy also holds the coronal and sagittal series
        files += sorted(SHARED.glob("*/*.mha"))
    return files


def _same(a: Volume, b: Volume) -> None:
    assert a.array.dtype == b.array.dtype and a.array.shape == b.array.shape
    assert np.array_equal(a.array, b.array)
    assert (a.spacing, a.origin, a.direction) == (b.spacing, b.origin, b.direction)  # exact, not close


def test_numpy_reader_is_bit_identical_to_simpleitk_on_every_shipped_mha():
    files = _shipped()
    assert len(files) >= 6
    for path in files:
        _same(read_mha(path), Volume.from_sitk(sitk.ReadImage(str(path)), path))


@pytest.mark.parametrize("dtype,met,msb", [("<f4", "MET_FLOAT", False), (">i2", "MET_SHORT", True),
                                           ("u1", "MET_UCHAR", False), ("<i4", "MET_INT", False)])
@pytest.mark.parametrize("compressed", [False, True])
def test_written_by_simpleitk_or_by_hand_reads_the_same(tmp_path, dtype, met, msb, compressed):
    arr = (np.arange(4 * 5 * 6) % 17 - 3).reshape(4, 5, 6).astype(np.dtype(dtype).newbyteorder("="))
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.5, 0.7, 3.0))
    img.SetOrigin((-10.25, 3.5, 7.0))
    c, s = float(np.cos(0.3)), float(np.sin(0.3))
    img.SetDirection((1, 0, 0, 0, c, -s, 0, s, c))
    f = tmp_path / "a.mha"
    sitk.WriteImage(img, str(f), useCompression=compressed)
    _same(read_mha(f), Volume.from_sitk(sitk.ReadImage(str(f)), f))
    data = np.ascontiguousarray(arr.astype(np.dtype(dtype))).tobytes()  # by hand: the header's byte order
    blob = zlib.compress(data) if compressed else data
    size = f"CompressedDataSize = {len(blob)}\n" if compressed else ""  # ITK reads garbage without it
    header = (f"ObjectType = Image\nNDims = 3\nBinaryData = True\nElementByteOrderMSB = {msb}\n"
              f"CompressedData = {compressed}\n{size}TransformMatrix = 1 0 0 0 {c!r} {s!r} 0 {-s!r} {c!r}\n"
              f"Offset = -10.25 3.5 7\nElementSpacing = 0.5 0.7 3\nDimSize = 6 5 4\nElementType = {met}\n"
              "ElementDataFile = LOCAL\n")
    g = tmp_path / "b.mha"
    g.write_bytes(header.encode() + blob)
    _same(read_mha(g), Volume.from_sitk(sitk.ReadImage(str(g)), g))


def test_truncated_or_foreign_files_are_one_line_errors_naming_the_file(tmp_path):
    src = paths.REAL_CASES / "11373" / "11373_1001396_adc.mha"
    cut = tmp_path / "cut.mha"
    cut.write_bytes(src.read_bytes()[:-100])
    with pytest.raises(DataError, match=rf"^{cut}: truncated or corrupt image file"):
        read_mha(cut)
    junk = tmp_path / "junk.mha"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(DataError, match=rf"^{junk}: not a MetaImage file"):
        read_mha(junk)


def test_read_volume_without_simpleitk_gives_the_same_volume(monkeypatch):
    path = paths.REAL_CASES / "10795" / "10795_1000811_t2w.mha"
    with_sitk = read_volume(path)
    monkeypatch.setitem(sys.modules, "SimpleITK", None)  # `import SimpleITK` now fails
    _same(read_volume(path), with_sitk)
    with pytest.raises(DataError, match="SimpleITK is needed for resampling"):
        resample_to(with_sitk, with_sitk)


def test_real_exams_without_simpleitk_are_left_out_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "SimpleITK", None)

    class Grid:
        shape = (16, 32, 32)

    rebuilt: list[str] = []
    real, reason = cohort_real.real_entries(type("P", (), {"grid": Grid})(), tmp_path, {"grid": "x"}, rebuilt)
    assert real == {} and rebuilt == []
    assert reason.startswith("real exams not evaluated: SimpleITK is not installed") and str(tmp_path) in reason
