"""Data, encoders, the four fine-tuning runs and their outcome of one study point (for :mod:`.point`).

Runs: ``pretrained``, ``scratch``, ``linear_probe`` and ``ablated`` (the head on a zeroed encoder, STUDY §5.1; it
does not depend on the encoder's weights, so a control point reuses the native point's, as it reuses scratch).
Outcome (STUDY §5): the task kind's trivial baselines on the test split, whether each run beats the strongest
one (``learned``), RPG (raw for every metric; the primary one *defined* only where scratch beats the baseline,
:func:`transferlimits.metrics.transfer.rpg_status`), the bounded normalised gain and each run's
``encoder_share = (P - P_ablated) / (P - P_baseline)``.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from transferlimits import paths
from transferlimits.config import Profile
from transferlimits.data.cohort import open_cohort, task_dataset
from transferlimits.metrics.transfer import normalised_gain, rpg, rpg_status
from transferlimits.models.checkpoints_profound import check_finite_weights
from transferlimits.models.registry import encoder_for_profile, get_model
from transferlimits.study.resume import portable_path
from transferlimits.tasks import get_kind, get_task
from transferlimits.tasks.kinds.base import strongest_baseline
from transferlimits.training.finetune import FinetuneResult, finetune
from transferlimits.training.pretrain import load_pretrained_encoder

__all__ = ["load_cohort", "load_data", "load_encoders", "scratch_encoder", "finetune_all", "rpg_table", "run_record",
           "warm_caches", "baselines_of", "outcome", "encoder_share", "encoder_shares", "NG_FORMULA", "SHARED_RUNS"]

#: the normalised gain as text (metrics.json ``normalised_gain_formula``; metrics.transfer.normalised_gain).
NG_FORMULA = ("NG = s*(P_pre - P_ref) / (|P_pre - P_base| + |P_ref - P_base| + 1e-12), s = +1 if higher is better "
              "else -1; P_ref = scratch or linear probe, P_base = baseline_primary; in [-1, 1]")


def load_cohort(profile: Profile) -> Any:
    """The profile's cohort from disk; built only when missing or stale (see ``cohort.open_cohort``)."""
    return open_cohort(profile)


