"""Patient-level splits: disjoint by patient, fixed by seed, sizes respected, written to disk."""

from __future__ import annotations

import numpy as np
import pytest

from transferlimits.config import SplitSizes
from transferlimits.data.splits import SPLIT_NAMES, load_splits, make_splits, patient_id, write_splits


def _cohort(n_patients=60, seed=0):
    rng = np.random.default_rng(seed)
    ids, strata = [], []
    for p in range(n_patients):
        for s in range(1 + (p % 7 == 0)):  # some patients have two studies
            ids.append(f"{10000 + p}_{1000000 + 10 * p + s}")
            strata.append(int(rng.integers(0, 4)))
    return ids, strata


SIZES = SplitSizes(pretrain=20, train=15, val=5, test=10)


def test_disjoint_by_patient_and_sizes():
    ids, strata = _cohort()
    splits = make_splits(ids, strata, SIZES, seed=0)
    seen = {}
    for name in SPLIT_NAMES:
        pats = {patient_id(c) for c in splits[name]}
        assert len(pats) == getattr(SIZES, name)
        for p in pats:
            assert p not in seen, f"patient {p} in {seen.get(p)} and {name}"
            seen[p] = name
    # every study of a chosen patient comes along
    for name in SPLIT_NAMES:
        pats = {patient_id(c) for c in splits[name]}
        assert set(splits[name]) == {c for c in ids if patient_id(c) in pats}


def test_seeded():
    ids, strata = _cohort()
    assert make_splits(ids, strata, SIZES, seed=3) == make_splits(ids, strata, SIZES, seed=3)
    assert make_splits(ids, strata, SIZES, seed=3) != make_splits(ids, strata, SIZES, seed=4)


def test_stratified_mix():
    ids = [f"{i}_{i}" for i in range(400)]
    strata = [0] * 300 + [3] * 100
    splits = make_splits(ids, strata, SplitSizes(100, 100, 40, 100), seed=0)
    pos = sum(int(c.split("_")[0]) >= 300 for c in splits["test"])
    assert 20 <= pos <= 30  # 25 % positives, as in the cohort


@pytest.mark.parametrize("frac", [0.5, 0.8])
def test_test_split_enrichment(frac):
    """test_enrich_frac: the test split holds >= frac enriched patients, the later splits share the rest evenly."""
    ids = [f"{i}_{i}" for i in range(400)]
    strata = [i % 4 for i in range(400)]
    enrich = [i % 5 == 0 for i in range(400)]  # 20 % of patients
    sizes = SplitSizes(100, 100, 40, 50)
    splits = make_splits(ids, strata, sizes, seed=0, enrich=enrich, test_enrich_frac=frac)
    share = {n: sum(int(c.split("_")[0]) % 5 == 0 for c in splits[n]) / len(splits[n]) for n in SPLIT_NAMES}
    assert share["test"] >= frac
    rest = (80 - share["test"] * 50) / 350  # enriched share of the 350 patients left after the test split
    for name in ("pretrain", "train", "val"):
        assert abs(share[name] - rest) <= 0.05, (name, share)
    assert len({patient_id(c) for n in SPLIT_NAMES for c in splits[n]}) == 290
    assert make_splits(ids, strata, sizes, seed=0) != splits  # the default is unchanged: no enrichment


def test_enrichment_errors():
    ids = [f"{i}_{i}" for i in range(100)]
    with pytest.raises(ValueError, match="enrich flag"):
        make_splits(ids, [0] * 100, SplitSizes(10, 10, 10, 10), test_enrich_frac=0.5)
    with pytest.raises(ValueError, match="only 2 are available"):
        make_splits(ids, [0] * 100, SplitSizes(10, 10, 10, 10), enrich=[i < 2 for i in range(100)],
                    test_enrich_frac=0.5)


def test_errors_and_roundtrip(tmp_path):
    ids, strata = _cohort(10)
    with pytest.raises(ValueError, match="need 50 patients"):
        make_splits(ids, strata, SIZES)
    with pytest.raises(ValueError, match="strata"):
        make_splits(ids, strata[:-1], SIZES)
    splits = make_splits(ids, strata, SplitSizes(4, 3, 1, 2), seed=1)
    write_splits(splits, tmp_path / "s.json", {"seed": 1})
    assert load_splits(tmp_path / "s.json") == splits
    with pytest.raises(ValueError, match="not found"):
        load_splits(tmp_path / "missing.json")
