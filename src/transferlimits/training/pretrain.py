"""Pre-train one encoder with one objective on the profile's pre-training pool.

Each model adapter (``transferlimits.models.get_model``) names its objectives; the study's four pairs are
``profound/fcmae`` and ``provicnet/contrastive`` (native), ``profound/contrastive`` and ``provicnet/mae``
(swapped, the 2x2 control of STUDY H6).
All share one recipe per profile: AdamW, per-iteration linear warmup + half-cycle cosine, a NaN/inf
guard, an atomic checkpoint every ``checkpoint_every`` steps and resume after an interruption
(same step, optimizer and RNG state, so a resumed CPU run reproduces an uninterrupted one exactly).
bf16 autocast and channels-last are used only on CUDA.

Outputs in ``results/<profile>/pretrain/<model>__<objective>/``: ``encoder.pt`` (encoder weights and
metadata), ``curve.json`` (per-step loss, lr, wall seconds, objective statistics: the contrastive objective's
``n_pos_pairs`` / ``n_neg_pairs`` mined in the step), ``pretrain.json`` (summary and provenance, with
``contrastive_active_fraction``: the share of steps with at least one positive pair, null with a reason for
objectives without pairs; strict JSON) and, while running, ``checkpoint_last.pt``. A finished run whose settings
match is returned without work. The phantom cohort is built on first use; for ``--profile picai`` build
it first with ``python -m transferlimits data --profile picai --data <images>``.

Example::

    python -m transferlimits pretrain --model profound --profile smoke
    python -m transferlimits pretrain --model provicnet --objective mae --steps 100 --device cpu
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from transferlimits import paths
from transferlimits.config import Profile, profile_to_dict
from transferlimits.models.registry import get_model, model_names
from transferlimits.runtime import (
    CheckpointError,
    atomic_save_torch,
    atomic_write_json,
    git_commit,
    hardware_info,
    load_torch_file,
    resolve_device,
    seed_everything,
    set_threads,
    software_versions,
)
from transferlimits.training.engine import train_step
from transferlimits.training.loop import (
    Checkpointer,
    Timer,
    maybe_channels_last,
    generator_states,
    param_groups,
    restore_generators,
    restore_rng,
    seed_generators,
    warmup_cosine_lr,
)
from transferlimits.training.pretrain_data import build_pretrain_loader, forward_objective

__all__ = ["PretrainResult", "pretrain", "load_pretrained_encoder", "pretrain_settings", "pair_summary"]



@dataclass
class PretrainResult:
    """What :func:`pretrain` returns.

    Attributes:
        encoder_path: ``encoder.pt`` of the finished run, or ``None`` when stopped early (``stop_after``).
        curve: one dict per completed step: ``step``, ``loss``, ``lr``, ``wall_s`` (+ objective stats).
        summary: the content of ``pretrain.json`` (or the partial state when stopped early).
    """

    encoder_path: Path | None
    curve: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def _check_pair(model: str, objective: str) -> None:
    """ValueError for an unknown model or an objective the model's adapter does not define."""
    adapter = get_model(model)
    known = list(dict.fromkeys(o for m in model_names() for o in get_model(m).objectives))
    if objective not in known:
        raise ValueError(f"unknown objective {objective!r}; valid: {known}")
    if objective not in adapter.objectives:
        raise ValueError(f"objective {objective!r} is not defined for {model!r}; valid: {list(adapter.objectives)}")


def pretrain_settings(model: str, objective: str, profile: Profile, seed: int, steps: int) -> dict[str, Any]:
    """The settings that define a pre-training run (a finished run is reused only if they match)."""
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
    return json.loads(json.dumps(settings))  # tuples -> lists: compares equal after a JSON round trip


def _build_modules(model: str, objective: str, profile: Profile) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(encoder, objective module wrapping it), built by the model's adapter."""
    adapter = get_model(model)
    encoder = adapter.encoder_for_profile(profile)
    module = adapter.build_objective(objective, encoder, profile)
    return encoder, module


def _stats(output: Any) -> dict[str, float]:
    """Scalar statistics an objective returns next to its loss (a dict in the output tuple)."""
    if not isinstance(output, (tuple, list)):
        return {}
    out: dict[str, float] = {}
    for item in output[1:]:
        if isinstance(item, dict):
            for k, v in item.items():
                if isinstance(v, (int, float)) or (isinstance(v, torch.Tensor) and v.numel() == 1):
                    out[str(k)] = float(v)
    return out


def _try_reuse(out: Path, settings: dict[str, Any]) -> PretrainResult | None:
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
    curve = json.loads((out / "curve.json").read_text())
    summary = json.loads((out / "pretrain.json").read_text())
    return PretrainResult(path, curve, summary)


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