def real_skipped(profile: Profile) -> str | None:
    """Why the profile's cohort holds no real exams (its manifest's ``real_skipped``; None when it holds them)."""
    try:
        manifest = json.loads((paths.data_dir(profile.name) / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return manifest.get("real_skipped") if isinstance(manifest, dict) else None


def load_data(profile: Profile, task: str, model: str, seed: int) -> tuple[Any, dict[str, Any]]:
    """``(TaskSpec, {split: Dataset})`` with train/val/test, + ``real`` for label-free (restoration) tasks; the train
    split holds the task recipe's ``train_cases`` first cases where that is > 0 (a label budget)."""
    spec = get_task(task)
    cohort = load_cohort(profile)
    budget = profile.finetune_for(task).train_cases
    data = {split: task_dataset(cohort, task, split, model, seed, max_cases=budget if split == "train" else 0)
            for split in ("train", "val", "test")}
    if not spec.uses_labels:
        real = task_dataset(cohort, task, "real", model, seed)
        if len(real):
            data["real"] = real
    return spec, data


def scratch_encoder(profile: Profile, model: str, seed: int) -> nn.Module:
    """A freshly initialised encoder of the profile's size; the same seed gives identical weights."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return encoder_for_profile(model, profile)
    finally:
        torch.random.set_rng_state(state)


def load_encoders(profile: Profile, model: str, pretrained: Path, seed: int,
                  device: torch.device) -> tuple[nn.Module, nn.Module]:
    """``(pretrained encoder, scratch encoder)``, both in eval mode on ``device``.

    Raises:
        FileNotFoundError: ``pretrained`` does not exist (the message names the pre-training command), or is
            a folder without an ``encoder.pt``.
        ValueError: the checkpoint holds another model than ``model``; CheckpointError (a ValueError): a
            blocked pickle, mismatched keys/shapes, or NaN/Inf weights (each naming the file and the key).
    """
    if Path(pretrained).is_dir() and not (Path(pretrained) / "encoder.pt").is_file():
        inside = sorted(p.name for p in Path(pretrained).iterdir() if p.suffix in (".pt", ".pth"))
        raise FileNotFoundError(f"{pretrained}: is a folder without an encoder.pt, not a weights file; pass the "
                                f"file itself{f' (found here: {inside[:5]})' if inside else ''}")
    if not Path(pretrained).exists():
        raise FileNotFoundError(
            f"no pre-trained encoder at {pretrained}; run `python -m transferlimits pretrain --model {model} "
            f"--profile {profile.name}` first (add --objective for the swapped control; native: "
            f"{get_model(model).native_objective})"
        )
    if _is_own_encoder_file(pretrained):
        enc, meta = load_pretrained_encoder(pretrained, device)
        check_finite_weights(enc.state_dict(), str(pretrained))  # diverged pre-training: fail here, not in sklearn
    else:  # released weights (ProFound-alpha, ProViCNet T2_best.pth ...): strict loaders in models/
        enc, meta = _load_released(profile, model, Path(pretrained)), {"model": model, "released": str(pretrained)}
        enc = enc.to(device)
    if meta.get("model", model) != model:
        raise ValueError(f"{pretrained} holds a {meta.get('model')!r} encoder, not {model!r}")
    return enc.eval(), scratch_encoder(profile, model, seed).to(device).eval()


def _is_own_encoder_file(path: Path) -> bool:
    """True for an ``encoder.pt`` written by :func:`transferlimits.training.pretrain.pretrain`."""
    path = Path(path)
    if path.is_dir():
        return True
    try:
        obj = torch.load(path, map_location="meta", weights_only=True)
    except Exception:  # pickled objects (ProFound) or foreign formats: not ours
        return False
    return isinstance(obj, dict) and "state_dict" in obj and "model" in obj and "size" in obj


def _load_released(profile: Profile, model: str, path: Path) -> nn.Module:
    """Released weights by path, strict key matching, through the model adapter (ProFound checkpoints pickle
    an argparse.Namespace: set ``TRANSFERLIMITS_ALLOW_PICKLE=1`` to opt in to reading it, only for files you
    trust)."""
    return get_model(model).load_released_for_profile(profile, path)


def run_record(res: FinetuneResult) -> dict[str, Any]:
    """The JSON record of one fine-tuning run (schema in :mod:`transferlimits.study.schema`)."""
    return {"test": res.test_scores, "per_case": res.per_case, "curve": res.curve,
            "best_epoch": float(res.best_epoch), "best_step": int(res.best_step), "best_val": float(res.best_val),
            "train_seconds": float(res.train_seconds), "extra": res.extra_scores, "reused_from": None,
            "lr_groups": list(res.lr_groups)}


def warm_caches(data: dict[str, Any]) -> float:
    """One untimed pass over every item of the train and val splits, so that a dataset's item cache is warm for
    every run alike (the seconds-based convergence of the first run is not charged for filling it).

    Returns:
        The seconds the pass took.
    """
    t0 = time.perf_counter()
    for split in ("train", "val"):
        ds = data.get(split)
        for i in range(len(ds) if ds is not None else 0):
            ds[i]
    return time.perf_counter() - t0


#: the runs a control point takes from the point whose scratch run it reuses (neither depends on its encoder)
SHARED_RUNS = ("scratch", "ablated")
#: why an encoder control's point has no linear-probe comparison (``paths.PROBED_KINDS``)
NO_PROBE = "no linear-probe run: an encoder control's point fine-tunes its encoder only (paths.PROBED_KINDS)"


def finetune_all(spec: Any, key: Any, encoders: dict[str, nn.Module], data: dict[str, Any], profile: Profile,
                 device: torch.device, progress: bool, reuse_scratch_from: str | Path | None = None,
                 probe: bool = True) -> tuple[dict[str, dict], dict[str, FinetuneResult], dict[str, float]]:
    """Fine-tune pretrained, scratch and ablated (unless reused) and linear_probe (where ``probe``) with one recipe
    (the task's, ``profile.finetune_for(spec.name)``).

    Args:
        spec: the TaskSpec. key: the point (its ``model`` and ``seed``; :class:`~transferlimits.study.resume.PointKey`).
        encoders: ``{"pretrained": encoder, "scratch": encoder}`` (the linear probe uses the pretrained one).
        data: ``{split: dataset}``. profile: the resolved profile. device, progress: as for ``finetune``.
        reuse_scratch_from: a finished point's metrics.json whose scratch and ablated records are reused (default
            None; an older file without an ablated record: the ablated run is trained here).
        probe: also train the frozen linear probe (default True; False for an encoder control's point,
            ``paths.PROBED_KINDS``).

    Returns:
        ``(records, results, seconds)`` keyed by init; a reused scratch run has a record but no result.
    """
    spacing = tuple(float(s) for s in profile.grid.spacing)
    recipe = profile.finetune_for(spec.name)
    records: dict[str, dict] = {}
    results: dict[str, FinetuneResult] = {}
    seconds: dict[str, float] = {}
    inits = {"pretrained": encoders["pretrained"], "scratch": encoders["scratch"],
             "linear_probe": encoders["pretrained"], "ablated": encoders["scratch"]}
    if not probe:
        del inits["linear_probe"]
    for init, enc in inits.items():
        if init in SHARED_RUNS and reuse_scratch_from is not None:
            reused = _reused_run(Path(reuse_scratch_from), init)
            if reused is not None:
                records[init], seconds[init] = reused, 0.0
                continue
        res = finetune(spec, key.model, enc, init, data, recipe, device, seed=key.seed, progress=progress,
                       spacing=spacing)
        results[init], records[init], seconds[init] = res, run_record(res), float(res.train_seconds)
    return records, results, seconds


def _reused_run(src: Path, init: str) -> dict | None:
    """The ``init`` record of a finished point (its folder or metrics.json), marked as reused; None when the file
    has no such run (an ablated run is missing from files written before it existed)."""
    src = src / "metrics.json" if src.is_dir() else src
    old = json.loads(src.read_text())
    if init not in old["runs"]:
        if init == "scratch":
            raise ValueError(f"{src}: has no scratch run to reuse")
        return None
    rec = copy.deepcopy(old["runs"][init])
    rec["reused_from"] = portable_path(src)
    rec["lr_groups"] = old.get("lr_groups", {}).get(init, [])
    return rec


def rpg_table(records: dict[str, dict], spec: Any) -> dict[str, dict[str, float | None]]:
    """Raw RPG (percent) of the pretrained run vs scratch and vs linear probe, for every test metric (None where
    a score is missing, non-finite or the reference is 0). Whether the primary one is *defined* is :func:`outcome`'s."""
    directions = get_kind(spec.kind).directions()
    out: dict[str, dict[str, float | None]] = {}
    pre = records["pretrained"]["test"]
    for base in ("scratch", "linear_probe"):
        if base not in records:  # an encoder control's point trains no linear probe
            out[f"vs_{base}"] = {}
            continue
        ref = records[base]["test"]
        table: dict[str, float | None] = {}
        for metric, value in pre.items():
            if metric not in ref or value is None or ref[metric] is None:
                continue
            higher = bool(spec.higher_is_better) if metric == spec.primary_metric else directions.get(metric, True)
            r = rpg(float(value), float(ref[metric]), higher)
            table[metric] = r if np.isfinite(r) else None
        out[f"vs_{base}"] = table
    return out


def baselines_of(spec: Any, data: dict[str, Any], spacing: Any = None) -> dict[str, dict[str, float]]:
    """The task kind's trivial baselines on the test split (``{name: {metric: value}}``)."""
    return get_kind(spec.kind).baseline(spec, data, spacing)


def _score(records: dict[str, dict], init: str, metric: str) -> float:
    v = records[init]["test"].get(metric)
    return float("nan") if v is None else float(v)


def encoder_share(p: float, p_ablated: float, p_baseline: float, higher: bool) -> float | None:
    """``(P - P_ablated) / (P - P_baseline)``: the share of a run's gain over the trivial baseline that its encoder
    carries (STUDY §5.1); 1 when the head alone gets nothing, 0 when it gets everything, negative when the
    ablated head does better. None when the run does not beat the baseline or a value is not finite.

    Args:
        p: the run's score. p_ablated: the encoder-ablated run's. p_baseline: the strongest trivial baseline's.
        higher: whether higher is better (the ratio is sign-free, but "beats the baseline" is not).
    """
    sign = 1.0 if higher else -1.0
    if not all(np.isfinite(v) for v in (p, p_ablated, p_baseline)) or sign * (p - p_baseline) <= 0:
        return None
    return float((p - p_ablated) / (p - p_baseline))


def encoder_shares(records: dict[str, dict], metric: str, base: float, higher: bool) -> dict[str, float | None]:
    """:func:`encoder_share` of every run but the ablated one (all None without an ablated run)."""
    if "ablated" not in records:
        return {init: None for init in records}
    abl = _score(records, "ablated", metric)
    return {init: encoder_share(_score(records, init, metric), abl, base, higher)
            for init in records if init != "ablated"}


def outcome(records: dict[str, dict], spec: Any, baselines: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Baselines, learned flags, RPG validity and normalised gains of one point (metrics.json fields).

    Args:
        records: init -> run record (``test`` scores). spec: the TaskSpec. baselines: from :func:`baselines_of`.

    Returns:
        ``baseline_primary``, ``learned``, ``encoder_share`` (per run), ``rpg_defined``, ``rpg_undefined_reason``, ``rpg_primary``,
        ``normalised_gain``, ``normalised_gain_formula`` and ``undefined`` (reasons for the None values).
    """
    metric, higher = spec.primary_metric, bool(spec.higher_is_better)
    best = strongest_baseline(spec, baselines)
    name, base = best if best is not None else ("none", float("nan"))
    sign = 1.0 if higher else -1.0
    learned, undefined = {}, {}
    for init in records:
        margin = sign * (_score(records, init, metric) - base)
        learned[init] = {"beats_baseline": bool(np.isfinite(margin) and margin > 0),
                         "margin": float(margin) if np.isfinite(margin) else None}
        if not np.isfinite(margin):
            undefined[f"learned.{init}.margin"] = "no finite score or baseline on the primary metric"
    status = rpg_status(_score(records, "pretrained", metric), _score(records, "scratch", metric), base, higher)
    reason = status.reason if best is not None else f"the {spec.kind} kind has no trivial baseline"
    if not status.defined:
        undefined["rpg_primary"] = reason
    gains = {}
    for ref in ("scratch", "linear_probe"):
        if ref not in records:
            gains[f"vs_{ref}"] = None
            undefined[f"normalised_gain.vs_{ref}"] = undefined[f"rpg.vs_{ref}"] = undefined[f"runs.{ref}"] = NO_PROBE
            continue
        gains[f"vs_{ref}"] = normalised_gain(_score(records, "pretrained", metric), _score(records, ref, metric),
                                             base, higher)
        if gains[f"vs_{ref}"] is None:
            undefined[f"normalised_gain.vs_{ref}"] = "a score or the baseline is not finite"
    shares = encoder_shares(records, metric, base, higher)
    for init, share in shares.items():
        if share is None:
            undefined[f"encoder_share.{init}"] = ("no ablated run" if "ablated" not in records else
                                                  "the run does not beat its baseline, or a score is not finite")
    return {"baseline_primary": {"name": name, "metric": metric, "value": base if best is not None else None},
            "learned": learned, "encoder_share": shares, "rpg_defined": bool(status.defined and best is not None),
            "rpg_undefined_reason": None if status.defined and best is not None else reason,
            "rpg_primary": status.value if best is not None else None, "normalised_gain": gains,
            "normalised_gain_formula": NG_FORMULA, "undefined": undefined}
