"""The training engine shared by fine-tuning and pre-training: one optimiser step, one epoch, evaluation.

* :func:`train_step` - set the lr, forward under autocast, NaN/inf guard, backward, optimiser step (used
  by :mod:`.finetune` through :func:`train_epoch` and by :mod:`.pretrain` directly, step by step).
* :func:`train_epoch` - one pass over a loader of collated task batches.
* :func:`evaluate` - score a model on a dataset; the task kind (:mod:`transferlimits.tasks.kinds`) owns the
  loss, the per-batch accumulation, the scores and the examples.

Batches are dicts: ``x`` (+ ``pos`` for slice stacks), ``y``, ``masks``, ``case_id``; targets per kind are
described in each kind's module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from transferlimits.tasks.kinds import get_kind
from transferlimits.training.loop import autocast_context, check_finite, set_lr

__all__ = ["collate", "to_device", "train_step", "EpochResult", "EpochSetup", "train_epoch", "evaluate"]


def collate(items: list[dict]) -> dict:
    """Stack dataset items: arrays/tensors/numbers -> tensors, strings -> lists, dicts recursively."""
    first = items[0]
    out: dict = {}
    for key, value in first.items():
        vals = [it[key] for it in items]
        if isinstance(value, dict):
            out[key] = collate(vals)
        elif isinstance(value, (Tensor, np.ndarray)):
            out[key] = torch.stack([torch.as_tensor(v) for v in vals])
        elif isinstance(value, (bool, int, float, np.number)):
            out[key] = torch.as_tensor(np.asarray(vals))
        else:
            out[key] = vals
    return out


def to_device(batch: dict, device: torch.device) -> dict:
    """Move every tensor of a (nested) batch to ``device``; floating tensors become float32."""
    out: dict = {}
    for k, v in batch.items():
        if isinstance(v, dict):
            out[k] = to_device(v, device)
        elif isinstance(v, Tensor):
            v = v.float() if v.is_floating_point() else v
            out[k] = v.to(device)
        else:
            out[k] = v
    return out


def train_step(optimizer: torch.optim.Optimizer, lr: float, forward: Callable[[], Any],
               loss_of: Callable[[Any], Tensor], device: torch.device, step: int, where: str) -> tuple[float, Any]:
    """One optimiser step: set ``lr``, ``forward()`` under autocast, ``loss_of(output)``, guard, update.

    Args:
        optimizer: the optimiser. lr: learning rate of this step (group ``lr_scale`` applies).
        forward: computes the model output (run under bf16 autocast on CUDA).
        loss_of: output -> scalar loss tensor (computed outside autocast).
        device: the torch device. step: global step (for the error message). where: names the run.

    Returns:
        ``(loss value, output)``.

    Raises:
        NonFiniteLossError: a NaN/inf loss.
    """
    set_lr(optimizer, lr)
    with autocast_context(device):
        output = forward()
    loss = loss_of(output)
    value = check_finite(loss, step=step, where=where)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return value, output


@dataclass
class EpochResult:
    """What :func:`train_epoch` returns: per-step ``losses``, the last step's ``lr``, the next global ``step``."""

    losses: list[float]
    lr: float
    step: int


@dataclass(frozen=True)
class EpochSetup:
    """What stays fixed across the epochs of one run (for :func:`train_epoch`).

    Attributes:
        model: task model (``model(x, pos)``). optimizer: its optimiser. spec: the TaskSpec (``kind``).
        device: torch device. lr_at: global step -> learning rate.
        prepare: CPU batch -> batch before the move to ``device`` (augmentation). Default None.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    spec: Any
    device: torch.device
    lr_at: Callable[[int], float]
    prepare: Callable[[dict], dict] | None = None


def train_epoch(setup: EpochSetup, loader: Iterable[dict], step: int, where: str) -> EpochResult:
    """Train ``setup.model`` (already in train mode) for one pass over ``loader`` with the task kind's loss.

    Args:
        setup: the run's model, optimiser, task, device, lr schedule and batch preparation.
        loader: collated CPU batches. step: global step of the first batch. where: names the run.

    Raises:
        NonFiniteLossError: a NaN/inf loss.
    """
    model, spec, device = setup.model, setup.spec, setup.device
    kind = get_kind(spec.kind)
    losses: list[float] = []
    lr = 0.0
    for batch in loader:
        if setup.prepare is not None:
            batch = setup.prepare(batch)
        batch = to_device(batch, device)
        lr = setup.lr_at(step)
        value, _ = train_step(setup.optimizer, lr, lambda: model(batch["x"], batch.get("pos")),
                              lambda out: kind.loss(spec, out, batch), device, step, where)
        losses.append(value)
        step += 1
    return EpochResult(losses, lr, step)


@torch.no_grad()
def evaluate(model: nn.Module, ds, spec: Any, device: torch.device, batch_size: int = 4,
             spacing: Sequence[float] | None = None, n_examples: int = 0, fast: bool = False
             ) -> tuple[dict[str, float], list[dict[str, Any]], dict[str, np.ndarray], float]:
    """Score ``model`` on a dataset.

    Args:
        model: task model (put in eval mode here). ds: task dataset. spec: TaskSpec. device: torch device.
        batch_size: inference batch size (default 4).
        spacing: (z, y, x) mm for distance metrics (default: the item's ``spacing`` or 1 mm).
        n_examples: cases whose input/target/prediction slice goes into ``examples`` (default 0).
        fast: skip expensive secondary metrics (SSIM, HD95) unless primary (per-epoch validation only
            needs the primary metric). Default False.

    Returns:
        ``(aggregated scores, per-case score dicts, examples, mean loss)``.
    """
    kind = get_kind(spec.kind)
    model.eval()
    losses: list[float] = []
    ids: list[str] = []
    state = kind.new_state()
    for batch in DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate):
        batch = to_device(batch, device)
        with autocast_context(device):
            out = model(batch["x"], batch.get("pos"))
        out = out.float()
        losses.append(float(kind.loss(spec, out, batch)) * len(batch["y"]))
        case_ids = batch.get("case_id", [str(len(ids) + i) for i in range(len(batch["y"]))])
        ids.extend(case_ids)
        kind.add_batch(state, spec, out, batch, case_ids, spacing, fast, n_examples)
    mean_loss = float(np.sum(losses) / max(1, len(ids)))
    scores, per_case, examples = kind.finish(state, spec, ids, n_examples)
    return scores, per_case, examples, mean_loss
