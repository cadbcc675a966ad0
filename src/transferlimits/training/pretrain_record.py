"""What a pre-training run records: its settings, the reuse of a finished run, the summary, ``encoder.pt``.

Split from :mod:`transferlimits.training.pretrain` (which runs the steps; the outputs are described there).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from transferlimits.config import Profile, profile_to_dict, short_step
from transferlimits.models.registry import get_model, model_names
from transferlimits.runtime import (
    CheckpointError,
    atomic_save_torch,
    atomic_write_json,
    git_commit,
    hardware_info,
    load_torch_file,
    software_versions,
)
from transferlimits.training.loop import Timer

__all__ = ["PretrainResult", "PretrainRun", "check_pair", "pretrain_settings", "try_reuse", "finished_record", "pair_summary",
           "pretrain_summary", "write_outputs", "write_short_encoder", "load_pretrained_encoder", "SHORT_ENCODER_FILE"]

#: the ``native_short`` encoder of a run with ``PretrainRecipe.short_steps`` > 0, beside ``encoder.pt``
SHORT_ENCODER_FILE = "encoder_short.pt"


@dataclass
class PretrainResult:
    """What :func:`~transferlimits.training.pretrain.pretrain` returns.

    Attributes:
        encoder_path: ``encoder.pt`` of the finished run, or ``None`` when stopped early (``stop_after``).
        curve: one dict per completed step: ``step``, ``loss``, ``lr``, ``wall_s`` (+ objective stats).
        summary: the content of ``pretrain.json`` (or the partial state when stopped early).
    """

    encoder_path: Path | None
    curve: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class PretrainRun:
    """One pre-training run: what it is, where it writes, and (once built) its modules and progress.

    Attributes:
        model: registered model name. objective: one of its objectives. profile: the profile.
        settings: :func:`pretrain_settings` of the run. out: the output folder.
        device: the torch device (set when the run starts). encoder, module: the encoder and the objective
            module wrapping it. start: the step the run (re)started from. curve: per-step rows so far.
    """

    model: str
    objective: str
    profile: Profile
    settings: dict[str, Any]
    out: Path
    device: torch.device | None = None
    encoder: torch.nn.Module | None = None
    module: torch.nn.Module | None = None
    start: int = 0
    curve: list[dict[str, Any]] = field(default_factory=list)


def check_pair(model: str, objective: str) -> None:
    """Check that ``model`` is registered and defines ``objective``.

    Args:
        model: a model name. objective: an objective name.

    Raises:
        ValueError: an unknown model or an objective the model's adapter does not define.
    """
    adapter = get_model(model)
    known = list(dict.fromkeys(o for m in model_names() for o in get_model(m).objectives))
    if objective not in known:
        raise ValueError(f"unknown objective {objective!r}; valid: {known}")
    if objective not in adapter.objectives:
        raise ValueError(f"objective {objective!r} is not defined for {model!r}; valid: {list(adapter.objectives)}")


def pretrain_settings(model: str, objective: str, profile: Profile, seed: int, steps: int) -> dict[str, Any]:
    """The settings that define a pre-training run (a finished run is reused only if they match).

    Args:
        model: model name. objective: objective name. profile: the profile. seed: run seed. steps: step count.
    """
    rec = profile.pretrain
    adapter = get_model(model)
    settings = {
        "model": model,
        "objective": objective,
        "size": adapter.size_for(profile),
        "img_size": adapter.encoder_kwargs(profile).get("img_size"),
        "grid": profile.grid.shape,
        "spacing": profile.grid.spacing,
        "pool_patients": profile.splits.pretrain,
        "data_source": profile.data_source,
        "seed": int(seed),
        "steps": int(steps),
        "batch_size": rec.batch_size,
        "lr": rec.lr,
        "betas": rec.betas,
        "weight_decay": rec.weight_decay,
        "warmup_steps": rec.warmup_steps,
        "mask_ratio": rec.mask_ratio,
        "contrastive_alpha": rec.contrastive_alpha,
        "anchor_frac": rec.anchor_frac,
        "neg_frac": rec.neg_frac,
    }
    short = short_step(steps, rec.short_fraction)  # of the steps this run makes (max_steps may cut the recipe's)
    if 0 < short < int(steps):  # absent at 0: runs made before it stay reusable
        settings["short_steps"] = short
    return json.loads(json.dumps(settings))  # tuples -> lists: compares equal after a JSON round trip


def try_reuse(out: Path, settings: dict[str, Any]) -> PretrainResult | None:
    """The finished run in ``out`` if its settings equal ``settings``, else None (a corrupt one warns).

    Args:
        out: the run's output folder. settings: the requested run's :func:`pretrain_settings`.
    """
    path = out / "encoder.pt"
    if not (path.exists() and (out / "curve.json").exists() and (out / "pretrain.json").exists()):
        return None
    try:
        meta = load_torch_file(path, what="pre-trained encoder")
    except CheckpointError as err:
        warnings.warn(f"{err}; pre-training again", stacklevel=2)
        return None
    if meta.get("settings") != settings:
        return None
    if "short_steps" in settings and not (out / SHORT_ENCODER_FILE).is_file():
        return None
    return _read_record(out, path)


def _read_record(out: Path, weights: Path | None) -> PretrainResult:
    """``curve.json`` and ``pretrain.json`` of the finished run in ``out``, with its weights' path (or None)."""
    curve = json.loads((out / "curve.json").read_text())
    summary = json.loads((out / "pretrain.json").read_text())
    return PretrainResult(weights, curve, summary)


