"""One study point, (task, model, seed) end to end -> ``metrics.json`` (STUDY §4-§5).

:func:`run_point` = :func:`resume` (settings of the point; a finished point whose ``settings`` match is
returned without work) -> :func:`compute` (one untimed pass that warms the data caches for every run alike,
three fine-tunings, the task kind's trivial baselines, alignment and transferability measurements)
-> :func:`assemble` (examples.npz and the strict-JSON metrics dict of :mod:`transferlimits.study.schema`,
written atomically: outcome vs the baselines, RPG validity, normalised gain, lr groups, convergence from
epoch 0). The schema is documented in :mod:`transferlimits.study.schema`.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from transferlimits import paths
from transferlimits.config import Profile, get_profile, profile_to_dict
from transferlimits.metrics.transfer import convergence_summary
from transferlimits.models.registry import get_model
from transferlimits.runtime import (
    atomic_write_bytes,
    atomic_write_json,
    git_commit,
    hardware_info,
    resolve_device,
    set_threads,
    software_versions,
)
from transferlimits.study import runs as study_runs
from transferlimits.study.measure import measure_alignment, transferability
from transferlimits.study.schema import OBJECTIVE_KINDS, build_metrics, load_metrics

__all__ = ["PointResult", "point_dir", "resume", "compute", "assemble", "run_point"]


def point_dir(profile: str, task: str, model: str, seed: int, objective: str = "native") -> Path:
    """The results folder of a point (:func:`transferlimits.paths.run_dir`, named by ``paths.point_name``)."""
    return paths.run_dir(profile, task, model, seed, objective)


def _sha256(path: Path) -> str | None:
    """SHA-256 of a file (None when missing): a re-trained encoder invalidates finished points."""
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: the package folders whose code decides a point's numbers (presentation layers excluded: a change in figures/,
#: runner/ or reporting/ re-renders a page but never re-computes a finished point)
COMPUTE_PACKAGES = ("data", "models", "training", "tasks", "metrics", "study")


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """SHA-256 over the source of every module that computes a point (top-level modules and
    :data:`COMPUTE_PACKAGES`): part of a point's settings, so a finished point is re-computed after a code
    change and resumed otherwise."""
    pkg = Path(__file__).resolve().parents[1]
    files = sorted(pkg.glob("*.py")) + sorted(f for d in COMPUTE_PACKAGES for f in (pkg / d).rglob("*.py"))
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(pkg).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def _portable(path: str | Path) -> str:
    """A path in a point's settings: relative to the results folder or the repository when inside one (a results
    tree moved to another checkout resumes; the file's hash, beside it, says what it holds)."""
    path = Path(path).resolve()
    for root in (paths.results_dir("").resolve(), paths.ROOT.resolve()):
        if path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return str(path)


def resume(out: Path, settings: dict[str, Any]) -> dict | None:
    """The finished metrics in ``out`` when their ``settings`` equal ``settings`` (else None)."""
    done = out / "metrics.json"
    if not done.exists():
        return None
    try:
        old = load_metrics(done)
    except (ValueError, KeyError, json.JSONDecodeError):  # unreadable, non-strict or an older schema: redo
        return None
    return old if old["settings"] == settings else None


@dataclass
class PointResult:
    """What :func:`compute` measured: spec, data, run records/results, baselines, alignment, transferability,
    seconds (fine-tuning per init, measurements, cache warm-up)."""

    spec: Any
    data: dict[str, Any]
    runs: dict[str, dict]
    results: dict[str, Any]
    alignment: dict[str, Any]
    transferability: dict[str, Any]
    finetune_s: dict[str, float]
    measure_s: float
    baselines: dict[str, dict[str, float]]
    warmup_s: float = 0.0


def compute(task: str, model: str, prof: Profile, seed: int, pretrained: Path, dev: torch.device, progress: bool,
            reuse_scratch_from: str | Path | None, load_data: Callable, finetune_all: Callable) -> PointResult:
    """Fine-tune the three inits and measure baselines, alignment (pre/scratch vs fine-tuned) and transferability."""
    spec, data = load_data(prof, task, model, seed)
    pre_encoder, scratch_encoder = study_runs.load_encoders(prof, model, pretrained, seed, dev)
    warmup_s = study_runs.warm_caches(data)  # untimed by the runs: both start with the same warm cache
    runs, results, timings = finetune_all(spec, model, pre_encoder, scratch_encoder, data, prof, dev, seed, progress,
                                          reuse_scratch_from)
    t1 = time.perf_counter()
    baselines = study_runs.baselines_of(spec, data, tuple(float(v) for v in prof.grid.spacing))
    alignment = {"pretrained": measure_alignment(pre_encoder, results["pretrained"].model.encoder, data["test"],
                                                 prof, dev, seed)}
    if "scratch" in results:
        alignment["scratch"] = measure_alignment(scratch_encoder, results["scratch"].model.encoder, data["test"],
                                                 prof, dev, seed)
    trans = transferability(pre_encoder, data["train"], spec, prof, dev, seed)
    return PointResult(spec, data, runs, results, alignment, trans, timings, time.perf_counter() - t1, baselines,
                       warmup_s)


