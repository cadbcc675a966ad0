"""One study point, (task, model, seed) end to end -> ``metrics.json`` (STUDY §4-§5).

:func:`run_point` = :func:`resume` (settings of the point; a finished point whose ``settings`` match is
returned without work) -> :func:`compute` (one untimed pass that warms the data caches for every run alike,
three fine-tunings, the task kind's trivial baselines, alignment and transferability measurements)
-> :func:`assemble` (examples.npz and the strict-JSON metrics dict of :mod:`transferlimits.study.schema`,
written atomically: outcome vs the baselines, RPG validity, normalised gain, lr groups, convergence: steps,
seconds and epochs to 90 / 95 % from the common start, interpolated between evaluations). The schema is
documented in :mod:`transferlimits.study.schema`.
"""

from __future__ import annotations

import copy
import io
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from transferlimits import paths
from transferlimits.config import Profile, get_profile
from transferlimits.metrics.convergence import convergence_table, curve_of
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
from transferlimits.study.calibration_point import (calibration_test_set, point_calibration, record_calibration,
                                                    write_features)
from transferlimits.study.feature_memo import FeatureMemo
from transferlimits.study.encoder_sources import encoder_source
from transferlimits.study.measure import measure_alignment, transferability
from transferlimits.study.resume import PointKey, point_settings, resume
from transferlimits.study.schema import build_metrics

__all__ = ["PointKey", "PointFiles", "Collaborators", "PointResult", "point_dir", "resume", "compute", "assemble",
           "run_point", "pair_collaborators"]


def point_dir(profile: str, task: str, model: str, seed: int, objective: str = "native") -> Path:
    """The results folder of a point (:func:`transferlimits.paths.run_dir`, named by ``paths.point_name``)."""
    return paths.run_dir(profile, task, model, seed, objective)


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
    calibration: Any = None  # study.calibration_point.PointCalibration (ceiling, features.npz, weight change)


@dataclass(frozen=True)
class PointFiles:
    """Where a point reads and writes (None = the profile's default).

    Attributes:
        out_dir: its results folder (default :meth:`PointKey.folder`).
        pretrained: the pre-trained ``encoder.pt`` or released weights (default the profile's pre-training of the
            point's objective, ``paths.pretrain_dir``).
        reuse_scratch_from: a finished point's metrics.json whose scratch run is reused (the swapped control shares
            the native point's scratch baseline).
    """

    out_dir: Path | None = None
    pretrained: Path | None = None
    reuse_scratch_from: Path | None = None


@dataclass(frozen=True)
class Collaborators:
    """What a point calls to get its data and fine-tune (tests pass stand-ins).

    Attributes:
        load_data: ``(profile, task, model, seed) -> (spec, {split: dataset})``.
        finetune_all: the three fine-tunings (:func:`transferlimits.study.runs.finetune_all`).
        baselines_of: ``(spec, data, spacing) -> {name: {metric: value}}``, the task kind's trivial baselines
            (:func:`transferlimits.study.runs.baselines_of`).
    """

    load_data: Callable = study_runs.load_data
    finetune_all: Callable = study_runs.finetune_all
    baselines_of: Callable = study_runs.baselines_of


