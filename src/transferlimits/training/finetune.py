"""Fine-tuning one encoder on one task: ``pretrained``, ``scratch`` or ``linear_probe`` (STUDY §4).

Recipe (identical for the pretrained and the scratch init of one encoder; from ``FinetuneRecipe``):

* AdamW, per-iteration linear warmup (``warmup_epochs``) + cosine decay to 0 (``loop.warmup_cosine_lr``);
  no weight decay on 1-D parameters; the head runs at ``lr``.
* Backbone lr below the head's: ``profound`` layer-wise decay, scale ``layer_decay ** (num_layers + 1 - id)``
  with the encoder's ``layer_id``; ``provicnet`` a flat ``backbone_lr_scale`` (0.05, upstream).
* ``linear_probe``: the encoder is frozen (``requires_grad=False``, eval mode) and only the head trains.
* Losses: classification ``CrossEntropyLoss``; segmentation MONAI ``DiceCELoss(sigmoid=True)`` (+ 0.4 x the
  auxiliary head's loss for the UperNet); dense regression an L1 loss averaged over the voxels of the body
  mask (``masks["body"]``; the whole crop when no body mask is given), + 0.4 x aux; scalar regression MSE.
* Augmentation (``recipe.augment``): :func:`~transferlimits.training.augment.augment_batch`.
* After every epoch the validation split is scored with the task's primary metric; the best epoch's weights
  (a CPU copy of the state dict) are evaluated on the test split and on every ``extra_test`` split.
* The ``curve`` holds per epoch: ``epoch`` (1-based), ``train_loss``, ``val_loss``, ``val_metric``, ``lr``
  (at the epoch's last step), and the cumulative training ``wall_s`` / ``device_s`` up to that epoch.
* A NaN/inf loss raises :class:`~transferlimits.training.loop.NonFiniteLossError` naming task, model, init,
  epoch and step. bf16 autocast on CUDA only; CPU runs are fp32 and deterministic for a given seed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from transferlimits.config import FinetuneRecipe
from transferlimits.models.heads import build_task_model
from transferlimits.runtime import seed_everything
from transferlimits.training.augment import augment_batch
from transferlimits.training.loop import (
    Timer,
    autocast_context,
    check_finite,
    param_groups,
    set_lr,
    warmup_cosine_lr,
)
from transferlimits.training.task_eval import collate, evaluate, is_dense, task_loss, to_device

__all__ = ["INITS", "FinetuneResult", "finetune", "backbone_lr_scales"]

INITS: tuple[str, ...] = ("pretrained", "scratch", "linear_probe")


@dataclass
class FinetuneResult:
    """What :func:`finetune` returns.

    Attributes:
        model: the task model holding the best-on-validation weights (eval mode).
        curve: per-epoch dicts (see the module docstring).
        best_epoch: 1-based epoch of the best validation primary metric.
        best_val: that metric value.
        test_scores: aggregated test scores (every metric of the task).
        per_case: per-case test score dicts (with ``case_id``).
        extra_scores: ``{split name: aggregated scores}`` for ``extra_test``.
        examples: a few test predictions as NumPy arrays (for figures).
        train_seconds: wall seconds of training (all epochs, validation included).
    """

    model: nn.Module
    curve: list[dict[str, float]]
    best_epoch: int
    best_val: float
    test_scores: dict[str, float]
    per_case: list[dict[str, Any]]
    extra_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    examples: dict[str, np.ndarray] = field(default_factory=dict)
    train_seconds: float = 0.0


def backbone_lr_scales(model: nn.Module, model_name: str, recipe: FinetuneRecipe) -> dict[str, float]:
    """``{parameter name: lr multiplier}`` for the ``encoder.*`` parameters of a task model.

    Args:
        model: a task model with an ``encoder`` attribute.
        model_name: ``"profound"`` (layer-wise decay via ``encoder.layer_id``) or ``"provicnet"`` (flat
            ``recipe.backbone_lr_scale``).
        recipe: the fine-tuning recipe.
    """
    enc = model.encoder
    scales: dict[str, float] = {}
    for name, p in model.named_parameters():
        if not name.startswith("encoder.") or not p.requires_grad:
            continue
        if model_name == "profound" and hasattr(enc, "layer_id"):
            scales[name] = float(recipe.layer_decay ** (enc.num_layers + 1 - enc.layer_id(name)))
        else:
            scales[name] = float(recipe.backbone_lr_scale)
    return scales


def _primary(scores: dict[str, float], spec: Any) -> float:
    if spec.primary_metric not in scores:
        raise ValueError(f"primary metric {spec.primary_metric!r} of task {spec.name!r} not in scores {sorted(scores)}")
    return float(scores[spec.primary_metric])


def _better(value: float, best: float | None, higher: bool) -> bool:
    if best is None:
        return True
    if not np.isfinite(value):
        return False
    if not np.isfinite(best):
        return True
    return value > best if higher else value < best


def finetune(
    spec: Any,
    model_name: str,
    encoder: nn.Module,
    init: str,
    train_ds: Dataset,
    val_ds: Dataset,
    test_ds: Dataset,
    recipe: FinetuneRecipe,
    device: torch.device | str,
    seed: int = 0,
    progress: bool = True,
    extra_test: dict[str, Dataset] | None = None,
    width: int | None = None,
    spacing: Sequence[float] | None = None,
    n_examples: int = 2,
) -> FinetuneResult:
    """Fine-tune ``encoder`` + the task head and evaluate the best-on-validation model.

    Args:
        spec: the :class:`~transferlimits.data.tasks.TaskSpec` (``name``, ``kind``, ``out_channels``,
            ``primary_metric``, ``higher_is_better``).
        model_name: ``"profound"`` or ``"provicnet"``.
        encoder: the encoder to start from (copied, never modified): pretrained weights, or a fresh init for
            ``scratch`` (same architecture and seed -> identical init).
        init: ``"pretrained"``, ``"scratch"`` or ``"linear_probe"`` (frozen encoder).
        train_ds, val_ds, test_ds: task datasets (items ``x``, ``pos``, ``y``, ``masks``, ``case_id``).
        recipe: :class:`~transferlimits.config.FinetuneRecipe` (epochs, batch size, lr, decay, augment).
        device: torch device.
        seed: seeds the init of the head, the shuffling and the augmentation (default 0).
        progress: show a tqdm bar over epochs (default True).
        extra_test: optional ``{name: dataset}`` scored with the best weights (e.g. ``{"real": ds}``).
        width: decoder width for dense heads (None = published widths).
        spacing: (z, y, x) mm voxel spacing for distance metrics (HD95); default: the item's ``spacing``
            or 1 mm.
        n_examples: test cases kept in ``examples`` (default 2).

    Raises:
        ValueError: unknown ``init``, or an empty training set.
        NonFiniteLossError: a NaN/inf training loss.
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; valid: {list(INITS)}")
    if len(train_ds) == 0:
        raise ValueError("train_ds is empty")
    device = torch.device(device)
    seed_everything(seed)
    encoder = copy.deepcopy(encoder)
    dense = is_dense(spec)
    out_size = tuple(np.shape(train_ds[0]["y"]))[-3:] if dense else None
    model = build_task_model(model_name, encoder, spec, width=width, out_size=out_size,
                             slice_step=int(getattr(train_ds, "slice_step", 1)))
    frozen = init == "linear_probe"
    if frozen:
        for p in model.encoder.parameters():
            p.requires_grad_(False)
    model.to(device)
    groups = param_groups(model, recipe.weight_decay, backbone_lr_scales(model, model_name, recipe))
    optimizer = torch.optim.AdamW(groups, lr=recipe.lr)

    bs = int(recipe.batch_size)
    drop_last = len(train_ds) > bs and len(train_ds) % bs == 1  # BatchNorm needs > 1 sample per batch
    loader = DataLoader(train_ds, batch_size=bs, shuffle=True, drop_last=drop_last, collate_fn=collate,
                        generator=torch.Generator().manual_seed(seed))
    steps_per_epoch = max(1, len(loader))
    total = steps_per_epoch * int(recipe.epochs)
    warmup = steps_per_epoch * int(recipe.warmup_epochs)
    aug_gen = torch.Generator().manual_seed(seed + 1)
    timer = Timer(device)
    where = f"fine-tuning {spec.name}/{model_name} (init={init}"
    curve: list[dict[str, float]] = []
    best_state, best_val, best_epoch = None, None, 0
    step = 0
    epochs = range(1, int(recipe.epochs) + 1)
    if progress:
        from tqdm.auto import tqdm

        epochs = tqdm(epochs, desc=f"{spec.name}/{model_name}/{init}", leave=False)
    for epoch in epochs:
        losses = []
        lr = 0.0
        with timer.section():
            model.train()
            if frozen:
                model.encoder.eval()
            for batch in loader:
                if recipe.augment:
                    batch = augment_batch(batch, aug_gen, dense_target=dense)
                batch = to_device(batch, device)
                lr = warmup_cosine_lr(step, total, warmup, recipe.lr)
                set_lr(optimizer, lr)
                with autocast_context(device):
                    out = model(batch["x"], batch.get("pos"))
                loss = task_loss(spec, out, batch)
                losses.append(check_finite(loss, step=step, where=f"{where}, epoch {epoch})"))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
            val_scores, _, _, val_loss = evaluate(model, val_ds, spec, device, bs, spacing, n_examples=0,
                                                   fast=True)
        val_metric = _primary(val_scores, spec)
        curve.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss,
                      "val_metric": val_metric, "lr": lr, "wall_s": timer.wall, "device_s": timer.device_seconds})
        if _better(val_metric, best_val, bool(spec.higher_is_better)):
            best_val, best_epoch = val_metric, epoch
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        if progress:
            epochs.set_postfix(loss=f"{curve[-1]['train_loss']:.4f}", val=f"{val_metric:.4f}")
    model.load_state_dict(best_state)
    model.eval()
    test_scores, per_case, examples, _ = evaluate(model, test_ds, spec, device, bs, spacing, n_examples=n_examples)
    extra = {name: evaluate(model, ds, spec, device, bs, spacing, n_examples=0)[0]
             for name, ds in (extra_test or {}).items()}
    return FinetuneResult(model=model, curve=curve, best_epoch=best_epoch, best_val=float(best_val),
                          test_scores=test_scores, per_case=per_case, extra_scores=extra, examples=examples,
                          train_seconds=timer.wall)
