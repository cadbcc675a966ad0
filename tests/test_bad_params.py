"""Profile overrides and notebook parameters are validated by type and range at the edge.

``get_profile`` refuses wrong types and out-of-range values naming the field and its valid range;
``runner.params.validate_parameters`` refuses ``finetune_epochs=-3`` (0 keeps meaning "the profile's
epochs"); ``data.splits.resolve_split_sizes`` turns the picai fractions into counts with minimums.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from transferlimits.config import FIELD_RANGES, PROFILES, SplitSizes, get_profile
from transferlimits.data.splits import resolve_split_sizes
from transferlimits.runner.params import PARAMETER_HELP, validate_parameters

TEMPLATE = Path(__file__).resolve().parents[1] / "notebooks" / "10_task.py"


@pytest.mark.parametrize("overrides, message", [
    ({"finetune": {"epochs": -1}}, r"profile\.finetune: FinetuneRecipe\.epochs=-1 is invalid: expected an int >= 1"),
    ({"finetune": {"epochs": "abc"}}, r"FinetuneRecipe\.epochs='abc' is invalid: expected an int >= 1"),
    ({"finetune": {"epochs": 2.5}}, r"FinetuneRecipe\.epochs=2\.5 is invalid"),
    ({"finetune": {"epochs": True}}, r"FinetuneRecipe\.epochs=True is invalid"),
    ({"finetune": {"lr": -1}}, r"FinetuneRecipe\.lr=-1 is invalid: expected a number > 0"),
    ({"finetune": {"augment": "yes"}}, r"FinetuneRecipe\.augment='yes' is invalid: expected a bool"),
    ({"finetune": {"layer_decay": 0}}, r"layer_decay=0 is invalid: expected a number in \(0, 1\]"),
    ({"pretrain": {"lr": float("nan")}}, r"PretrainRecipe\.lr=nan is invalid"),
    ({"pretrain": {"mask_ratio": 1.0}}, r"mask_ratio=1\.0 is invalid: expected a number in \(0, 1\)"),
    ({"pretrain": {"betas": (0.9, 1.5)}}, r"betas=\(0\.9, 1\.5\) is invalid: expected a tuple of numbers in \[0, 1\)"),
    ({"measure": {"n_permutations": 0}}, r"MeasureConfig\.n_permutations=0 is invalid: expected an int >= 1"),
    ({"seeds": (0, -1)}, r"Profile\.seeds=\(0, -1\) is invalid: expected a tuple of ints >= 0"),
    ({"num_threads": -2}, r"Profile\.num_threads=-2 is invalid: expected an int >= 0"),
    ({"finetune": 5}, r"Profile\.finetune must be a FinetuneRecipe"),
    ({"splits": {"pretrain": -1}}, r"SplitSizes\.pretrain=-1 is invalid: expected an int >= 0"),
])
def test_bad_override_names_field_and_range(overrides, message):
    with pytest.raises(ValueError, match=message):
        get_profile("smoke", **overrides)
    assert PROFILES["smoke"].finetune.epochs == 4  # the shipped profile is untouched


def test_every_shipped_profile_is_within_its_ranges():
    for prof in PROFILES.values():
        for section in ("pretrain", "finetune", "measure"):
            obj = getattr(prof, section)
            for name, rng in FIELD_RANGES[type(obj).__name__].items():
                assert rng.ok(getattr(obj, name)), (prof.name, section, name)


def test_smoke_and_reference_split_sizes_are_exact():
    assert get_profile("smoke").splits == SplitSizes(pretrain=48, train=24, val=8, test=16)
    assert get_profile("reference").splits == SplitSizes(pretrain=300, train=64, val=24, test=100)  # the cpu design


@pytest.mark.parametrize("n, expected", [
    (14, (4, 4, 2, 4)), (100, (60, 16, 4, 20)), (1476, (886, 236, 59, 295)),
])
def test_picai_split_fractions_follow_the_patients(n, expected):
    sizes = resolve_split_sizes(get_profile("picai").splits, n)
    assert (sizes.pretrain, sizes.train, sizes.val, sizes.test) == expected and sum(expected) == n


def test_picai_split_fractions_below_minimum_say_found_and_needed():
    with pytest.raises(ValueError, match=r"13 usable patient\(s\) found in /data/x, the split fractions need at least 14"):
        resolve_split_sizes(get_profile("picai").splits, 13, "/data/x")
    exact = get_profile("picai", splits={"pretrain": 0, "train": 1, "val": 0, "test": 1}).splits
    assert resolve_split_sizes(exact, 2) == exact
    with pytest.raises(ValueError, match=r"SplitFractions add up to 1\.3 > 1"):
        get_profile("picai", splits={"pretrain": 0.9})


def test_epochs_are_not_a_notebook_parameter_but_a_profile_field():
    """One way to set each parameter: fine-tuning epochs are the profile's (``run --set``), not the notebook's."""
    with pytest.raises(ValueError, match=r"unknown notebook parameter\(s\) \['finetune_epochs'\]"):
        validate_parameters(TEMPLATE, {"finetune_epochs": "2"})


def test_seed_parameter_range_and_help_line():
    pretrain = TEMPLATE.with_name("01_pretrain.py")
    with pytest.raises(ValueError, match=r"parameter 'seed'=-1 is invalid: expected an int >= 0"):
        validate_parameters(pretrain, {"seed": "-1"})
    assert "seed: an int >= 0" in PARAMETER_HELP
