"""A built cohort on disk (:class:`Cohort`: its manifest, splits and cached cases), as
:func:`transferlimits.data.cohort.build_cohort` writes it (re-exported there)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transferlimits import paths
from transferlimits.config import GridSpec, Profile, get_profile
from transferlimits.data.cache import read_case
from transferlimits.data.case import MRCase
from transferlimits.data.splits import SPLIT_NAMES
from transferlimits.data.tissues import GENERATOR_VERSION

__all__ = ["Cohort", "as_profile", "grid_dict", "cohort_meta"]


def as_profile(profile: Profile | str) -> Profile:
    """``profile`` itself, or the built-in profile of that name."""
    return get_profile(profile) if isinstance(profile, str) else profile


def grid_dict(grid: GridSpec) -> dict[str, list]:
    """``grid`` as the manifest records it (shape and spacing as JSON lists)."""
    return {"shape": list(grid.shape), "spacing": [float(s) for s in grid.spacing]}


def _conspicuity(prof: Profile) -> dict[str, float]:
    """The manifest / case-cache key of ``Profile.lesion_conspicuity``: absent at 1 (caches made before it stay valid)."""
    value = float(prof.lesion_conspicuity)
    return {} if value == 1.0 or prof.data_source != "phantom" else {"lesion_conspicuity": value}


def cohort_meta(prof: Profile, seed: int = 0) -> dict[str, Any]:
    """The metadata every cached case of ``prof``'s cohort carries (and its manifest records): generator version,
    grid, seed, data source and, for a phantom cohort at another conspicuity than 1, the lesion conspicuity."""
    return {"generator_version": GENERATOR_VERSION, "grid": grid_dict(prof.grid), "seed": int(seed),
            "data_source": prof.data_source, **_conspicuity(prof)}


class Cohort:
    """A built cohort on disk: splits, cached cases, the real exams on the same grid."""

    def __init__(self, profile: Profile, root: Path, manifest: dict[str, Any]) -> None:
        self.profile, self.root, self.manifest = profile, Path(root), manifest

    @classmethod
    def load(cls, profile: Profile | str) -> "Cohort":
        """Open the cohort of ``profile`` (ValueError if it has not been built)."""
        prof = as_profile(profile)
        root = paths.data_dir(prof.name)
        mpath = root / "manifest.json"
        if not mpath.is_file():
            raise ValueError(f"{mpath}: no cohort manifest; build it with `python -m transferlimits data --profile {prof.name}`")
        return cls(prof, root, json.loads(mpath.read_text()))

    @property
    def splits(self) -> dict[str, list[str]]:
        return {n: list(self.manifest["splits"][n]) for n in SPLIT_NAMES}

    def case_ids(self, split: str) -> list[str]:
        """Case ids of ``split`` (one of pretrain, train, val, test; ``real`` for the real exams)."""
        if split == "real":
            return sorted(self.manifest["real_cases"])
        if split not in SPLIT_NAMES:
            raise ValueError(f"unknown split {split!r}; valid: {list(SPLIT_NAMES) + ['real']}")
        return list(self.manifest["splits"][split])

    def case(self, case_id: str) -> MRCase:
        """Load one cached case (phantom or real) by id."""
        entry = self.manifest["cases"].get(case_id) or self.manifest["real_cases"].get(case_id)
        if entry is None:
            raise ValueError(f"case {case_id!r} is not in the cohort of profile {self.profile.name!r}")
        return read_case(self.root / entry["file"])

    def cases(self, split: str) -> list[MRCase]:
        """All cases of ``split`` (loaded from the cache)."""
        return [self.case(c) for c in self.case_ids(split)]

    def real_cases(self) -> list[MRCase]:
        """The real exams resampled onto the profile grid (external test of the restoration tasks)."""
        return self.cases("real")