def pair_collaborators(load_data: Callable = study_runs.load_data,
                       baselines_of: Callable = study_runs.baselines_of) -> Collaborators:
    """The collaborators of one pair job's points: ``load_data`` memoised on (task, model, seed) and
    ``baselines_of`` on (test split, task, spacing).

    Every objective kind of a seed reads the same data, and every point's calibration set is the test split of
    one data seed (:mod:`.calibration_point`). A view is a pure function of (case, task, seed) and training
    augments copies of collated batches, so sharing the datasets (and their warm caches) across the points of a
    job changes no number, only time: on the ``cpu`` profile each distortion-correction point spent ~30 s
    re-synthesising its EPI fields.
    """
    loaded: dict[tuple[str, str, int], Any] = {}
    scored: list[tuple[Any, str, Any, dict]] = []  # (test split, task, spacing, baselines)

    def load_once(profile: Profile, task: str, model: str, seed: int):
        key = (task, model, int(seed))
        if key not in loaded:
            loaded[key] = load_data(profile, task, model, seed)
        return loaded[key]

    def baselines_once(spec: Any, data: dict[str, Any], spacing: Any = None) -> dict:
        """The baselines of one (test split, task, spacing) once per job: every objective kind of a seed shares
        them (with MONAI's SSIM they were ~14 s of each ProViCNet restoration point)."""
        for test, task, sp, out in scored:
            if test is data["test"] and task == spec.name and sp == spacing:
                return copy.deepcopy(out)
        out = baselines_of(spec, data, spacing)
        scored.append((data["test"], spec.name, spacing, out))
        return copy.deepcopy(out)

    return Collaborators(load_data=load_once, baselines_of=baselines_once)


def compute(key: PointKey, prof: Profile, files: PointFiles, dev: torch.device, progress: bool,
            collaborators: Collaborators) -> PointResult:
    """Fine-tune the three inits and measure baselines, alignment (pre/scratch vs fine-tuned, with the calibration's
    ceiling, weight changes and features: :mod:`.calibration_point`) and transferability."""
    spec, data = collaborators.load_data(prof, key.task, key.model, key.seed)
    pre_encoder, scratch_encoder = study_runs.load_encoders(prof, key.model, files.pretrained, key.seed, dev)
    warmup_s = study_runs.warm_caches(data)  # untimed by the runs: both start with the same warm cache
    encoders = {"pretrained": pre_encoder, "scratch": scratch_encoder}
    runs, results, timings = collaborators.finetune_all(spec, key, encoders, data, prof, dev, progress,
                                                        files.reuse_scratch_from,
                                                        probe=key.objective in paths.PROBED_KINDS)
    t1 = time.perf_counter()
    baselines = collaborators.baselines_of(spec, data, tuple(float(v) for v in prof.grid.spacing))
    # alignment and calibration read one image set for every seed (the calibration set), each encoder once
    cal_set, memo = calibration_test_set(collaborators.load_data, prof, key.task, key.model, key.seed, data), \
        FeatureMemo(dev)
    alignment = {"pretrained": measure_alignment(pre_encoder, results["pretrained"].model.encoder, cal_set,
                                                 prof, dev, key.seed, memo)}
    if "scratch" in results:
        alignment["scratch"] = measure_alignment(scratch_encoder, results["scratch"].model.encoder, cal_set,
                                                 prof, dev, key.seed, memo)
    calib = point_calibration(encoders, results, cal_set, tuple(prof.measure.bandwidth_multipliers), dev, key.seed,
                              memo)
    record_calibration(alignment, calib)
    trans = transferability(pre_encoder, data["train"], spec, prof, dev, key.seed)
    return PointResult(spec, data, runs, results, alignment, trans, timings, time.perf_counter() - t1, baselines,
                       warmup_s, calib)


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


def _n_cases(point: PointResult, prof: Profile, undefined: dict[str, str]) -> dict[str, int | None]:
    """Cases per split; ``real`` null (reason in ``undefined``) when a restoration task's real exams were left out."""
    n_cases: dict[str, int | None] = {k: len(v) for k, v in point.data.items()}
    skipped = None if point.spec.uses_labels or "real" in point.data else study_runs.real_skipped(prof)
    if skipped:
        n_cases["real"] = None
        undefined["n_cases.real"] = skipped
    return n_cases


