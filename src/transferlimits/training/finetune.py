"""Fine-tuning one encoder on one task: ``pretrained``, ``scratch`` or ``linear_probe`` (STUDY §4).

Recipe (identical for the pretrained and the scratch init of one encoder; from ``FinetuneRecipe``):

* AdamW, per-iteration linear warmup (``warmup_epochs``) + cosine decay to 0 (``loop.warmup_cosine_lr``);
  no weight decay on 1-D parameters; the head runs at ``lr``.
* Backbone lr below the head's for a PRETRAINED encoder only (STUDY §4/§5), from the model adapter: ProFound
  layer-wise decay, scale ``layer_decay ** (num_layers + 1 - id)`` with the encoder's ``layer_id``; ProViCNet a
  flat ``backbone_lr_scale`` (0.05, upstream). ``scratch`` trains every parameter at the head's lr. The
  optimiser groups are recorded in ``FinetuneResult.lr_groups``.
* ``linear_probe``: the encoder is frozen (``requires_grad=False``, eval mode) and only the head trains.
* Losses, scores and the head choice come from the task kind (:mod:`transferlimits.tasks.kinds`);
  the epoch loop and the evaluation from :mod:`transferlimits.training.engine`.
* Augmentation (``recipe.augment``): :func:`~transferlimits.training.augment.augment_batch`.
* The validation split is scored with the task's primary metric before any update (epoch 0) and after every
  epoch; the best trained epoch's weights (a CPU copy of the state dict; epoch >= 1) are evaluated on the test split
  and on every further split of ``data`` (e.g. ``real``).
* The ``curve`` holds per epoch: ``epoch`` (0 = before training, ``train_loss`` None and ``lr`` 0 there),
  ``train_loss``, ``val_loss``, ``val_metric``, ``lr`` (at the epoch's last step), and the cumulative training
  ``wall_s`` / ``device_s`` up to that epoch (0 at epoch 0: the clock starts at the common starting point).
* A NaN/inf loss raises :class:`~transferlimits.training.loop.NonFiniteLossError` naming task, model, init,
  epoch and step. bf16 autocast on CUDA only; CPU runs are fp32 and deterministic for a given seed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler
from tqdm.auto import tqdm

from transferlimits.config import FinetuneRecipe
from transferlimits.data.views import in_input_units
from transferlimits.models.heads import build_task_model
from transferlimits.models.registry import get_model
from transferlimits.runtime import seed_everything
from transferlimits.tasks.kinds import get_kind
from transferlimits.training.augment import augment_batch
from transferlimits.training.engine import collate, evaluate, train_epoch
from transferlimits.training.loop import Timer, param_groups, warmup_cosine_lr

__all__ = ["INITS", "FinetuneResult", "finetune", "backbone_lr_scales", "describe_groups", "start_at_train_median"]

INITS: tuple[str, ...] = ("pretrained", "scratch", "linear_probe")
#: test cases whose predictions are kept in ``FinetuneResult.examples``.
N_EXAMPLES = 2


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
        extra_scores: ``{split name: aggregated scores}`` for the further splits of ``data``.
        examples: a few test predictions as NumPy arrays (for figures).
        train_seconds: wall seconds of training (all epochs, validation included).
        lr_groups: the optimiser groups, ``{"name", "lr" (peak), "weight_decay", "n_params"}`` each.
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
    lr_groups: list[dict[str, Any]] = field(default_factory=list)


def start_at_train_median(model: nn.Module, train_ds: Dataset) -> float | None:
    """Make a residual regression head start at the train median of its target (returned), not at the input.

    A residual head outputs ``gain * src + bias + correction`` with the correction zero at initialisation
    (:mod:`transferlimits.models.fullres`). For a same-modality restoration target ``src`` is in the target's
    units, so ``gain = 1, bias = 0`` starts at the identity baseline. For a translation target in a fixed
    physical unit (ADC in 10^-3 mm^2/s from a T2W z-score) that start is far from any sensible output, and the
    two learnt scalars move ~lr per step: in the ``cpu`` profile's 48 steps every modality-translation run ended
    worse than the constant train median. Here ``gain = 0`` and ``bias`` = the median of the training targets
    inside the body mask, so the model starts at the train-median baseline and learns from the input from there.
    Nothing happens (None) for a model without a residual full-resolution head.
    """
    head = getattr(model, "full_res", None)
    if head is None or not getattr(head, "residual", False):
        return None
    values = []
    for i in range(len(train_ds)):
        item = train_ds[i]
        y = np.asarray(item["y"], np.float32)
        body = np.asarray(item.get("masks", {}).get("body", np.ones_like(y))) > 0
        values.append(y[body] if body.any() else y.ravel())
    median = float(np.median(np.concatenate(values)))
    with torch.no_grad():
        head.gain.zero_()
        head.bias.fill_(median)
    return median


def backbone_lr_scales(model: nn.Module, model_name: str, recipe: FinetuneRecipe,
                       init: str = "pretrained") -> dict[str, float]:
    """``{parameter name: lr multiplier}`` for the ``encoder.*`` parameters of a task model: the model
    adapter's ``lr_scales`` (ProFound: layer-wise decay via ``encoder.layer_id``; ProViCNet: the flat
    ``recipe.backbone_lr_scale``) for a pretrained encoder; ``{}`` (every parameter at the head's lr) for
    ``init="scratch"`` (STUDY §4: the reduced backbone lr protects pretrained features only).

    Args:
        model: a task model with an ``encoder`` attribute.
        model_name: a registered model name.
        recipe: the fine-tuning recipe.
        init: ``"pretrained"`` (default), ``"scratch"`` or ``"linear_probe"`` (frozen: no trainable encoder).
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; valid: {list(INITS)}")
    return {} if init == "scratch" else get_model(model_name).lr_scales(model, recipe)


def describe_groups(groups: list[dict[str, Any]], lr: float) -> list[dict[str, Any]]:
    """JSON records of AdamW parameter groups (``training.loop.param_groups``): name, peak lr, decay, size.

    Args:
        groups: the groups (``params``, ``names``, ``weight_decay``, ``lr_scale``). lr: the head's peak lr.

    Returns:
        ``[{"name", "lr", "weight_decay", "n_params"}]``; the name says which part (encoder / head / both),
        whether it is decayed and its lr multiplier, e.g. ``"encoder/decay/x0.05"``.
    """
    out = []
    for g in groups:
        parts = {n.split(".")[0] if n.startswith("encoder.") else "head" for n in g["names"]}
        part = "+".join(sorted(parts))
        decay = "decay" if g["weight_decay"] > 0 else "no_decay"
        out.append({"name": f"{part}/{decay}/x{g['lr_scale']:.4g}", "lr": float(lr) * float(g["lr_scale"]),
                    "weight_decay": float(g["weight_decay"]), "n_params": int(sum(p.numel() for p in g["params"]))})
    return out


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
    data: Mapping[str, Dataset],
    recipe: FinetuneRecipe,
    device: torch.device | str,
    seed: int = 0,
    progress: bool = True,
    spacing: Sequence[float] | None = None,
) -> FinetuneResult:
    """Fine-tune ``encoder`` + the task head and evaluate the best-on-validation model.

    Args:
        spec: the :class:`~transferlimits.tasks.registry.TaskSpec` (``name``, ``kind``, ``out_channels``,
            ``primary_metric``, ``higher_is_better``).
        model_name: a registered model name (see ``transferlimits.models.get_model``).
        encoder: the encoder to start from (copied, never modified): pretrained weights, or a fresh init for
            ``scratch`` (same architecture and seed -> identical init).
        init: ``"pretrained"``, ``"scratch"`` or ``"linear_probe"`` (frozen encoder).
        data: ``{"train", "val", "test": task dataset, + extra test splits}`` (items ``x``, ``pos``, ``y``,
            ``masks``, ``case_id``); every further split (e.g. ``"real"``) is scored with the best weights.
            A slice dataset's ``slice_step`` attribute sets the stack step of the dense slice head.
        recipe: :class:`~transferlimits.config.FinetuneRecipe` (epochs, batch size, lr, decay, augment,
            ``decoder_width`` of dense heads: None = published widths).
        device: torch device.
        seed: seeds the init of the head, the shuffling and the augmentation (default 0).
        progress: show a tqdm bar over epochs (default True).
        spacing: (z, y, x) mm voxel spacing for distance metrics (HD95); default: the item's ``spacing``
            or 1 mm.

    Raises:
        ValueError: unknown ``init``, a missing split, or an empty training set.
        NonFiniteLossError: a NaN/inf training loss.
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; valid: {list(INITS)}")
    missing = [split for split in ("train", "val", "test") if split not in data]
    if missing:
        raise ValueError(f"data lacks split(s) {missing}; got {sorted(data)}")
    train_ds, val_ds, test_ds = data["train"], data["val"], data["test"]
    if len(train_ds) == 0:
        raise ValueError("data['train'] is empty")
    device = torch.device(device)
    seed_everything(seed)
    encoder = copy.deepcopy(encoder)
    if recipe.channels_last_stages and hasattr(encoder, "channels_last_stages"):  # memory layout only (speed)
        encoder.channels_last_stages = int(recipe.channels_last_stages)
    dense = get_kind(spec.kind).dense
    out_size = tuple(np.shape(train_ds[0]["y"]))[-3:] if dense else None
    model = build_task_model(model_name, encoder, spec, width=recipe.decoder_width, out_size=out_size,
                             slice_step=int(getattr(train_ds, "slice_step", 1)),
                             full_res=bool(recipe.full_res_skip), residual=bool(recipe.residual))
    if not in_input_units(spec):  # translation: start at the train median, not at the input's z-score
        start_at_train_median(model, train_ds)
    frozen = init == "linear_probe"
    if frozen:
        for p in model.encoder.parameters():
            p.requires_grad_(False)
    model.to(device)
    groups = param_groups(model, recipe.weight_decay, backbone_lr_scales(model, model_name, recipe, init),
                          no_decay_names=get_model(model_name).no_decay_names)
    optimizer = torch.optim.AdamW(groups, lr=recipe.lr)

    bs = int(recipe.batch_size)
    drop_last = len(train_ds) > bs and len(train_ds) % bs == 1  # BatchNorm needs > 1 sample per batch
    weights = get_kind(spec.kind).train_weights(train_ds)  # None: each case once per epoch, shuffled
    draws = torch.Generator().manual_seed(seed)
    sampler = None if weights is None else WeightedRandomSampler(
        torch.as_tensor(weights, dtype=torch.double), num_samples=len(train_ds), replacement=True, generator=draws)
    loader = DataLoader(train_ds, batch_size=bs, shuffle=sampler is None, sampler=sampler, drop_last=drop_last,
                        collate_fn=collate, generator=draws if sampler is None else None)
    steps_per_epoch = max(1, len(loader))
    total = steps_per_epoch * int(recipe.epochs)
    warmup = steps_per_epoch * int(recipe.warmup_epochs)
    aug_gen = torch.Generator().manual_seed(seed + 1)
    follows = in_input_units(spec)  # a target in its input's units moves with the input's intensity draw
    augment = ((lambda batch: augment_batch(batch, aug_gen, dense_target=dense, target_follows_input=follows))
               if recipe.augment else None)
    timer = Timer(device)
    where = f"fine-tuning {spec.name}/{model_name} (init={init}"
    val0, _, _, val_loss0 = evaluate(model, val_ds, spec, device, bs, spacing, n_examples=0, fast=True)
    # epoch 0: the common starting point, before any update (recorded; not a candidate for the best weights)
    curve: list[dict[str, Any]] = [{"epoch": 0, "train_loss": None, "val_loss": val_loss0,
                                    "val_metric": _primary(val0, spec), "lr": 0.0, "wall_s": 0.0, "device_s": 0.0}]
    best_state, best_val, best_epoch = None, None, 0
    step = 0
    epochs = tqdm(range(1, int(recipe.epochs) + 1), desc=f"{spec.name}/{model_name}/{init}", leave=False,
                  disable=not progress)
    for epoch in epochs:
        with timer.section():
            model.train()
            if frozen:
                model.encoder.eval()
            ran = train_epoch(model, loader, optimizer, spec, device,
                              lambda s: warmup_cosine_lr(s, total, warmup, recipe.lr), step,
                              f"{where}, epoch {epoch})", prepare=augment)
            step = ran.step
            val_scores, _, _, val_loss = evaluate(model, val_ds, spec, device, bs, spacing, n_examples=0,
                                                   fast=True)
        val_metric = _primary(val_scores, spec)
        curve.append({"epoch": epoch, "train_loss": float(np.mean(ran.losses)), "val_loss": val_loss,
                      "val_metric": val_metric, "lr": ran.lr, "wall_s": timer.wall,
                      "device_s": timer.device_seconds})
        if _better(val_metric, best_val, bool(spec.higher_is_better)):
            best_val, best_epoch = val_metric, epoch
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        epochs.set_postfix(loss=f"{curve[-1]['train_loss']:.4f}", val=f"{val_metric:.4f}")
    model.load_state_dict(best_state)
    model.eval()
    test_scores, per_case, examples, _ = evaluate(model, test_ds, spec, device, bs, spacing, n_examples=N_EXAMPLES)
    extra = {name: evaluate(model, ds, spec, device, bs, spacing, n_examples=0)[0]
             for name, ds in data.items() if name not in ("train", "val", "test")}
    return FinetuneResult(model=model, curve=curve, best_epoch=best_epoch, best_val=float(best_val),
                          test_scores=test_scores, per_case=per_case, extra_scores=extra, examples=examples,
                          train_seconds=timer.wall, lr_groups=describe_groups(groups, recipe.lr))
