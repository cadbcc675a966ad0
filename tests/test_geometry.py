"""The committed geometry pack: checksum, size, content facts, lazy decoding, deterministic rebuild."""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import pytest
import torch

from transferlimits import paths
from transferlimits.data.geometry import CaseGeometry, load_geometry_pack, pack_sha256

torch.set_num_threads(1)

SHARED_LABELS = paths.ROOT.parent / "shared" / "data" / "picai_labels"
POS = "11373_1001396"
# one ordinary case, one whose HeviAI23 zones are a crop of the T2W grid, one Pooch25 (binary) case
# at half resolution, one with an empty lesion mask whose header disagrees, and the shipped positive
REBUILD_IDS = ["10000_1000000", "10009_1000009", "10408_1000415", "10057_1000057", POS]


def _build_module():
    spec = importlib.util.spec_from_file_location("build_geometry_pack", paths.ROOT / "scripts/build_geometry_pack.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pack():
    return load_geometry_pack()


def test_pack_checksum_and_size():
    committed = (paths.GEOMETRY_PACK.parent / (paths.GEOMETRY_PACK.name + ".sha256")).read_text().split()[0]
    assert pack_sha256() == committed
    assert paths.GEOMETRY_PACK.stat().st_size <= 20 * 1024 * 1024


def test_pack_table_matches_marksheet_facts(pack):
    assert len(pack) == 1500 and pack.case_ids == sorted(pack.case_ids)
    df = pack.clinical
    assert df.index.name == "case_id" and list(df.index) == pack.case_ids
    assert int(df["cspca"].sum()) == 425  # 425 YES / 1075 NO
    assert df["center"].value_counts().to_dict() == {"RUMC": 800, "PCNN": 350, "ZGT": 350}
    assert ((df["isup"] >= 2) == df["cspca"]).all()
    assert set(df["lesion_kind"]) == {"isup", "binary"} and int((df["lesion_kind"] == "binary").sum()) == 205
    # the pack grid holds (almost) every gland; the one exception is upstream's known faulty AI gland
    assert df["gland_in_pack"].median() > 0.99
    assert list(df.index[df["gland_in_pack"] < 0.9]) == ["11050_1001070"]
    row = df.loc[POS]
    assert (row["pirads"], row["isup"], row["age"], row["psa"], row["volume"]) == (4, 3, 63, 13.0, 52.0)
    np.testing.assert_allclose([row["orig_spacing_z"], row["orig_spacing_y"]], [3.0, 0.5], atol=1e-5)
    assert (row["orig_shape_d"], row["orig_shape_h"], row["orig_shape_w"]) == (19, 384, 384)


def test_case_decode(pack):
    t0 = time.perf_counter()
    geom = pack.case(POS)
    assert time.perf_counter() - t0 < 2.0
    assert isinstance(geom, CaseGeometry)
    assert geom.zones.shape == geom.lesions.shape == pack.shape == (24, 128, 128)
    assert geom.spacing == pack.spacing == (3.0, 0.75, 0.75)
    assert set(np.unique(geom.zones)) <= {0, 1, 2, 3} and {1, 2} <= set(np.unique(geom.zones))
    assert set(np.unique(geom.lesions)) == {0, 3}  # one ISUP-3 lesion
    lesion = geom.lesions > 0
    assert (geom.zones[lesion] == 1).mean() > 0.7  # mostly in the PZ
    # 414 voxels of 0.75 mL/1000 at 0.5x0.5x3 mm = 0.31 mL; the pack keeps that volume roughly
    assert 0.15 < lesion.sum() * 3.0 * 0.75 * 0.75 / 1000 < 0.5
    assert geom.clinical["pirads"] == 4 and geom.clinical["cspca"] is True
    # the gland is centred on the pack grid
    centre = np.argwhere(geom.zones > 0).mean(axis=0)
    np.testing.assert_allclose(centre, (np.asarray(pack.shape) - 1) / 2, atol=2.0)


def test_pack_lesion_codes(pack):
    df = pack.clinical
    binary_case = df.index[df["lesion_kind"] == "binary"][0]
    assert set(np.unique(pack.case(binary_case).lesions)) == {0, 1}
    negative = df.index[~df["cspca"]][0]
    assert not pack.case(negative).lesions.any()
    assert df["pirads"].between(1, 5).all()  # every marksheet case has at least one PI-RADS score


def test_unknown_case_and_missing_pack(pack, tmp_path):
    with pytest.raises(ValueError, match="unknown case id 'nope'.*e.g."):
        pack.case("nope")
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_geometry_pack(tmp_path / "missing.npz")


def test_case_geometry_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        CaseGeometry("x", np.zeros((2, 3, 3), np.uint8), np.zeros((2, 3, 4), np.uint8), (1.0, 1.0, 1.0))


@pytest.mark.skipif(not SHARED_LABELS.is_dir(), reason=f"picai_labels checkout not found at {SHARED_LABELS}")
def test_rebuild_is_identical_and_deterministic(pack, tmp_path):
    build = _build_module()
    kwargs = dict(case_ids=REBUILD_IDS, labels_commit=pack.meta["labels_commit"], progress=False)
    a = build.build_pack(SHARED_LABELS, tmp_path / "a.npz", **kwargs)
    b = build.build_pack(SHARED_LABELS, tmp_path / "b.npz", **kwargs)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    assert a["sha256"] == b["sha256"]
    assert (tmp_path / "a.npz.sha256").read_text().split()[0] == a["sha256"]
    small = load_geometry_pack(tmp_path / "a.npz")
    assert small.case_ids == sorted(REBUILD_IDS)
    for cid in REBUILD_IDS:
        np.testing.assert_array_equal(small.labels(cid), pack.labels(cid))
    cols = [c for c in small.clinical.columns]
    assert small.clinical.loc[REBUILD_IDS, cols].equals(pack.clinical.loc[REBUILD_IDS, cols])
    grids = small.clinical["zone_mask_grid"].to_dict()
    assert grids["10009_1000009"] == "resampled" and small.clinical.loc["10057_1000057", "lesion_mask_grid"] == "empty"


def test_build_rejects_bad_arguments(tmp_path):
    build = _build_module()
    with pytest.raises(SystemExit):
        build.main(["--labels", str(tmp_path), "--out", str(tmp_path / "x.npz")])
    if SHARED_LABELS.is_dir():
        with pytest.raises(ValueError, match="not in the marksheet"):
            build.build_pack(SHARED_LABELS, tmp_path / "x.npz", case_ids=["1_2"], progress=False)
        with pytest.raises(ValueError, match="n_cases must be >= 1"):
            build.build_pack(SHARED_LABELS, tmp_path / "x.npz", n_cases=0, progress=False)
