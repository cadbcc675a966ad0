"""Profiles of the study as typed, frozen dataclasses: one :class:`Profile` flows everywhere.

A leaf of the package: it imports no registry and no torch (``tests/test_layers.py``). Four profiles exist
(STUDY §6):

* ``smoke`` - CPU, tiny models, a few minutes: CI and a new user's first run.
* ``cpu`` - two CPU cores: small encoders, 100 test cases, three seeds, full-resolution dense
  heads; sized so every point can beat its trivial baseline (``benchmarks/estimate_cpu.py``).
* ``reference`` - one GPU, the published model sizes (ConvNeXt-V2-Tiny, ViT-S/14 at 448 px), the
  phantom cohort at the ProFound grid, three seeds: the numbers the book is about.
* ``picai`` - the user's own PI-CAI images (``--data``) and released weights (``--weights``).

Use :func:`get_profile` to obtain one, with optional overrides validated by name::

    prof = get_profile("smoke", finetune={"epochs": 2})

Unknown profile names or override keys raise :class:`ValueError` listing the valid ones. Task and model names
are checked by the registries where a profile is consumed (``tasks.registry.check_profile_tasks``,
``models.registry.check_profile_models``).

Modules: :mod:`.ranges` (valid values of the numeric fields), :mod:`.recipes` (grid, splits, recipes),
:mod:`.profile` (:class:`Profile`, the study's task and model names), :mod:`.profiles` (the four built-in
profiles), :mod:`.overrides` (:func:`get_profile`, :func:`profile_to_dict`).
"""

from __future__ import annotations

from transferlimits.config.overrides import get_profile, profile_to_dict
from transferlimits.config.profile import STUDY_MODELS, STUDY_TASKS, TASKS, Profile
from transferlimits.config.profiles import PROFILES
from transferlimits.config.ranges import FIELD_RANGES, Range
from transferlimits.config.recipes import (
    FinetuneRecipe,
    GridSpec,
    MeasureConfig,
    PretrainRecipe,
    SplitFractions,
    SplitSizes,
    short_step,
)

__all__ = [
    "GridSpec",
    "SplitSizes",
    "SplitFractions",
    "Range",
    "FIELD_RANGES",
    "PretrainRecipe",
    "FinetuneRecipe",
    "MeasureConfig",
    "Profile",
    "STUDY_TASKS",
    "STUDY_MODELS",
    "TASKS",
    "PROFILES",
    "get_profile",
    "profile_to_dict",
    "short_step",
]