def pretrain(
    model: str,
    objective: str,
    profile: Profile,
    device: str | torch.device | None = None,
    seed: int = 0,
    out_dir: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
    max_steps: int | None = None,
    stop_after: int | None = None,
) -> PretrainResult:
    """Pre-train ``model`` with ``objective`` on ``profile``'s pre-training pool.

    Args:
        model: a registered model (``transferlimits.models.get_model``).
        objective: one of the adapter's ``objectives`` (profound: fcmae / contrastive; provicnet: contrastive
            / mae).
        profile: the :class:`~transferlimits.config.Profile` (recipe in ``profile.pretrain``).
        device: torch device or spec; ``None`` uses ``profile.device`` (``"auto"`` -> cuda if present).
        seed: seed of initialisation, sampling and masking (default 0).
        out_dir: output folder; default ``paths.pretrain_dir(profile.name, model, objective)``.
        resume: continue from ``checkpoint_last.pt`` when its settings match (default True).
        progress: show a tqdm bar with loss and lr (default True).
        max_steps: number of steps instead of ``profile.pretrain.steps`` (default None).
        stop_after: stop after completing and checkpointing this step (simulated interruption;
            the result then has ``encoder_path=None``). Default None.

    Returns:
        :class:`PretrainResult` with the ``encoder.pt`` path, the per-step curve and the summary.

    Raises:
        ValueError: unknown model/objective, or a non-positive step count.
        NonFiniteLossError: the loss became NaN/inf (the message names the step and the run).
    """
    _check_pair(model, objective)
    steps = int(profile.pretrain.steps if max_steps is None else max_steps)
    if steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {steps}")
    if stop_after is not None and not 1 <= stop_after <= steps:
        raise ValueError(f"stop_after must be in [1, {steps}], got {stop_after}")
    rec = profile.pretrain
    out = Path(out_dir) if out_dir is not None else paths.pretrain_dir(profile.name, model, objective)
    settings = pretrain_settings(model, objective, profile, seed, steps)
    reused = _try_reuse(out, settings)
    if reused is not None:
        return reused

    device = resolve_device(device if device is not None else profile.device)
    set_threads(profile.num_threads)
    seed_everything(seed)
    adapter = get_model(model)
    ndim = adapter.pretrain_ndim
    encoder, module = _build_modules(model, objective, profile)
    seed_generators(module, seed)  # an objective's own generator (pair shuffling) follows the run seed
    module = maybe_channels_last(module.to(device), device, ndim)
    optimizer = torch.optim.AdamW(param_groups(module, rec.weight_decay, no_decay_names=adapter.no_decay_names), lr=rec.lr, betas=tuple(rec.betas))
    ckpt = Checkpointer(out, rec.checkpoint_every)
    start, curve = 0, []
    state = ckpt.load_latest() if resume else None
    if state is not None and state.get("settings") != settings:
        warnings.warn(f"{ckpt.path} was written with other settings; starting over", stacklevel=2)
        state = None
    if state is not None:
        module.load_state_dict(state["module"])
        optimizer.load_state_dict(state["optimizer"])
        start, curve = int(state["step"]), list(state["curve"])
        restore_generators(module, state.get("generators", {}))
        restore_rng(state)
    prior_wall = curve[-1]["wall_s"] if curve else 0.0

    loader, n_pool = build_pretrain_loader(profile, model, rec.batch_size, seed, start, steps, device)
    where = f"pretraining {model}/{objective}"
    timer = Timer(device)
    module.train()
    bar = tqdm(total=steps, initial=start, desc=f"pretrain {model}/{objective}", disable=not progress, leave=False)
    last_saved = start
    for step, batch in zip(range(start, steps), loader):
        lr = warmup_cosine_lr(step, steps, rec.warmup_steps, rec.lr)
        with timer.section():
            value, output = train_step(
                optimizer, lr, lambda: forward_objective(module, model, objective, batch, device, ndim),
                lambda out: out[0] if isinstance(out, (tuple, list)) else out, device, step, where)
        curve.append({"step": step, "loss": value, "lr": lr, "wall_s": prior_wall + timer.elapsed(), **_stats(output)})
        bar.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.2e}")
        bar.update(1)
        done = step + 1
        if ckpt.due(done) or done == stop_after:
            ckpt.save(done, {"module": module.state_dict(), "optimizer": optimizer.state_dict(),
                             "curve": curve, "settings": settings, "generators": generator_states(module)})
            last_saved = done
        if done == stop_after:
            bar.close()
            return PretrainResult(None, curve, {"interrupted": True, "step": done, "checkpoint": str(ckpt.path)})
    bar.close()
    if len(curve) != steps:  # the loader ran dry: impossible with the infinite sampler
        raise RuntimeError(f"{where} stopped at step {len(curve)} of {steps}; saved step {last_saved}")

    ran, elapsed = steps - start, max(timer.elapsed(), 1e-9)
    tenth = max(1, steps // 10)
    losses = [r["loss"] for r in curve]
    summary = {
        "model": model,
        "objective": objective,
        "profile": profile.name,
        "steps": steps,
        "resumed_from_step": start,
        "first_loss": _mean(losses[:tenth]),
        "last_loss": _mean(losses[-tenth:]),
        # has the loss flattened? relative change over the last 20 % of steps (means of 5 %-windows)
        "loss_change_last20": _relative_change(losses),
        "samples_per_s": ran * rec.batch_size / elapsed,  # this call, data loading included
        "seconds_per_step": elapsed / ran if ran else float("nan"),
        "wall_seconds": prior_wall + elapsed,  # all calls (a resumed run adds up)
        "step_seconds_this_call": timer.wall,  # forward/backward/update sections only
        "device_seconds_this_call": timer.device_seconds,
        "pool_items": n_pool,
        **pair_summary(curve, objective),
        "encoder_params": sum(p.numel() for p in encoder.parameters()),
        "objective_params": sum(p.numel() for p in module.parameters()),
        "device": str(device),
        "hardware": hardware_info(device),
        "software": software_versions(),
        "git_commit": git_commit(),
        "settings": settings,
    }
    encoder_state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    meta = {"model": model, "size": settings["size"], "objective": objective,
            "img_size": settings["img_size"], "profile": profile_to_dict(profile), "steps": steps,
            "seed": int(seed), "settings": settings}
    meta = json.loads(json.dumps(meta))  # plain types only: loadable with weights_only=True
    atomic_write_json(out / "curve.json", curve)
    atomic_write_json(out / "pretrain.json", summary)
    path = atomic_save_torch(out / "encoder.pt", {"state_dict": encoder_state, **meta})
    ckpt.remove()
    return PretrainResult(path, curve, summary)


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
