"""Strict JSON for every file the study writes: no NaN or Infinity, an undefined value is ``null`` (STUDY §5).

Python's ``json`` writes ``NaN``/``Infinity`` by default, which ``JSON.parse`` and most other parsers reject.
:func:`to_strict_json` turns a result tree into plain JSON types (NumPy scalars and arrays, tuples, sets,
dataclasses, paths) and replaces every non-finite float by ``None``, optionally recording why in a reason map
``{"a/b/0": "nan"}`` (keys are ``/``-joined paths, values ``"nan"``, ``"inf"`` or ``"-inf"``) that the caller
can store beside the value. :func:`dumps_strict` serialises with ``allow_nan=False``; :func:`loads_strict`
parses and rejects the constants ``NaN``, ``Infinity`` and ``-Infinity``. :func:`jsonable` (the same with
dotted-path reasons, as metrics.json's ``undefined`` keys them) and :func:`null_paths` moved here from
:mod:`transferlimits.study.schema`, which re-exports them.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from os import PathLike
from typing import Any

import numpy as np

__all__ = ["dumps_strict", "loads_strict", "to_strict_json", "jsonable", "null_paths"]


def _reason(x: float) -> str:
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _convert(obj: Any, path: str, reasons: dict[str, str] | None) -> Any:
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if math.isfinite(x):
            return x
        if reasons is not None:
            reasons[path] = _reason(x)
        return None
    if isinstance(obj, (complex, np.complexfloating)):
        raise ValueError(f"complex value at {path or '/'} has no JSON form")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            key = _key(k, path)
            if key in out:
                raise ValueError(f"keys collide as {key!r} at {path or '/'}")
            out[key] = _convert(v, f"{path}/{key}" if path else key, reasons)
        return out
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    elif hasattr(obj, "tolist") and callable(obj.tolist):  # torch tensors, NumPy-like arrays
        obj = obj.tolist()
    if isinstance(obj, (list, tuple)):
        return [_convert(v, f"{path}/{i}" if path else str(i), reasons) for i, v in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):
        return [_convert(v, f"{path}/{i}" if path else str(i), reasons) for i, v in enumerate(sorted(obj, key=repr))]
    if isinstance(obj, PathLike):
        return str(obj)
    if isinstance(obj, (int, float)):  # e.g. a 0-d array turned into a Python scalar by tolist()
        return _convert(obj, path, reasons)
    raise ValueError(f"value of type {type(obj).__name__} at {path or '/'} has no JSON form")


def _key(k: Any, path: str) -> str:
    if isinstance(k, str):
        return k
    if isinstance(k, (bool, np.bool_)):
        return "true" if k else "false"
    if isinstance(k, (int, np.integer)):
        return str(int(k))
    if isinstance(k, (float, np.floating)):
        if not math.isfinite(float(k)):
            raise ValueError(f"non-finite key {k!r} at {path or '/'}")
        return repr(float(k))
    raise ValueError(f"key of type {type(k).__name__} at {path or '/'} cannot be a JSON key")


def to_strict_json(obj: Any, reasons: dict[str, str] | None = None) -> Any:
    """Plain-JSON copy of ``obj`` with every NaN/±Inf replaced by ``None``.

    Args:
        obj: nested dicts / lists / tuples / sets / dataclasses of Python or NumPy scalars and arrays (also
            objects with ``tolist()``, e.g. CPU tensors, and paths). Keys become strings (floats via ``repr``).
        reasons: optional dict filled in place with ``{path: "nan" | "inf" | "-inf"}`` for each replaced value.

    Returns:
        The converted object (``json.dumps(..., allow_nan=False)`` accepts it). ``ValueError`` for a value or
        key without a JSON form, naming its path.
    """
    return _convert(obj, "", reasons)


def dumps_strict(obj: Any, reasons: dict[str, str] | None = None, **kwargs) -> str:
    """``json.dumps`` of :func:`to_strict_json` (``allow_nan=False``; ``kwargs`` e.g. ``indent``)."""
    return json.dumps(to_strict_json(obj, reasons), allow_nan=False, **kwargs)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name!r} (NaN/Infinity are not JSON; write null with a reason)")


def loads_strict(text: str | bytes) -> Any:
    """``json.loads`` that raises ``ValueError`` on ``NaN``, ``Infinity`` or ``-Infinity``."""
    return json.loads(text, parse_constant=_reject_constant)


def jsonable(obj: Any, reasons: dict[str, str] | None = None) -> Any:
    """Strict-JSON copy of ``obj`` (:func:`to_strict_json`) with the reasons keyed by dotted paths (metrics.json).

    Args:
        obj: the tree. reasons: optional dict filled with ``{"dotted.path": "nan" | "inf" | "-inf"}``.
    """
    raw: dict[str, str] = {}
    out = to_strict_json(obj, raw)
    if reasons is not None:
        reasons.update({k.replace("/", "."): f"{v}: not computable" for k, v in raw.items()})
    return out


def null_paths(obj: Any, path: str = "") -> list[str]:
    """Dotted paths of every ``None`` leaf of a JSON tree."""
    if obj is None:
        return [path]
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in null_paths(v, f"{path}.{k}" if path else str(k))]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in null_paths(v, f"{path}.{i}" if path else str(i))]
    return []
