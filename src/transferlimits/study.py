"""One study point, (task, model, seed) end to end -> ``metrics.json`` (STUDY §4-§5).

:func:`run_point` fine-tunes the pretrained, the scratch and the linear-probe variant of one encoder on one
task, measures transfer (RPG, convergence, MMD², CKA, LogME) and writes ``metrics.json`` atomically.
A finished point whose ``settings`` match is returned without work (re-runs resume).

metrics.json schema (``SCHEMA_VERSION = 1``; NaN is written as ``NaN``)::

    schema_version   int, 1
    task, model      str; seed int; profile str (the profile name)
    objective        "native" | "swapped"; objective_name str ("fcmae", "contrastive", "mae")
    settings         dict: what defines the run (resume key): task, model, seed, objective(_name),
                     pretrained (path), pretrained_sha256, width, reuse_scratch_from, profile
                     (config.profile_to_dict)
    task_spec        dict: kind, primary_metric, higher_is_better (bool), metrics (list of str)
    n_cases          dict split -> int (train, val, test, + real for restoration tasks)
    runs             dict init -> run, init in pretrained | scratch | linear_probe; a run holds
                       test        dict metric -> float (aggregated over the test cases)
                       per_case    list of dicts (case_id + per-case scores; classification: label, probs)
                       curve       list of dicts: epoch, train_loss, val_loss, val_metric, lr, wall_s, device_s
                                   (wall_s/device_s cumulative training seconds, validation included)
                       best_epoch int, best_val float, train_seconds float
                       extra       dict split -> dict metric -> float (e.g. "real": the 2 real exams)
                       reused_from str | null (scratch of the native run reused by a swapped control)
    rpg              dict: vs_scratch / vs_linear_probe -> dict metric -> float (percent; positive =
                     pretraining helped, sign flipped for lower-is-better via metrics.tasks.METRIC_DIRECTION)
    rpg_primary      float: RPG of the primary metric vs scratch
    convergence      metrics.transfer.convergence_summary of the validation curves, pretrained vs scratch
                     (keys str(fraction) -> epochs_/seconds_ pretrained/scratch/ratio)
    alignment        dict init -> {"pooled": {layer: entry}, "tokens": {layer: entry}} for init in
                     pretrained (pretrained encoder vs its fine-tuned copy) and scratch (random init vs its
                     fine-tuned copy; a reference; absent when the scratch run was reused). ``pooled`` has
                     one row per test image per layer (layer "embedding" = the encoder's pooled output);
                     ``tokens`` samples token/voxel-level rows. entry = {n, dim, mmd2 (median bandwidth),
                     p_value, bandwidth, n_permutations, mmd2_multi {str(multiplier) -> float, "sum",
                     "median_bandwidth"}, ci [lo, hi] (subset CI), cka, cka_debiased (pooled only)}
    transferability  dict: target (str, what LogME scored), regression (bool), n (int), logme float,
                     linear_probe dict (accuracy/auroc or r2, cv) -- on FROZEN pretrained features
                     ("embedding") of the train split (pre-hoc, H5). Per-case targets: classification the
                     class label; segmentation csPCa present (target mask non-empty); restoration the mean
                     target intensity inside the body mask; scalar_regression the target.
    provenance       dict: software (dict), hardware (dict), git_commit str, created (ISO UTC), timings
                     {total_s, finetune_s {init -> s}, measure_s}
    examples         str: file name of the examples npz next to metrics.json: dense tasks ``input``,
                     ``target``, ``pred_<init>`` [k, H, W] on one axial slice per case (segmentation: the
                     largest-lesion slice, else the mid slice; provicnet input at slice size), ``case_ids``;
                     classification ``probs_<init>`` [n, 4], ``labels`` [n], ``case_ids``
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transferlimits import paths
from transferlimits.config import NATIVE_OBJECTIVE, SWAPPED_OBJECTIVE, Profile, get_profile, profile_to_dict
from transferlimits.runtime import (
    atomic_write_bytes,
    atomic_write_json,
    git_commit,
    hardware_info,
    resolve_device,
    set_threads,
    software_versions,
)

__all__ = ["SCHEMA_VERSION", "INIT_NAMES", "run_point", "validate_metrics", "load_metrics", "point_dir"]

SCHEMA_VERSION = 1
INIT_NAMES = ("pretrained", "scratch", "linear_probe")
_OBJECTIVE_KINDS = ("native", "swapped")

_TOP = {
    "schema_version": int, "task": str, "model": str, "seed": int, "profile": str, "objective": str,
    "objective_name": str, "settings": dict, "task_spec": dict, "n_cases": dict, "runs": dict, "rpg": dict,
    "rpg_primary": float, "convergence": dict, "alignment": dict, "transferability": dict, "provenance": dict,
    "examples": str,
}
_RUN = {"test": dict, "per_case": list, "curve": list, "best_epoch": int, "best_val": float,
        "train_seconds": float, "extra": dict}
_CURVE_KEYS = ("epoch", "train_loss", "val_loss", "val_metric", "lr", "wall_s", "device_s")
_ENTRY = {"n": int, "dim": int, "mmd2": float, "p_value": float, "mmd2_multi": dict, "ci": list}


def _typed(value: Any, typ: type) -> bool:
    if typ is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if typ is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, typ)


def _check_fields(d: Any, fields: dict[str, type], where: str) -> None:
    if not isinstance(d, dict):
        raise ValueError(f"metrics.json: {where} must be a dict, got {type(d).__name__}")
    for key, typ in fields.items():
        if key not in d:
            raise ValueError(f"metrics.json: missing field {where}.{key}")
        if not _typed(d[key], typ):
            raise ValueError(f"metrics.json: field {where}.{key} must be {typ.__name__}, got {type(d[key]).__name__}")


def validate_metrics(d: dict) -> None:
    """Check a metrics dict against the schema (module docstring).

    Raises:
        ValueError: naming the first missing or mistyped field, or a wrong ``schema_version``.
    """
    _check_fields(d, _TOP, "")
    if d["schema_version"] != SCHEMA_VERSION:
        raise ValueError(f"metrics.json: schema_version {d['schema_version']} != {SCHEMA_VERSION}")
    if d["objective"] not in _OBJECTIVE_KINDS:
        raise ValueError(f"metrics.json: objective {d['objective']!r} not in {list(_OBJECTIVE_KINDS)}")
    _check_fields(d["task_spec"], {"kind": str, "primary_metric": str, "higher_is_better": bool}, "task_spec")
    for init in INIT_NAMES:
        if init not in d["runs"]:
            raise ValueError(f"metrics.json: missing field runs.{init}")
        run = d["runs"][init]
        _check_fields(run, _RUN, f"runs.{init}")
        for i, row in enumerate(run["curve"]):
            for key in _CURVE_KEYS:
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
                _check_fields(entry, _ENTRY, f"alignment.{init}.{kind}.{layer}")
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


def point_dir(profile: str, task: str, model: str, seed: int, objective: str = "native") -> Path:
    """``paths.run_dir`` of a point; the swapped control lives in the sibling ``<run_dir>__swapped``."""
    base = paths.run_dir(profile, task, model, seed)
    return base if objective == "native" else base.with_name(base.name + "__swapped")


def _sha256(path: Path) -> str | None:
    """SHA-256 of a file (None when missing): a re-trained encoder invalidates finished points."""
    import hashlib

    if not path.is_file():
        return None
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def run_point(
    task: str,
    model: str,
    profile: Profile | str,
    seed: int = 0,
    out_dir: str | Path | None = None,
    pretrained: str | Path | None = None,
    objective: str = "native",
    device: str | torch.device | None = None,
    progress: bool = True,
    reuse_scratch_from: str | Path | None = None,
    width: int | None = None,
) -> dict:
    """Run one (task, model, seed) point and write ``metrics.json``; returns the metrics dict.

    Args:
        task: a task name (``config.TASKS`` / the task registry).
        model: ``"profound"`` or ``"provicnet"``.
        profile: a :class:`Profile` or its name.
        seed: fine-tuning seed (default 0).
        out_dir: output folder (default :func:`point_dir`).
        pretrained: path to ``encoder.pt``; default ``paths.pretrain_dir(profile, model, objective)``.
        objective: ``"native"`` or ``"swapped"`` (the H6 control) (default ``"native"``).
        device: torch device or spec (default ``profile.device``).
        progress: tqdm bars (default True).
        reuse_scratch_from: a finished point's folder/metrics.json whose scratch run is reused (the swapped
            control shares the native run's scratch baseline). Default None.
        width: decoder width of dense heads; default ``profile.finetune.decoder_width`` (None = published).

    Raises:
        ValueError: unknown model or objective kind.
        FileNotFoundError: the pre-trained encoder is missing (the message says how to make it).
    """
    from transferlimits.study_measure import measure_alignment, transferability
    from transferlimits.study_runs import finetune_all, load_data, load_encoders, rpg_table

    prof = get_profile(profile) if isinstance(profile, str) else profile
    if model not in NATIVE_OBJECTIVE:
        raise ValueError(f"unknown model {model!r}; valid: {sorted(NATIVE_OBJECTIVE)}")
    if objective not in _OBJECTIVE_KINDS:
        raise ValueError(f"unknown objective {objective!r}; valid: {list(_OBJECTIVE_KINDS)}")
    obj_name = (NATIVE_OBJECTIVE if objective == "native" else SWAPPED_OBJECTIVE)[model]
    out = Path(out_dir) if out_dir is not None else point_dir(prof.name, task, model, seed, objective)
    if pretrained is None:
        pretrained = paths.pretrain_dir(prof.name, model, obj_name) / "encoder.pt"
    pretrained = Path(pretrained)
    if width is None:
        width = prof.finetune.decoder_width
    settings = _jsonable({"task": task, "model": model, "seed": seed, "objective": objective,
                          "objective_name": obj_name, "pretrained": str(pretrained),
                          "pretrained_sha256": _sha256(pretrained), "width": width,
                          "reuse_scratch_from": None if reuse_scratch_from is None else str(reuse_scratch_from),
                          "profile": profile_to_dict(prof)})
    done = out / "metrics.json"
    if done.exists():
        try:
            old = load_metrics(done)
            if old["settings"] == settings:
                return old
        except (ValueError, json.JSONDecodeError):
            pass
    t0 = time.perf_counter()
    dev = resolve_device(device if device is not None else prof.device)
    set_threads(prof.num_threads)
    spec, data = load_data(prof, task, model, seed)
    pre_encoder, scratch_encoder = load_encoders(prof, model, pretrained, seed, dev)
    runs, results, timings = finetune_all(spec, model, pre_encoder, scratch_encoder, data, prof, dev, seed, progress,
                                          width, reuse_scratch_from)
    t1 = time.perf_counter()
    alignment = {"pretrained": measure_alignment(pre_encoder, results["pretrained"].model.encoder, data["test"],
                                                 prof, dev, seed)}
    if "scratch" in results:
        alignment["scratch"] = measure_alignment(scratch_encoder, results["scratch"].model.encoder, data["test"],
                                                 prof, dev, seed)
    trans = transferability(pre_encoder, data["train"], spec, prof, dev, seed)
    t2 = time.perf_counter()
    rpg = rpg_table(runs, spec)
    from transferlimits.metrics.transfer import convergence_summary

    pre_c, scr_c = runs["pretrained"]["curve"], runs["scratch"]["curve"]
    conv = convergence_summary([r["val_metric"] for r in pre_c], [r["val_metric"] for r in scr_c],
                               [r["wall_s"] for r in pre_c], [r["wall_s"] for r in scr_c],
                               fractions=prof.measure.fractions, higher_is_better=bool(spec.higher_is_better))
    examples = {"input": None}
    for init, res in results.items():
        for key, arr in res.examples.items():
            if key in ("input", "target", "labels", "case_ids"):
                examples[key] = arr
            else:
                examples[f"{key}_{init}"] = arr
    examples = {k: np.asarray(v) for k, v in examples.items() if v is not None}
    out.mkdir(parents=True, exist_ok=True)
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **examples)
    atomic_write_bytes(out / "examples.npz", buf.getvalue())
    metrics = {
        "schema_version": SCHEMA_VERSION, "task": task, "model": model, "seed": int(seed), "profile": prof.name,
        "objective": objective, "objective_name": obj_name, "settings": settings,
        "task_spec": {"kind": spec.kind, "primary_metric": spec.primary_metric,
                      "higher_is_better": bool(spec.higher_is_better), "metrics": list(getattr(spec, "metrics", []))},
        "n_cases": {k: len(v) for k, v in data.items()},
        "runs": runs, "rpg": rpg, "rpg_primary": float(rpg["vs_scratch"].get(spec.primary_metric, float("nan"))),
        "convergence": conv, "alignment": alignment, "transferability": trans,
        "provenance": {"software": software_versions(), "hardware": hardware_info(dev), "git_commit": git_commit(),
                       "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       "timings": {"total_s": time.perf_counter() - t0, "finetune_s": timings,
                                   "measure_s": t2 - t1}},
        "examples": "examples.npz",
    }
    metrics = _jsonable_floats(metrics)
    validate_metrics(metrics)
    atomic_write_json(done, metrics)
    return metrics


def _jsonable_floats(obj: Any) -> Any:
    """Convert NumPy scalars/arrays and tuples to JSON types, keeping NaN as float."""
    if isinstance(obj, dict):
        return {str(k): _jsonable_floats(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable_floats(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable_floats(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return obj
