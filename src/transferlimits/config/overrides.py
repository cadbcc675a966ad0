"""Profiles by name with validated overrides (:func:`get_profile`), and their JSON form (:func:`profile_to_dict`).

Names of tasks and models are not checked here (this package is a leaf); the registries check them where a
profile is consumed (``tasks.registry.check_profile_tasks``, ``models.registry.check_profile_models``).
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Mapping

from transferlimits.config.profile import Profile
from transferlimits.config.profiles import PROFILES
from transferlimits.config.recipes import GridSpec, SplitFractions, SplitSizes

__all__ = ["get_profile", "profile_to_dict"]


def _apply(obj: Any, overrides: Mapping[str, Any], where: str) -> Any:
    valid = {f.name for f in dataclasses.fields(obj)}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in valid:
            raise ValueError(f"unknown {where} field {key!r}; valid: {sorted(valid)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
            value = _apply(current, value, f"{where}.{key}")
        elif isinstance(current, tuple) and isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        changes[key] = value
    try:
        return dataclasses.replace(obj, **changes)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None


def _splits_override(current: Any, value: Mapping[str, Any]) -> SplitSizes | SplitFractions:
    """A ``splits`` mapping: all-int values give exact :class:`SplitSizes`, numbers with a fraction
    :class:`SplitFractions` (merged into ``current`` when it has the same type)."""
    names = ("pretrain", "train", "val", "test")
    sizes = {k: v for k, v in value.items() if k in names}
    exact = all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in sizes.values())
    exact = exact and not any(k.startswith("min_") for k in value)
    cls = SplitSizes if exact else SplitFractions
    if isinstance(current, cls):
        return _apply(current, value, "profile.splits")
    missing = [n for n in names if n not in value]
    if missing:
        raise ValueError(
            f"profile.splits: switching to {cls.__name__} needs all of {list(names)}; missing {missing} "
            "(ints = patients per split, fractions in [0, 1] = shares of the usable patients)")
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - valid)
    if unknown:
        raise ValueError(f"unknown profile.splits field {unknown[0]!r}; valid: {sorted(valid)}")
    try:
        return cls(**value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"profile.splits: {err}") from None


def get_profile(name: str, **overrides: Any) -> Profile:
    """Return the profile ``name`` with optional (nested) overrides.

    Args:
        name: one of ``smoke``, ``cpu``, ``reference``, ``picai``.
        **overrides: field overrides; nested dataclasses take a mapping, e.g.
            ``finetune={"epochs": 2}``, ``grid={"shape": (16, 32, 32), "spacing": (3, 2, 2)}``.

    Raises:
        ValueError: unknown profile or override key (the message lists the valid ones), or a value of
            the wrong type or out of range (the message names the field and its range, see
            :data:`~transferlimits.config.ranges.FIELD_RANGES`). Task and model names are checked by the
            registries where the profile is used (``check_profile_tasks`` / ``check_profile_models``).
    """
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid: {sorted(PROFILES)}")
    prof = PROFILES[name]
    if isinstance(overrides.get("splits"), Mapping):
        overrides = dict(overrides, splits=_splits_override(prof.splits, overrides["splits"]))
    if "grid" in overrides and isinstance(overrides["grid"], Mapping):
        g = dict(dataclasses.asdict(prof.grid), **overrides["grid"])
        overrides = dict(overrides, grid=GridSpec(tuple(g["shape"]), tuple(g["spacing"])))
    return _apply(prof, overrides, "profile") if overrides else prof


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    """A JSON-ready dict of the profile (for provenance in metrics.json)."""
    d = dataclasses.asdict(profile)
    d["encoder_sizes"] = dict(profile.encoder_sizes)
    d["task_finetune"] = {t: dict(c) for t, c in profile.task_finetune.items()}
    return d
