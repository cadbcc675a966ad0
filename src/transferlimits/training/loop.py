"""Shared training utilities: lr schedule, AdamW parameter groups, NaN guard, device helpers,
atomic checkpoint/resume with RNG state; the wall/device-seconds timer lives in :mod:`.timer` (re-exported).

Used by both the pre-training runner (:mod:`transferlimits.training.pretrain`) and the fine-tuning
loop (:mod:`transferlimits.training.finetune`). Nothing here knows about models or data.
"""

from __future__ import annotations

import contextlib
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from transferlimits.runtime import atomic_save_torch, load_torch_file
from transferlimits.training.timer import Timer

__all__ = [
    "warmup_cosine_lr",
    "set_lr",
    "param_groups",
    "NonFiniteLossError",
    "check_finite",
    "autocast_context",
    "maybe_channels_last",
    "rng_state",
    "restore_rng",
    "generator_states",
    "restore_generators",
    "seed_generators",
    "Checkpointer",
    "Timer",
]


def warmup_cosine_lr(step: int, total_steps: int, warmup_steps: int, base_lr: float, min_lr: float = 0.0) -> float:
    """Per-iteration linear warmup followed by a half-cycle cosine decay (MAE recipe).

    Args:
        step: current iteration, 0-based (``0 <= step``; values past ``total_steps`` give ``min_lr``).
        total_steps: total number of iterations (>= 1).
        warmup_steps: iterations of linear warmup from 0 to ``base_lr`` (>= 0).
        base_lr: peak learning rate.
        min_lr: final learning rate of the cosine (default 0.0).

    Returns:
        The learning rate for ``step``: ``base_lr * step / warmup_steps`` during warmup, then
        ``min_lr + (base_lr - min_lr) * 0.5 * (1 + cos(pi * t))`` with ``t`` going 0 -> 1 over the
        remaining iterations.

    Raises:
        ValueError: ``total_steps < 1``, ``warmup_steps < 0`` or ``step < 0``.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    t = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's lr to ``lr * group.get("lr_scale", 1.0)``."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def _no_decay(name: str, param: nn.Parameter, extra: tuple[str, ...] = ()) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return param.ndim <= 1 or leaf.endswith("_token") or leaf == "pos_embed" or leaf in extra


def param_groups(
    model: nn.Module, weight_decay: float, lr_scales: dict[str, float] | None = None,
    no_decay_names: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """AdamW parameter groups: no weight decay on biases, norm weights (1-D params), ``*_token``,
    ``pos_embed`` and the model's own ``no_decay_names``; every group carries an ``lr_scale`` (see
    :func:`set_lr`).

    Args:
        model: the module whose trainable (``requires_grad``) parameters are grouped.
        weight_decay: decay of the decayed groups (>= 0).
        lr_scales: optional ``{parameter name: lr multiplier}``; missing names get 1.0.
        no_decay_names: parameter leaf names (the part after the last dot) exempt from decay, e.g. a model
            adapter's ``no_decay_names``. Default none.

    Returns:
        A list of dicts ``{"params", "weight_decay", "lr_scale", "names"}``, one per distinct
        (decay, lr_scale) pair, in first-seen order. Pass it to ``torch.optim.AdamW``.

    Raises:
        ValueError: negative ``weight_decay`` or an ``lr_scales`` name that is not a parameter.
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    lr_scales = dict(lr_scales or {})
    names = {n for n, _ in model.named_parameters()}
    unknown = sorted(set(lr_scales) - names)
    if unknown:
        raise ValueError(f"lr_scales names not in the model: {unknown[:5]}; e.g. valid: {sorted(names)[:5]}")
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        wd = 0.0 if _no_decay(name, param, tuple(no_decay_names)) else float(weight_decay)
        scale = float(lr_scales.get(name, 1.0))
        group = groups.setdefault((wd, scale), {"params": [], "names": [], "weight_decay": wd, "lr_scale": scale})
        group["params"].append(param)
        group["names"].append(name)
    return list(groups.values())


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf: the run stops instead of silently training on garbage."""


def check_finite(loss: torch.Tensor | float, *, step: int, where: str) -> float:
    """Return ``float(loss)``; raise :class:`NonFiniteLossError` when it is NaN or inf.

    Args:
        loss: scalar tensor or float.
        step: the iteration (or epoch) the loss belongs to, named in the message.
        where: the run, e.g. ``"pretraining profound/fcmae"`` or ``"fine-tuning classification/profound"``.

    Raises:
        NonFiniteLossError: e.g. ``loss became nan at step 17 of pretraining profound/fcmae; lower the
        lr or check inputs``.
    """
    value = float(loss.detach().float().item()) if isinstance(loss, torch.Tensor) else float(loss)
    if not math.isfinite(value):
        raise NonFiniteLossError(f"loss became {value} at step {step} of {where}; lower the lr or check inputs")
    return value


def autocast_context(device: torch.device | str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; a no-op context on CPU (CPU runs stay fp32 and deterministic)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def maybe_channels_last(obj: Any, device: torch.device | str, ndim: int) -> Any:
    """Convert a module or tensor to channels_last (``ndim=4``) / channels_last_3d (``ndim=5``) on CUDA.

    Args:
        obj: ``nn.Module`` or tensor; returned unchanged on CPU or for other ``ndim``.
        device: the run's device.
        ndim: rank of the activations (4 for 2D, 5 for 3D convolutions).
    """
    fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(ndim)
    if torch.device(device).type != "cuda" or fmt is None:
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.contiguous(memory_format=fmt) if obj.ndim == ndim else obj
    for tensor in list(obj.parameters()) + list(obj.buffers()):  # only the weights of rank ``ndim``
        if tensor.ndim == ndim:
            tensor.data = tensor.data.contiguous(memory_format=fmt)
    return obj


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU, and CUDA when available) RNG states, as plain types and tensors
    only (a checkpoint holding them loads with ``weights_only=True``)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Restore the RNG states saved by :func:`rng_state` (accepts a checkpoint dict holding ``"rng"``)."""
    state = state.get("rng", state)
    random.setstate(state["python"])
    npst = state["numpy"]
    if isinstance(npst, dict):
        npst = (npst["name"], np.asarray(npst["keys"], np.uint32), npst["pos"], npst["has_gauss"],
                npst["cached_gaussian"])
    np.random.set_state(npst)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def generator_states(module: nn.Module) -> dict[str, torch.Tensor]:
    """States of the private ``torch.Generator`` attributes of ``module`` and its submodules.

    Objectives may own a generator (e.g. for pair shuffling); saving its state next to the global RNG
    states makes a resumed run continue exactly. Keys are ``"<submodule path>:<attribute>"``.
    """
    states: dict[str, torch.Tensor] = {}
    for path, sub in module.named_modules():
        for attr, value in vars(sub).items():
            if isinstance(value, torch.Generator):
                states[f"{path}:{attr}"] = value.get_state()
    return states


