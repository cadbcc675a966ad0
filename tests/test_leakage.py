"""No leakage (STUDY §5): the real exams never enter a pre-training pool or a task split, for EVERY profile.

Phantom profiles are checked on the split selection itself (no volume is synthesised); the ``picai`` profile on
its split logic, with the real exams' patients among the user's cases; the pre-training dataset refuses them.
"""

from __future__ import annotations

import pytest

from transferlimits import paths
from transferlimits.config import PROFILES, get_profile
from transferlimits.data import cohort as cohort_mod
from transferlimits.data.datasets import PretrainDataset
from transferlimits.data.splits import make_splits, patient_id, resolve_split_sizes

REAL = cohort_mod.real_patient_ids()


def test_the_real_exams_are_known():
    assert set(REAL) == {patient_id(p.name) for p in paths.REAL_CASES.iterdir() if p.is_dir()} and len(REAL) == 2


@pytest.mark.skipif(not paths.GEOMETRY_PACK.exists(), reason="geometry pack not built")
@pytest.mark.parametrize("name", [n for n, p in PROFILES.items() if p.data_source == "phantom"])
def test_phantom_profiles_keep_the_real_patients_out_of_every_split(name):
    splits, _ = cohort_mod._select_phantom(get_profile(name), seed=0)
    assert sum(map(len, splits.values())) > 0
    for split, ids in splits.items():
        assert not {patient_id(c) for c in ids} & set(REAL), (name, split)


@pytest.mark.parametrize("name", [n for n, p in PROFILES.items() if p.data_source == "picai"])
def test_picai_profiles_drop_the_real_patients_before_splitting(name):
    prof = get_profile(name)
    user_cases = [f"{p}_1000000" for p in REAL] + [f"{20000 + i}_{2000000 + i}" for i in range(60)]
    usable = cohort_mod.candidate_ids(user_cases)
    assert len(usable) == 60
    sizes = resolve_split_sizes(prof.splits, len(usable))
    splits = make_splits(usable, [i % 4 for i in range(len(usable))], sizes, seed=0)
    assert not {patient_id(c) for ids in splits.values() for c in ids} & set(REAL)


class _Cohort:
    """A cohort whose pre-training split holds a real exam (what the dataset must refuse)."""

    profile = get_profile("smoke")

    def case_ids(self, split):
        return {"pretrain": ["20000_1", "10795_1000811"], "real": ["10795_1000811", "11373_1001396"]}[split]


def test_pretrain_dataset_refuses_a_real_exam():
    with pytest.raises(ValueError, match="real exams.*10795_1000811"):
        PretrainDataset(_Cohort(), "profound")
    with pytest.raises(ValueError, match="include_real"):
        cohort_mod.pretrain_dataset(_Cohort(), "profound", include_real=True)
