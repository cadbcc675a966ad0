"""metrics.json, defined once: its documentation, its validation and its construction come from the tables below.

Files are strict JSON (STUDY §5): no ``NaN``/``Infinity``; a value that cannot be computed is ``null`` and
``undefined`` maps its dotted path to the reason. :data:`TOP_FIELDS` lists the top-level fields in file order,
:data:`RUN_FIELDS` the fields of one fine-tuning run, :data:`ENTRY_FIELDS` one alignment entry; :func:`schema_doc`
renders them (this docstring ends with it), :func:`validate_metrics` checks a dict against them and
:func:`build_metrics` builds the dict from exactly these fields.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from transferlimits.jsonsafe import dumps_strict, jsonable, loads_strict
from transferlimits.jsonsafe import null_paths as _null_paths
from transferlimits.paths import OBJECTIVE_KINDS, PROBED_KINDS
from transferlimits.study.schema_fields import (CALIBRATION_FIELDS, CURVE_KEYS, CURVE_KEYS_NEW, ENTRY_FIELDS,
                                               INIT_NAMES, READ_VERSIONS, RUN_FIELDS, SCHEMA_VERSION, TOP_FIELDS, Field)
from transferlimits.study.schema_transfer import (TARGET_TYPES, TRANSFER_FIELDS, TRANSFER_REQUIRED,
                                                  validate_transferability)

__all__ = ["SCHEMA_VERSION", "INIT_NAMES", "OBJECTIVE_KINDS", "Field", "TOP_FIELDS", "RUN_FIELDS", "ENTRY_FIELDS",
           "CALIBRATION_FIELDS", "CURVE_KEYS", "CURVE_KEYS_NEW", "TARGET_TYPES", "schema_doc", "validate_metrics",
           "load_metrics", "build_metrics", "jsonable", "READ_VERSIONS"]


def schema_doc() -> str:
    """The field tables as text (the documentation of metrics.json)."""
    transfer = tuple(Field(n, t, d + ("" if n in TRANSFER_REQUIRED else " (absent in older files)"), nb)
                     for n, t, d, nb in TRANSFER_FIELDS)
    blocks = [("metrics.json", TOP_FIELDS), ("runs.<init>", RUN_FIELDS), ("alignment entry", ENTRY_FIELDS),
              ("alignment.pretrained.calibration", CALIBRATION_FIELDS), ("transferability", transfer)]
    lines = []
    for title, fields in blocks:
        lines.append(f"{title}::\n")
        lines += [f"    {f.name:<24} {f.type.__name__ + ('|null' if f.nullable else ''):<10} "
                  f"{'(optional) ' if f.optional else ''}{f.doc}" for f in fields]
        lines.append("")
    return "\n".join(lines)


__doc__ = f"{__doc__}\n{schema_doc()}"


def _typed(value: Any, typ: type, nullable: bool = False) -> bool:
    if value is None:
        return nullable
    if typ is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if typ is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, typ)


def _check_fields(d: Any, fields: dict[str, type] | tuple[Field, ...], where: str) -> None:
    if not isinstance(d, dict):
        raise ValueError(f"metrics.json: {where or 'the file'} must be a dict, got {type(d).__name__}")
    table = {f.name: (f.type, f.nullable, f.optional) for f in fields} if isinstance(fields, tuple) else \
        {k: (t, False, False) for k, t in fields.items()}
    for key, (typ, nullable, optional) in table.items():
        name = f"{where}.{key}" if where else key
        if key not in d and optional:
            continue
        if key not in d:
            raise ValueError(f"metrics.json: missing field {name}")
        if not _typed(d[key], typ, nullable):
            got = "null" if d[key] is None else type(d[key]).__name__
            raise ValueError(f"metrics.json: field {name} must be {typ.__name__}{' or null' if nullable else ''}, "
                             f"got {got}")


def _check_scores(scores: Any, where: str) -> None:
    _check_fields(scores, {}, where)
    for metric, value in scores.items():
        if not _typed(value, float, nullable=True):
            raise ValueError(f"metrics.json: field {where}.{metric} must be float or null")


def required_inits(d: dict) -> tuple[str, ...]:
    """The runs a point must have: pretrained and scratch, the linear probe on the pre-training objectives'
    points (``paths.PROBED_KINDS``; an older file has it on every point) and, since schema 3, the ablated run."""
    probed = d["objective"] in PROBED_KINDS or "linear_probe" in d.get("runs", {})
    return tuple(i for i in INIT_NAMES if i != "linear_probe" or probed)


def _validate_runs(d: dict) -> None:
    for init in required_inits(d) + (("ablated",) if d["schema_version"] >= 3 else ()):
        if init not in d["runs"]:
            raise ValueError(f"metrics.json: missing field runs.{init}")
        run = d["runs"][init]
        _check_fields(run, RUN_FIELDS, f"runs.{init}")
        for i, row in enumerate(run["curve"]):
            for key in CURVE_KEYS:
                if not isinstance(row, dict) or key not in row:
                    raise ValueError(f"metrics.json: missing field runs.{init}.curve[{i}].{key}")
        if run["curve"] and run["curve"][0]["epoch"] != 0:
            raise ValueError(f"metrics.json: runs.{init}.curve[0] must be the epoch-0 evaluation (epoch 0)")
        _check_scores(run["test"], f"runs.{init}.test")


def _validate_outcome(d: dict) -> None:
    for name, scores in d["baselines"].items():
        _check_scores(scores, f"baselines.{name}")
    _check_fields(d["baseline_primary"], (Field("name", str, ""), Field("metric", str, ""),
                                          Field("value", float, "", nullable=True)), "baseline_primary")
    for init in required_inits(d):
        if init not in d["learned"]:
            raise ValueError(f"metrics.json: missing field learned.{init}")
        _check_fields(d["learned"][init], {"beats_baseline": bool}, f"learned.{init}")
    if d["rpg_defined"] != (d["rpg_primary"] is not None):
        raise ValueError("metrics.json: rpg_primary must be null exactly when rpg_defined is false")
    if not d["rpg_defined"] and not d["rpg_undefined_reason"]:
        raise ValueError("metrics.json: rpg_undefined_reason must say why RPG is not defined")
    for key in ("vs_scratch", "vs_linear_probe"):
        _check_fields(d["rpg"], {key: dict}, "rpg")
        if key not in d["normalised_gain"]:
            raise ValueError(f"metrics.json: missing field normalised_gain.{key}")
    for init, groups in d["lr_groups"].items():
        for i, g in enumerate(groups):
            _check_fields(g, {"name": str, "lr": float, "weight_decay": float, "n_params": int},
                          f"lr_groups.{init}[{i}]")


def validate_metrics(d: dict) -> None:
    """Check a metrics dict against the field tables (and that it is strict JSON: no NaN or Infinity).

    Raises:
        ValueError: naming the first missing or mistyped field, a wrong ``schema_version`` or a non-finite number.
    """
    version = d.get("schema_version") if isinstance(d, dict) else None
    if version not in READ_VERSIONS:
        raise ValueError(f"metrics.json: schema_version {version} is not one of {list(READ_VERSIONS)}")
    _check_fields(d, tuple(f for f in TOP_FIELDS if f.since <= version), "")
    if d["objective"] not in OBJECTIVE_KINDS:
        raise ValueError(f"metrics.json: objective {d['objective']!r} not in {list(OBJECTIVE_KINDS)}")
    _check_fields(d["task_spec"], {"kind": str, "primary_metric": str, "higher_is_better": bool}, "task_spec")
    _validate_runs(d)
    _validate_outcome(d)
    if "pretrained" not in d["alignment"]:
        raise ValueError("metrics.json: missing field alignment.pretrained")
    for init, block in d["alignment"].items():
        _check_fields(block, {"pooled": dict, "tokens": dict}, f"alignment.{init}")
        if "weight_change" in block and not _typed(block["weight_change"], float, nullable=True):
            raise ValueError(f"metrics.json: field alignment.{init}.weight_change must be float or null")
        if "calibration" in block:  # optional (absent in older files), like weight_change
            _check_fields(block["calibration"], CALIBRATION_FIELDS, f"alignment.{init}.calibration")
        for kind in ("pooled", "tokens"):
            for layer, entry in block[kind].items():
                fields = ENTRY_FIELDS if kind == "pooled" else tuple(f for f in ENTRY_FIELDS if "cka" not in f.name)
                _check_fields(entry, fields, f"alignment.{init}.{kind}.{layer}")
    validate_transferability(d["transferability"])
    _check_fields(d["provenance"], {"software": dict, "hardware": dict, "git_commit": str, "timings": dict},
                  "provenance")
    dumps_strict(d)  # ValueError on NaN / Infinity anywhere in the tree


def load_metrics(path: str | Path) -> dict:
    """Read (strictly: ``NaN``/``Infinity`` are rejected) and validate a ``metrics.json`` (a file or its folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.json"
    d = loads_strict(path.read_text())
    validate_metrics(d)
    return d


#: null values that are reasons themselves, or null by design, and need no entry in ``undefined``.
_NULL_BY_DESIGN = ("rpg_undefined_reason",)


def build_metrics(undefined: dict[str, str] | None = None, **fields: Any) -> dict:
    """The metrics dict from exactly the :data:`TOP_FIELDS` (``schema_version`` and ``undefined`` are filled in),
    in file order, converted to strict JSON types and validated.

    Args:
        undefined: reasons the caller knows for values it passes as None/NaN (``{"dotted.path": reason}``);
            every other null leaf gets a generic reason (``"nan: not computable"`` for a NaN, ``"null: not
            applicable"`` for a None).
        **fields: the fields of :data:`TOP_FIELDS` except ``schema_version`` and ``undefined``.

    Raises:
        ValueError: a missing or unknown field (named), or a field that fails :func:`validate_metrics`.
    """
    fields = {"schema_version": SCHEMA_VERSION, **fields, "undefined": {}}
    names = [f.name for f in TOP_FIELDS]
    missing, unknown = [n for n in names if n not in fields], sorted(set(fields) - set(names))
    if missing or unknown:
        raise ValueError(f"build_metrics: missing fields {missing}, unknown fields {unknown}")
    reasons: dict[str, str] = {}
    metrics = jsonable({n: fields[n] for n in names}, reasons)
    reasons.update(undefined or {})
    for path in _null_paths(metrics):
        if path not in _NULL_BY_DESIGN:
            reasons.setdefault(path, "null: not applicable")
    metrics["undefined"] = dict(sorted(reasons.items()))
    validate_metrics(metrics)
    return metrics
