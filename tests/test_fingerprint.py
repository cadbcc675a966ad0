"""The real-data inputs fingerprint: stable for the same tree, changed by any edit the cohort would see."""

from __future__ import annotations

import os
import shutil

import pytest

from transferlimits import paths
from transferlimits.data.fingerprint import image_files, inputs_fingerprint, label_files
from transferlimits.data.io import DataError
from transferlimits.data.picai_labels import GLAND_DIR, MARKSHEET

CASE = "11373_1001396"



def test_same_tree_same_hash_anywhere(tree, tmp_path):
    images, labels = tree
    first = inputs_fingerprint(images, labels)
    assert len(first) == 64 and inputs_fingerprint(images, labels) == first
    moved = tmp_path / "elsewhere"
    shutil.copytree(tmp_path, moved / "copy", ignore=shutil.ignore_patterns("elsewhere"))
    assert inputs_fingerprint(moved / "copy" / "images", moved / "copy" / "labels") == first
    assert len(image_files(images)) == 6 and len(label_files(labels)) == 7  # gland, zone, lesion masks of 2 cases + marksheet


def test_one_byte_of_a_mask_changes_the_hash_even_with_size_and_mtime_kept(tree):
    images, labels = tree
    before = inputs_fingerprint(images, labels)
    mask = labels / GLAND_DIR / "Bosma22b" / f"{CASE}.nii.gz"
    st = mask.stat()
    data = bytearray(mask.read_bytes())
    data[-1] ^= 0xFF
    mask.write_bytes(bytes(data))
    os.utime(mask, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert mask.stat().st_size == st.st_size and mask.stat().st_mtime_ns == st.st_mtime_ns
    assert inputs_fingerprint(images, labels) != before


def test_marksheet_row_and_image_edits_change_the_hash(tree):
    images, labels = tree
    before = inputs_fingerprint(images, labels)
    sheet = labels / MARKSHEET
    sheet.write_text(sheet.read_text().replace(",NO,", ",YES,", 1))
    after_sheet = inputs_fingerprint(images, labels)
    assert after_sheet != before
    t2w = images / "11373" / f"{CASE}_t2w.mha"
    st = t2w.stat()
    os.utime(t2w, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # touched: re-downloaded or edited
    assert inputs_fingerprint(images, labels) != after_sheet


def test_files_the_cohort_does_not_read_do_not_count(tree, tmp_path):
    images, labels = tree
    before = inputs_fingerprint(images, labels)
    (tmp_path / "unrelated.txt").write_text("outside both folders")
    (images / "11373" / f"{CASE}_sag.mha").write_bytes(b"not read by the cohort")
    (images / "notes.txt").write_text("notes")
    (labels / GLAND_DIR / "Bosma22b" / "README.md").write_text("edited readme")
    other = labels / "anatomical_delineations/whole_gland/AI/Other"
    other.mkdir()
    (other / f"{CASE}.nii.gz").write_bytes(b"another annotation source")
    assert inputs_fingerprint(images, labels) == before
    assert inputs_fingerprint(images, labels, gland_source="Other") != before


def test_missing_folders_are_named_and_no_data_is_constant(tmp_path):
    with pytest.raises(DataError, match=rf"^{tmp_path / 'nope'}: images folder not found"):
        inputs_fingerprint(tmp_path / "nope", paths.PICAI_LABELS)
    with pytest.raises(DataError, match=rf"^{tmp_path / 'nolabels'}: picai_labels folder not found"):
        inputs_fingerprint(paths.REAL_CASES, tmp_path / "nolabels")
    assert inputs_fingerprint(None) == "none"
    assert inputs_fingerprint(paths.REAL_CASES) == inputs_fingerprint(paths.REAL_CASES, paths.PICAI_LABELS)