def _examples(results: dict[str, Any]) -> dict[str, np.ndarray]:
    """The examples of every init in one dict: shared ``input``/``target``/``labels``/``case_ids``, per-init keys."""
    examples: dict[str, Any] = {"input": None}
    for init, res in results.items():
        for key, arr in res.examples.items():
            if key in ("input", "target", "labels", "case_ids"):
                examples[key] = arr
            else:
                examples[f"{key}_{init}"] = arr
    return {k: np.asarray(v) for k, v in examples.items() if v is not None}


def assemble(out: Path, point: PointResult, prof: Profile, settings: dict[str, Any], dev: torch.device,
             t0: float) -> dict:
    """Write ``examples.npz`` and ``metrics.json`` (atomically) from a computed point; returns the metrics."""
    spec = point.spec
    runs = {init: {k: v for k, v in rec.items() if k != "lr_groups"} for init, rec in point.runs.items()}
    lr_groups = {init: rec.get("lr_groups", []) for init, rec in point.runs.items()}
    rpg = study_runs.rpg_table(runs, spec)
    result = study_runs.outcome(runs, spec, point.baselines)
    undefined = result.pop("undefined")
    for init, rec in runs.items():
        if rec["curve"] and rec["curve"][0]["epoch"] == 0:
            undefined[f"runs.{init}.curve.0.train_loss"] = "epoch 0: evaluated before any update"
    nan = float("nan")
    pre_c, scr_c = runs["pretrained"]["curve"], runs["scratch"]["curve"]
    conv = convergence_summary([nan if r["val_metric"] is None else r["val_metric"] for r in pre_c],
                               [nan if r["val_metric"] is None else r["val_metric"] for r in scr_c],
                               [r["wall_s"] for r in pre_c], [r["wall_s"] for r in scr_c],
                               fractions=prof.measure.fractions, higher_is_better=bool(spec.higher_is_better),
                               epoch0=True)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, **_examples(point.results))
    atomic_write_bytes(out / "examples.npz", buf.getvalue())
    metrics = build_metrics(
        task=settings["task"], model=settings["model"], seed=int(settings["seed"]), profile=prof.name,
        objective=settings["objective"], objective_name=settings["objective_name"], settings=settings,
        task_spec={"kind": spec.kind, "primary_metric": spec.primary_metric,
                   "higher_is_better": bool(spec.higher_is_better), "metrics": list(getattr(spec, "metrics", []))},
        n_cases={k: len(v) for k, v in point.data.items()},
        runs=runs, baselines=point.baselines, rpg=rpg, lr_groups=lr_groups, **result,
        convergence=conv, alignment=point.alignment, transferability=point.transferability,
        provenance={"software": software_versions(), "hardware": hardware_info(dev), "git_commit": git_commit(),
                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "timings": {"total_s": time.perf_counter() - t0, "finetune_s": point.finetune_s,
                                "measure_s": point.measure_s, "warmup_s": point.warmup_s}},
        examples="examples.npz", undefined=undefined,
    )
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


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
    load_data: Callable = study_runs.load_data,
    finetune_all: Callable = study_runs.finetune_all,
) -> dict:
    """Run one (task, model, seed) point and write ``metrics.json``; returns the metrics dict.

    Args:
        task: a task name (``config.TASKS`` / the task registry).
        model: a registered model name (``"profound"``, ``"provicnet"`` ...).
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
        load_data: ``(profile, task, model, seed) -> (spec, {split: dataset})``; default
            :func:`transferlimits.study.runs.load_data` (tests pass stand-in data).
        finetune_all: the three fine-tunings; default :func:`transferlimits.study.runs.finetune_all`.

    Raises:
        ValueError: unknown model or objective kind.
        FileNotFoundError: the pre-trained encoder is missing (the message says how to make it).
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    adapter = get_model(model)  # ValueError for an unknown model, listing the registered ones
    if objective not in OBJECTIVE_KINDS:
        raise ValueError(f"unknown objective {objective!r}; valid: {list(OBJECTIVE_KINDS)}")
    obj_name = adapter.native_objective if objective == "native" else adapter.swapped_objective
    out = Path(out_dir) if out_dir is not None else point_dir(prof.name, task, model, seed, objective)
    if pretrained is None:
        pretrained = paths.pretrain_dir(prof.name, model, obj_name) / "encoder.pt"
    pretrained = Path(pretrained)
    if width is None:
        width = prof.finetune.decoder_width
    settings = json.loads(json.dumps(
        {"task": task, "model": model, "seed": seed, "objective": objective, "objective_name": obj_name,
         "pretrained": _portable(pretrained), "pretrained_sha256": _sha256(pretrained), "width": width,
         "reuse_scratch_from": None if reuse_scratch_from is None else _portable(reuse_scratch_from),
         "reuse_scratch_sha256": None if reuse_scratch_from is None else _sha256(Path(reuse_scratch_from)),
         "code_sha256": code_fingerprint(), "data_sha256": _sha256(paths.data_dir(prof.name) / "manifest.json"),
         "profile": profile_to_dict(prof)}, default=str))
    old = resume(out, settings)
    if old is not None:
        return old
    t0 = time.perf_counter()
    dev = resolve_device(device if device is not None else prof.device)
    set_threads(prof.num_threads)
    prof = replace(prof, finetune=replace(prof.finetune, decoder_width=width))
    point = compute(task, model, prof, seed, pretrained, dev, progress, reuse_scratch_from, load_data, finetune_all)
    return assemble(out, point, prof, settings, dev, t0)