def seed_generators(module: nn.Module, seed: int) -> None:
    """Re-seed the private generators of ``module`` from the run ``seed`` (distinct per generator)."""
    for i, key in enumerate(sorted(generator_states(module))):
        path, attr = key.rsplit(":", 1)
        getattr(module.get_submodule(path), attr).manual_seed(int(seed) * 7919 + i)


def restore_generators(module: nn.Module, states: dict[str, torch.Tensor]) -> None:
    """Apply :func:`generator_states` output to the same module structure.

    Raises:
        ValueError: a saved generator does not exist in ``module`` (the message names it).
    """
    subs = dict(module.named_modules())
    for key, state in states.items():
        path, attr = key.rsplit(":", 1)
        gen = getattr(subs.get(path), attr, None)
        if not isinstance(gen, torch.Generator):
            raise ValueError(f"saved generator {key!r} is not a torch.Generator of this module")
        gen.set_state(state)


class Checkpointer:
    """Atomic ``checkpoint_last.pt`` in ``directory``, written every ``every`` steps.

    Args:
        directory: folder of the checkpoint (created on first save).
        every: save period in steps (>= 1); :meth:`due` tells whether a step should be saved.
        filename: checkpoint file name (default ``checkpoint_last.pt``).
    """

    def __init__(self, directory: str | Path, every: int, filename: str = "checkpoint_last.pt") -> None:
        if int(every) < 1:
            raise ValueError(f"checkpoint every must be >= 1 step, got {every}")
        self.directory = Path(directory)
        self.every = int(every)
        self.path = self.directory / filename

    def due(self, step: int) -> bool:
        """True when ``step`` (number of completed steps) is a multiple of ``every``."""
        return step > 0 and step % self.every == 0

    def save(self, step: int, state: dict[str, Any]) -> Path:
        """Write ``{**state, "step": step, "rng": rng_state()}`` atomically; returns the path."""
        payload = dict(state, step=int(step), rng=rng_state())
        return atomic_save_torch(self.path, payload)

    def load_latest(self, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
        """The last checkpoint's dict, or ``None`` when there is none. RNG states are not applied.

        Read with ``weights_only=True``. Raises :class:`~transferlimits.runtime.CheckpointError` naming
        the file when it is empty or truncated (delete it, or pass ``resume=False``, to start over).
        """
        if not self.path.exists():
            return None
        return load_torch_file(self.path, map_location=map_location, what="training checkpoint")

    def remove(self) -> None:
        """Delete the checkpoint (after the final outputs were written)."""
        self.path.unlink(missing_ok=True)

    @staticmethod
    def restore_rng(state: dict[str, Any]) -> None:
        """Apply the RNG states stored in a checkpoint dict."""
        restore_rng(state)
