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

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from transferlimits import paths
from transferlimits.config import Profile
from transferlimits.models.registry import get_model
from transferlimits.runtime import resolve_device, seed_everything, set_threads
from transferlimits.training.engine import train_step
from transferlimits.training.loop import (
    Checkpointer,
    Timer,
    generator_states,
    maybe_channels_last,
    param_groups,
    restore_generators,
    restore_rng,
    seed_generators,
    warmup_cosine_lr,
)
from transferlimits.training.pretrain_data import build_pretrain_loader, forward_objective, load_pretrain_pool
from transferlimits.training.pretrain_record import (
    SHORT_ENCODER_FILE,
    PretrainResult,
    PretrainRun,
    check_pair,
    finished_record,
    load_pretrained_encoder,
    pair_summary,
    pretrain_settings,
    pretrain_summary,
    try_reuse,
    write_outputs,
    write_short_encoder,
)

__all__ = ["PretrainOptions", "PretrainResult", "pretrain", "load_pretrained_encoder", "pretrain_settings",
           "pair_summary"]


@dataclass(frozen=True)
class PretrainOptions:
    """How :func:`pretrain` runs, beyond the profile (each may also be passed to it as a keyword).

    Attributes:
        progress: show a tqdm bar with loss and lr (default True).
        max_steps: number of steps instead of ``profile.pretrain.steps`` (default None).
        stop_after: stop after completing and checkpointing this step (simulated interruption; the result
            then has ``encoder_path=None``). Default None.
        collaborators: :class:`PretrainCollaborators` (default: the real pool, modules and forward).
    """

    progress: bool = True
    max_steps: int | None = None
    stop_after: int | None = None
    collaborators: "PretrainCollaborators | None" = None


@dataclass(frozen=True)
class PretrainCollaborators:
    """What a pre-training calls (tests pass stand-ins; None = the real one).

    Attributes:
        load_pool: ``(profile, model) -> Dataset`` (default :func:`~.pretrain_data.load_pretrain_pool`).
        build_modules: ``(model, objective, profile) -> (encoder, objective module)`` (default the adapter's).
        forward: one step's objective forward (default :func:`~.pretrain_data.forward_objective`).
    """

    load_pool: Callable | None = None
    build_modules: Callable | None = None
    forward: Callable | None = None


def _options(options: PretrainOptions | None, keywords: dict[str, Any]) -> PretrainOptions:
    """``options`` (default: the defaults) with the keywords applied (TypeError for a keyword that is no field)."""
    return replace(options if options is not None else PretrainOptions(), **keywords)


def _check_steps(profile: Profile, opts: PretrainOptions) -> int:
    """The run's step count (ValueError for a non-positive one or a ``stop_after`` outside [1, steps])."""
    steps = int(profile.pretrain.steps if opts.max_steps is None else opts.max_steps)
    if steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {steps}")
    if opts.stop_after is not None and not 1 <= opts.stop_after <= steps:
        raise ValueError(f"stop_after must be in [1, {steps}], got {opts.stop_after}")
    return steps


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


def _start(run: PretrainRun, seed: int, resume: bool, build: Callable) -> tuple[torch.optim.Optimizer, Checkpointer]:
    """Build the modules (``build``) and the optimiser on ``run.device`` and resume from a matching checkpoint."""
    rec, adapter = run.profile.pretrain, get_model(run.model)
    seed_everything(seed)
    run.encoder, module = build(run.model, run.objective, run.profile)
    seed_generators(module, seed)  # an objective's own generator (pair shuffling) follows the run seed
    run.module = maybe_channels_last(module.to(run.device), run.device, adapter.pretrain_ndim)
    optimizer = torch.optim.AdamW(param_groups(run.module, rec.weight_decay, no_decay_names=adapter.no_decay_names),
                                  lr=rec.lr, betas=tuple(rec.betas))
    ckpt = Checkpointer(run.out, rec.checkpoint_every)
    state = ckpt.load_latest() if resume else None
    if state is not None and state.get("settings") != run.settings:
        warnings.warn(f"{ckpt.path} was written with other settings; starting over", stacklevel=3)
        state = None
    if state is not None:
        run.module.load_state_dict(state["module"])
        optimizer.load_state_dict(state["optimizer"])
        run.start, run.curve = int(state["step"]), list(state["curve"])
        restore_generators(run.module, state.get("generators", {}))
        restore_rng(state)
    return optimizer, ckpt