def assemble(out: Path, point: PointResult, prof: Profile, settings: dict[str, Any], dev: torch.device,
             t0: float) -> dict:
    """Write ``examples.npz`` and ``metrics.json`` (atomically) from a computed point; returns the metrics."""
    spec = point.spec
    runs = {init: {k: v for k, v in rec.items() if k != "lr_groups"} for init, rec in point.runs.items()}
    lr_groups = {init: rec.get("lr_groups", []) for init, rec in point.runs.items()}
    rpg = study_runs.rpg_table(runs, spec)
    result = study_runs.outcome(runs, spec, point.baselines)
    undefined = result.pop("undefined")
    if point.transferability.get("logme") is None and point.transferability.get("logme_note"):
        undefined["transferability.logme"] = point.transferability["logme_note"]
    for init, rec in runs.items():
        if rec["curve"] and rec["curve"][0]["epoch"] == 0:
            undefined[f"runs.{init}.curve.0.train_loss"] = "epoch 0: evaluated before any update"
        for i, row in enumerate(rec["curve"]):
            if row.get("val_metric") is None and row.get("val_metric_subset") is not None:
                for key in ("val_metric", "val_loss"):
                    undefined[f"runs.{init}.curve.{i}.{key}"] = ("intermediate evaluation: scored on the fixed "
                                                                 "validation subset only (val_metric_subset)")
    # time to 90 / 95 % from the scratch run's step-0 value, interpolated between evaluations (STUDY §5.2)
    conv, conv_undefined = convergence_table(curve_of(runs["pretrained"]["curve"]),
                                             curve_of(runs["scratch"]["curve"]), prof.measure.fractions,
                                             bool(spec.higher_is_better))
    undefined.update({f"convergence.{path}": reason for path, reason in conv_undefined.items()})
    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, **_examples(point.results))
    atomic_write_bytes(out / "examples.npz", buf.getvalue())
    write_features(out, point.calibration)
    metrics = build_metrics(
        task=settings["task"], model=settings["model"], seed=int(settings["seed"]), profile=prof.name,
        objective=settings["objective"], objective_name=settings["objective_name"], settings=settings,
        task_spec={"kind": spec.kind, "primary_metric": spec.primary_metric,
                   "higher_is_better": bool(spec.higher_is_better), "metrics": list(getattr(spec, "metrics", []))},
        n_cases=_n_cases(point, prof, undefined),
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


def run_point(key: PointKey, profile: Profile | str, files: PointFiles = PointFiles(),
              device: str | torch.device | None = None, progress: bool = True,
              collaborators: Collaborators = Collaborators()) -> dict:
    """Run one point and write its ``metrics.json`` (or return it when it is finished with the same settings).

    Args:
        key: the point: task (a registered task), model (a registered model), seed, objective kind
            (``"native"`` or ``"swapped"``, the H6 control).
        profile: a :class:`Profile` or its name.
        files: its output folder, encoder and reused scratch run (:class:`PointFiles`; defaults from the profile).
        device: torch device or spec (default ``profile.device``).
        progress: tqdm bars (default True).
        collaborators: data loading and fine-tuning (:class:`Collaborators`; tests pass stand-in data).

    Raises:
        ValueError: unknown model or objective kind.
        FileNotFoundError: the pre-trained encoder is missing (the message says how to make it).
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    get_model(key.model)  # ValueError for an unknown model, listing the registered ones
    source = encoder_source(key.objective)
    obj_name = source.objective_name(key.model)
    out = Path(files.out_dir) if files.out_dir is not None else key.folder(prof.name)
    pretrained = Path(files.pretrained if files.pretrained is not None else source.encoder_file(
        prof, key.model, key.task, resolve_device(device if device is not None else prof.device), progress))
    reuse = None if files.reuse_scratch_from is None else Path(files.reuse_scratch_from)
    settings = point_settings(key, prof, obj_name, pretrained, reuse)
    old = resume(out, settings)
    if old is not None:
        return old
    t0 = time.perf_counter()
    dev = resolve_device(device if device is not None else prof.device)
    set_threads(prof.num_threads)
    point = compute(key, prof, PointFiles(out, pretrained, reuse), dev, progress, collaborators)
    return assemble(out, point, prof, settings, dev, t0)