def finished_record(out: Path, settings: dict[str, Any]) -> PretrainResult:
    """A finished run's record without its weights: the curve and summary a results page shows.

    A run computed elsewhere (the reference on a GPU) comes back without ``encoder.pt`` (too large to return);
    rendering its page must not pre-train again.

    Args:
        out: the run's output folder. settings: the requested run's :func:`pretrain_settings`.

    Returns:
        :class:`PretrainResult` whose ``encoder_path`` is None when the weights are not here.

    Raises:
        FileNotFoundError: ``curve.json`` or ``pretrain.json`` is missing (the run did not finish there).
        ValueError: ``pretrain.json`` was made with other settings (naming the keys that differ).
    """
    missing = [name for name in ("curve.json", "pretrain.json") if not (out / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{out}: no finished pre-training to render ({' and '.join(missing)} missing); "
                                "render-only shows results computed elsewhere: compute them first "
                                "(`python -m transferlimits compute`) or run without --render-only")
    summary = json.loads((out / "pretrain.json").read_text())
    made = summary.get("settings") or {}
    if made != settings:
        keys = sorted(k for k in set(made) | set(settings) if made.get(k) != settings.get(k))
        raise ValueError(f"{out / 'pretrain.json'}: made with other settings than this profile's (differ in "
                         f"{', '.join(keys)}); render with the same profile and --set values, or compute again")
    weights = out / "encoder.pt"
    return _read_record(out, weights if weights.is_file() else None)


def _relative_change(losses: list[float]) -> float:
    """(mean of the last 5 % of steps − mean of the 5 % starting at 80 %) / |the latter| (NaN if < 20 steps)."""
    n = len(losses)
    if n < 20:
        return float("nan")
    w = max(1, n // 20)
    start = n - n // 5
    ref = _mean(losses[start:start + w])
    return (_mean(losses[-w:]) - ref) / abs(ref) if ref else float("nan")


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else float("nan")


def pair_summary(curve: list[dict[str, Any]], objective: str) -> dict[str, Any]:
    """How active the contrastive term was: ``contrastive_active_fraction`` (steps with >= 1 positive pair),
    mean positive / negative pairs per step, and ``contrastive_active_fraction_reason`` (why it is None).

    Args:
        curve: per-step rows (``n_pos_pairs`` / ``n_neg_pairs`` where the objective mines pairs).
        objective: the objective name (for the reason).
    """
    rows = [r for r in curve if "n_pos_pairs" in r]
    if not rows:
        return {"contrastive_active_fraction": None, "mean_pos_pairs": None, "mean_neg_pairs": None,
                "contrastive_active_fraction_reason": f"objective {objective!r} mines no pairs"}
    return {"contrastive_active_fraction": sum(r["n_pos_pairs"] >= 1 for r in rows) / len(rows),
            "mean_pos_pairs": _mean([r["n_pos_pairs"] for r in rows]),
            "mean_neg_pairs": _mean([r["n_neg_pairs"] for r in rows]),
            "contrastive_active_fraction_reason": None}


def pretrain_summary(run: PretrainRun, timer: Timer, n_pool: int, prior_wall: float) -> dict[str, Any]:
    """The content of ``pretrain.json`` for a finished run.

    Args:
        run: the finished run (``curve`` complete). timer: this call's timer. n_pool: pre-training pool items.
        prior_wall: wall seconds of earlier calls (a resumed run adds up).
    """
    steps = int(run.settings["steps"])
    ran, elapsed = steps - run.start, max(timer.elapsed(), 1e-9)
    tenth = max(1, steps // 10)
    losses = [r["loss"] for r in run.curve]
    return {
        "model": run.model,
        "objective": run.objective,
        "profile": run.profile.name,
        "steps": steps,
        "resumed_from_step": run.start,
        "first_loss": _mean(losses[:tenth]),
        "last_loss": _mean(losses[-tenth:]),
        # has the loss flattened? relative change over the last 20 % of steps (means of 5 %-windows)
        "loss_change_last20": _relative_change(losses),
        "samples_per_s": ran * run.profile.pretrain.batch_size / elapsed,  # this call, data loading included
        "seconds_per_step": elapsed / ran if ran else float("nan"),
        "wall_seconds": prior_wall + elapsed,  # all calls (a resumed run adds up)
        "step_seconds_this_call": timer.wall,  # forward/backward/update sections only
        "device_seconds_this_call": timer.device_seconds,
        "pool_items": n_pool,
        **pair_summary(run.curve, run.objective),
        "encoder_params": sum(p.numel() for p in run.encoder.parameters()),
        "objective_params": sum(p.numel() for p in run.module.parameters()),
        "device": str(run.device),
        "hardware": hardware_info(run.device),
        "software": software_versions(),
        "git_commit": git_commit(),
        "settings": run.settings,
    }


def _encoder_meta(run: PretrainRun, steps: int) -> dict[str, Any]:
    """The plain-type metadata saved beside the weights (``steps``: the steps this encoder was trained for)."""
    settings = run.settings
    meta = {"model": run.model, "size": settings["size"], "objective": run.objective,
            "img_size": settings["img_size"], "profile": profile_to_dict(run.profile), "steps": int(steps),
            "seed": int(settings["seed"]), "settings": settings}
    return json.loads(json.dumps(meta))  # plain types only: loadable with weights_only=True


def write_short_encoder(run: PretrainRun, step: int) -> Path:
    """``encoder_short.pt``: the encoder after ``step`` steps of this run (the ``native_short`` point's encoder).

    Args:
        run: the running pre-training. step: steps done (``settings["short_steps"]``).

    Returns:
        Its path (written atomically; a resumed run that passes the step again rewrites the same weights).
    """
    state = {k: v.detach().cpu().contiguous() for k, v in run.encoder.state_dict().items()}
    return atomic_save_torch(run.out / SHORT_ENCODER_FILE, {"state_dict": state, **_encoder_meta(run, step),
                                                            "short_of_steps": int(run.settings["steps"])})


def write_outputs(run: PretrainRun, summary: dict[str, Any]) -> Path:
    """Write ``curve.json``, ``pretrain.json`` and ``encoder.pt`` (weights + plain-type metadata) atomically.

    Args:
        run: the finished run. summary: :func:`pretrain_summary`.

    Returns:
        The path of ``encoder.pt``.
    """
    encoder_state = {k: v.detach().cpu().contiguous() for k, v in run.encoder.state_dict().items()}
    meta = _encoder_meta(run, run.settings["steps"])
    atomic_write_json(run.out / "curve.json", run.curve)
    atomic_write_json(run.out / "pretrain.json", summary)
    return atomic_save_torch(run.out / "encoder.pt", {"state_dict": encoder_state, **meta})


def load_pretrained_encoder(
    path_or_dir: str | Path, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild an encoder from a pre-training run's ``encoder.pt`` (or its folder).

    Args:
        path_or_dir: ``encoder.pt`` or the folder holding it.
        device: where to put the encoder (default ``"cpu"``).

    Returns:
        ``(encoder in eval mode, meta)``; ``meta`` holds ``model``, ``size``, ``objective``,
        ``img_size``, ``profile``, ``steps``, ``seed``, ``settings`` (no weights).

    Raises:
        FileNotFoundError: no ``encoder.pt`` there.
        CheckpointError: an empty, truncated or corrupt ``encoder.pt`` (the message names it).
    """
    path = Path(path_or_dir)
    if path.is_dir():
        path = path / "encoder.pt"
    if not path.exists():
        raise FileNotFoundError(f"no pre-trained encoder at {path}; run `python -m transferlimits pretrain` first")
    meta = load_torch_file(path, what="pre-trained encoder")
    adapter = get_model(meta["model"])
    encoder = adapter.build_encoder(meta["size"], **adapter.encoder_kwargs_from_meta(meta))
    encoder.load_state_dict(meta.pop("state_dict"), strict=True)
    return encoder.to(device).eval(), meta
