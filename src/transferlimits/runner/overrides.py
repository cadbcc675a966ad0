"""Profile overrides on the command line (``run --set KEY=VALUE``): parse, nest, validate with ``get_profile``.

``--set grid.shape=[16,32,32] --set encoder_sizes.profound=test --set seeds=[0]`` becomes
``{"grid": {"shape": [16, 32, 32]}, "encoder_sizes": {"profound": "test", "provicnet": ...}, "seeds": [0]}``:
dotted keys address nested fields, values are YAML literals (numbers, lists, strings). A mapping field that is
not a dataclass (``encoder_sizes``) is merged with the profile's own, so one key can change one entry. The
result is validated by :func:`transferlimits.config.get_profile` (names, types and ranges) before any job
starts, and every notebook of the run receives it as its ``profile_overrides`` parameter (JSON).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Iterable, Mapping

import yaml

from transferlimits.config import get_profile

__all__ = ["parse_overrides", "overrides_json"]


def _literal(key: str, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise ValueError(f"--set {key}={text!r}: the value is not a YAML literal (number, list, string)") from None


def _merge(current: Mapping[str, Any], value: Mapping[str, Any]) -> dict[str, Any]:
    """``value`` merged into ``current`` key by key, nested mappings too (``--set task_finetune.segmentation.epochs=2``
    changes one field of one task's recipe and keeps its others)."""
    out = dict(current)
    for key, v in value.items():
        old = out.get(key)
        out[key] = _merge(old, v) if isinstance(old, Mapping) and isinstance(v, Mapping) else v
    return out


def parse_overrides(items: Iterable[str], profile: str) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=[2, 3]"]`` into nested ``get_profile`` overrides for ``profile`` and validate them.

    Args:
        items: ``KEY=VALUE`` strings; KEY is a field of the profile, dotted for nested fields.
        profile: the profile name the overrides apply to.

    Returns:
        The nested overrides (plain JSON types), ready for ``get_profile(profile, **overrides)``.

    Raises:
        ValueError: an item that is not KEY=VALUE, a value that is not a literal, or an override that
            ``get_profile`` refuses (unknown field, wrong type, out of range; its message names the field).
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key or not text:
            raise ValueError(f"--set item {item!r} is not KEY=VALUE (e.g. --set seeds=[0])")
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {key}: {part!r} was given a value and cannot also have fields")
        node[parts[-1]] = _literal(key, text)
    if not out:
        return out
    base = get_profile(profile)
    for name, value in list(out.items()):
        current = getattr(base, name, None)
        if isinstance(current, Mapping) and not dataclasses.is_dataclass(current) and isinstance(value, dict):
            out[name] = _merge(current, value)
    try:
        get_profile(profile, **out)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--set: {exc}") from None
    return json.loads(json.dumps(out))


def overrides_json(overrides: Mapping[str, Any] | None) -> str:
    """The notebook parameter ``profile_overrides``: compact JSON, keys sorted ("" when there are none)."""
    return json.dumps(dict(overrides), sort_keys=True, separators=(",", ":")) if overrides else ""
