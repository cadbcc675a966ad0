"""metrics.json, defined once: its documentation, its validation and its construction come from the tables below.

``NaN`` is written as ``NaN``. :data:`TOP_FIELDS` lists the top-level fields in file order, :data:`RUN_FIELDS`
the fields of one fine-tuning run, :data:`ENTRY_FIELDS` one alignment entry; :func:`schema_doc` renders them
(this docstring ends with it), :func:`validate_metrics` checks a dict against them and :func:`build_metrics`
builds the dict from exactly these fields.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SCHEMA_VERSION", "INIT_NAMES", "OBJECTIVE_KINDS", "Field", "TOP_FIELDS", "RUN_FIELDS", "ENTRY_FIELDS",
           "CURVE_KEYS", "schema_doc", "validate_metrics", "load_metrics", "build_metrics", "jsonable"]

SCHEMA_VERSION = 1
INIT_NAMES = ("pretrained", "scratch", "linear_probe")
OBJECTIVE_KINDS = ("native", "swapped")
CURVE_KEYS = ("epoch", "train_loss", "val_loss", "val_metric", "lr", "wall_s", "device_s")


@dataclass(frozen=True)
class Field:
    """One field: ``name``, its JSON ``type`` (checked) and what it holds (``doc``)."""

    name: str
    type: type
    doc: str


TOP_FIELDS: tuple[Field, ...] = (
    Field("schema_version", int, "int, 1"),
    Field("task", str, "task name"),
    Field("model", str, "model name"),
    Field("seed", int, "fine-tuning seed"),
    Field("profile", str, "the profile name"),
    Field("objective", str, '"native" | "swapped"'),
    Field("objective_name", str, 'the pre-training objective ("fcmae", "contrastive", "mae")'),
    Field("settings", dict, "what defines the run (resume key): task, model, seed, objective(_name), pretrained "
          "(path), pretrained_sha256, width, reuse_scratch_from, profile (config.profile_to_dict)"),
    Field("task_spec", dict, "kind, primary_metric, higher_is_better (bool), metrics (list of str)"),
    Field("n_cases", dict, "split -> int (train, val, test, + real for restoration tasks)"),
    Field("runs", dict, "init -> run (fields below) for init in pretrained | scratch | linear_probe"),
    Field("rpg", dict, "vs_scratch / vs_linear_probe -> metric -> float (percent; positive = pretraining helped, "
          "sign flipped for lower-is-better metrics via the task kind's directions)"),
    Field("rpg_primary", float, "RPG of the primary metric vs scratch"),
    Field("convergence", dict, "metrics.transfer.convergence_summary of the validation curves, pretrained vs "
          "scratch (keys str(fraction) -> epochs_/seconds_ pretrained/scratch/ratio)"),
    Field("alignment", dict, 'init -> {"pooled": {layer: entry}, "tokens": {layer: entry}} for pretrained '
          "(pretrained encoder vs its fine-tuned copy) and scratch (random init vs its fine-tuned copy; absent "
          'when the scratch run was reused). pooled: one row per test image per layer ("embedding" = the '
          "encoder's pooled output); tokens: sampled token/voxel rows. entry fields below"),
    Field("transferability", dict, "target (str, what LogME scored), regression (bool), n (int), logme float, "
          "linear_probe dict (accuracy/auroc or r2, cv) -- on FROZEN pretrained features (embedding) of the "
          "train split (pre-hoc, H5); the per-case target is the task kind's (``case_target``)"),
    Field("provenance", dict, "software (dict), hardware (dict), git_commit str, created (ISO UTC), timings "
          "{total_s, finetune_s {init -> s}, measure_s}"),
    Field("examples", str, "file name of the examples npz next to metrics.json: dense tasks input, target, "
          "pred_<init> [k, H, W] on one axial slice per case (the kind's example slice), case_ids; "
          "classification probs_<init> [n, C], labels [n], case_ids; scalar tasks pred_<init>, target"),
)
RUN_FIELDS: tuple[Field, ...] = (
    Field("test", dict, "metric -> float (aggregated over the test cases)"),
    Field("per_case", list, "dicts: case_id + per-case scores (classification: label, probs)"),
    Field("curve", list, "dicts: " + ", ".join(CURVE_KEYS) + " (wall_s/device_s cumulative, validation included)"),
    Field("best_epoch", int, "1-based epoch of the best validation primary metric"),
    Field("best_val", float, "that metric value"),
    Field("train_seconds", float, "wall seconds of training"),
    Field("extra", dict, 'split -> metric -> float (e.g. "real": the 2 real exams)'),
)
ENTRY_FIELDS: tuple[Field, ...] = (
    Field("n", int, "rows"), Field("dim", int, "feature dimension"),
    Field("mmd2", float, "MMD² at the median bandwidth (+ p_value, bandwidth, n_permutations)"),
    Field("p_value", float, "permutation p-value"),
    Field("mmd2_multi", dict, 'str(multiplier) -> float, "sum", "median_bandwidth"'),
    Field("ci", list, "[lo, hi] subset CI (+ cka, cka_debiased on pooled rows)"),
)


def schema_doc() -> str:
    """The field tables as text (the documentation of metrics.json)."""
    blocks = [("metrics.json", TOP_FIELDS), ("runs.<init>", RUN_FIELDS), ("alignment entry", ENTRY_FIELDS)]
    lines = []
    for title, fields in blocks:
        lines.append(f"{title}::\n")
        lines += [f"    {f.name:<16} {f.type.__name__:<5} {f.doc}" for f in fields]
        lines.append("")
    return "\n".join(lines)


__doc__ = f"{__doc__}\n{schema_doc()}"


def _typed(value: Any, typ: type) -> bool:
    if typ is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if typ is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, typ)


def _check_fields(d: Any, fields: dict[str, type] | tuple[Field, ...], where: str) -> None:
    if not isinstance(d, dict):
        raise ValueError(f"metrics.json: {where} must be a dict, got {type(d).__name__}")
    table = {f.name: f.type for f in fields} if isinstance(fields, tuple) else fields
    for key, typ in table.items():
        if key not in d:
            raise ValueError(f"metrics.json: missing field {where}.{key}")
        if not _typed(d[key], typ):
            raise ValueError(f"metrics.json: field {where}.{key} must be {typ.__name__}, got {type(d[key]).__name__}")


def validate_metrics(d: dict) -> None:
    """Check a metrics dict against the field tables.

    Raises:
        ValueError: naming the first missing or mistyped field, or a wrong ``schema_version``.
    """
    _check_fields(d, TOP_FIELDS, "")
    if d["schema_version"] != SCHEMA_VERSION:
        raise ValueError(f"metrics.json: schema_version {d['schema_version']} != {SCHEMA_VERSION}")
    if d["objective"] not in OBJECTIVE_KINDS:
        raise ValueError(f"metrics.json: objective {d['objective']!r} not in {list(OBJECTIVE_KINDS)}")
    _check_fields(d["task_spec"], {"kind": str, "primary_metric": str, "higher_is_better": bool}, "task_spec")
    for init in INIT_NAMES:
        if init not in d["runs"]:
            raise ValueError(f"metrics.json: missing field runs.{init}")
        run = d["runs"][init]
        _check_fields(run, RUN_FIELDS, f"runs.{init}")
        for i, row in enumerate(run["curve"]):
            for key in CURVE_KEYS:
                if not isinstance(row, dict) or key not in row:
                    raise ValueError(f"metrics.json: missing field runs.{init}.curve[{i}].{key}")
        for metric, value in run["test"].items():
            if not _typed(value, float):
                raise ValueError(f"metrics.json: field runs.{init}.test.{metric} must be float")
    for key in ("vs_scratch", "vs_linear_probe"):
        _check_fields(d["rpg"], {key: dict}, "rpg")
    if "pretrained" not in d["alignment"]:
        raise ValueError("metrics.json: missing field alignment.pretrained")
    for init, block in d["alignment"].items():
        _check_fields(block, {"pooled": dict, "tokens": dict}, f"alignment.{init}")
        for kind in ("pooled", "tokens"):
            for layer, entry in block[kind].items():
                _check_fields(entry, ENTRY_FIELDS, f"alignment.{init}.{kind}.{layer}")
    _check_fields(d["transferability"], {"target": str, "regression": bool, "logme": float,
                                         "linear_probe": dict}, "transferability")
    _check_fields(d["provenance"], {"software": dict, "hardware": dict, "git_commit": str, "timings": dict},
                  "provenance")


def load_metrics(path: str | Path) -> dict:
    """Read and validate a ``metrics.json`` (a file or the folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.json"
    d = json.loads(path.read_text())
    validate_metrics(d)
    return d


def jsonable(obj: Any) -> Any:
    """Convert NumPy scalars/arrays and tuples to JSON types, keeping NaN as float."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return obj


def build_metrics(**fields: Any) -> dict:
    """The metrics dict from exactly the :data:`TOP_FIELDS` (``schema_version`` is filled in), in file order,
    converted to JSON types and validated.

    Raises:
        ValueError: a missing or unknown field (named), or a field that fails :func:`validate_metrics`.
    """
    fields = {"schema_version": SCHEMA_VERSION, **fields}
    names = [f.name for f in TOP_FIELDS]
    missing, unknown = [n for n in names if n not in fields], sorted(set(fields) - set(names))
    if missing or unknown:
        raise ValueError(f"build_metrics: missing fields {missing}, unknown fields {unknown}")
    metrics = jsonable({n: fields[n] for n in names})
    validate_metrics(metrics)
    return metrics