def _steps(run: PretrainRun, optimizer: torch.optim.Optimizer, ckpt: Checkpointer, loader: Any,
           opts: PretrainOptions) -> tuple[Timer, bool]:
    """Run the steps from ``run.start``, checkpointing as due; returns (timer, stopped at ``stop_after``).

    Raises:
        NonFiniteLossError: the loss became NaN/inf.
    """
    rec, steps, ndim = run.profile.pretrain, int(run.settings["steps"]), get_model(run.model).pretrain_ndim
    model, objective, module, device, curve = run.model, run.objective, run.module, run.device, run.curve
    forward = (opts.collaborators or PretrainCollaborators()).forward or forward_objective
    prior_wall = curve[-1]["wall_s"] if curve else 0.0
    where = f"pretraining {model}/{objective}"
    timer = Timer(device)
    module.train()
    bar = tqdm(total=steps, initial=run.start, desc=f"pretrain {model}/{objective}", disable=not opts.progress,
               leave=False)
    last_saved, stopped = run.start, False
    for step, batch in zip(range(run.start, steps), loader):
        lr = warmup_cosine_lr(step, steps, rec.warmup_steps, rec.lr)
        with timer.section():
            value, output = train_step(
                optimizer, lr, lambda: forward(module, model, objective, batch, device, ndim),
                lambda out: out[0] if isinstance(out, (tuple, list)) else out, device, step, where)
        curve.append({"step": step, "loss": value, "lr": lr, "wall_s": prior_wall + timer.elapsed(), **_stats(output)})
        bar.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.2e}")
        bar.update(1)
        done = step + 1
        if done == run.settings.get("short_steps"):
            write_short_encoder(run, done)
        if ckpt.due(done) or done == opts.stop_after:
            ckpt.save(done, {"module": module.state_dict(), "optimizer": optimizer.state_dict(),
                             "curve": curve, "settings": run.settings, "generators": generator_states(module)})
            last_saved = done
        if done == opts.stop_after:
            stopped = True
            break
    bar.close()
    if not stopped and len(curve) != steps:  # the loader ran dry: impossible with the infinite sampler
        raise RuntimeError(f"{where} stopped at step {len(curve)} of {steps}; saved step {last_saved}")
    return timer, stopped


def pretrain(model: str, objective: str, profile: Profile, device: str | torch.device | None = None, seed: int = 0,
             out_dir: str | Path | None = None, resume: bool = True, options: PretrainOptions | None = None,
             **keywords: Any) -> PretrainResult:
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
        options: :class:`PretrainOptions` (``progress``, ``max_steps``, ``stop_after``); default: their defaults.
        **keywords: ``progress``, ``max_steps`` and/or ``stop_after`` (override ``options``; the former
            signature).

    Returns:
        :class:`PretrainResult` with the ``encoder.pt`` path, the per-step curve and the summary.

    Raises:
        ValueError: unknown model/objective, or a non-positive step count.
        TypeError: a keyword other than ``progress``, ``max_steps``, ``stop_after``.
        NonFiniteLossError: the loss became NaN/inf (the message names the step and the run).
    """
    opts = _options(options, keywords)
    check_pair(model, objective)
    steps = _check_steps(profile, opts)
    out = Path(out_dir) if out_dir is not None else paths.pretrain_dir(profile.name, model, objective)
    run = PretrainRun(model, objective, profile, pretrain_settings(model, objective, profile, seed, steps), out)
    reused = try_reuse(out, run.settings)
    if reused is not None:
        return reused
    run.device = resolve_device(device if device is not None else profile.device)
    set_threads(profile.num_threads)
    collab = opts.collaborators or PretrainCollaborators()
    optimizer, ckpt = _start(run, seed, resume, collab.build_modules or _build_modules)
    prior_wall = run.curve[-1]["wall_s"] if run.curve else 0.0
    pool = (collab.load_pool or load_pretrain_pool)(profile, model)
    loader, n_pool = build_pretrain_loader(pool, profile.pretrain.batch_size, seed, run.start, steps, run.device)
    timer, stopped = _steps(run, optimizer, ckpt, loader, opts)
    if stopped:
        return PretrainResult(None, run.curve, {"interrupted": True, "step": opts.stop_after,
                                                "checkpoint": str(ckpt.path)})
    if "short_steps" in run.settings and not (out / SHORT_ENCODER_FILE).is_file():
        raise RuntimeError(f"pretraining {model}/{objective} finished without {out / SHORT_ENCODER_FILE} (step "
                           f"{run.settings['short_steps']} was passed before a resume); delete {ckpt.path} and rerun")
    summary = pretrain_summary(run, timer, n_pool, prior_wall)
    path = write_outputs(run, summary)
    ckpt.remove()
    return PretrainResult(path, run.curve, summary)


def finished_pretrain(model: str, objective: str, profile: Profile, seed: int = 0,
                      out_dir: str | Path | None = None, max_steps: int | None = None) -> PretrainResult:
    """The record of the finished :func:`pretrain` run with these arguments, computing nothing (render-only).

    Args:
        model, objective, profile, seed, out_dir: as for :func:`pretrain`.
        max_steps: as ``PretrainOptions.max_steps`` (default the profile's steps).

    Returns:
        :class:`PretrainResult`; ``encoder_path`` is None where the weights were not brought back.

    Raises:
        FileNotFoundError, ValueError: see :func:`~transferlimits.training.pretrain_record.finished_record`.
    """
    check_pair(model, objective)
    steps = _check_steps(profile, PretrainOptions(max_steps=max_steps))
    out = Path(out_dir) if out_dir is not None else paths.pretrain_dir(profile.name, model, objective)
    return finished_record(out, pretrain_settings(model, objective, profile, seed, steps))
