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
* The validation split is scored with the task's primary metric before any update (step 0) and after the
  optimiser steps of :func:`~transferlimits.training.eval_plan.eval_steps`: ``recipe.evals_per_run`` evenly
  spaced steps and the last step of every epoch (so >= ``evals_per_run`` evaluations after step 0; with fewer
  steps than that, every step). With ``recipe.eval_subset`` > 0 the intermediate evaluations score a fixed
  subset of the validation split and step 0 / the epoch ends the full split and the subset (the cost measured in
  :mod:`~transferlimits.training.eval_plan`). The weights of the best full-split evaluation after step 0 (a CPU
  copy) are evaluated on the test split and on every further split of ``data`` (e.g. ``real``);
  ``best_step`` / ``best_epoch`` say where it was. The loop: :mod:`~transferlimits.training.finetune_fit`.
* The ``curve`` holds one dict per evaluation (:mod:`~transferlimits.training.finetune_fit`): fractional
  ``epoch`` (0 before training), ``step``, ``train_loss`` (mean since the previous evaluation; None at step 0),
  ``val_loss``, ``val_metric``, ``lr`` (0 at step 0), the cumulative training ``wall_s`` / ``device_s``
  (validation included; 0 at step 0: the clock starts at the common starting point), ``val_s`` (validation
  seconds inside ``wall_s``) and, with a subset, ``val_metric_subset`` / ``val_loss_subset``.
* A NaN/inf loss raises :class:`~transferlimits.training.loop.NonFiniteLossError` naming task, model, init,
  epoch and step. bf16 autocast on CUDA only; CPU runs are fp32 and deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from transferlimits.config import FinetuneRecipe
from transferlimits.runtime import seed_everything
from transferlimits.training.engine import EpochSetup, evaluate
from transferlimits.training.finetune_fit import RunParts, fit
from transferlimits.training.finetune_setup import (
    INITS,
    backbone_lr_scales,
    build_finetune_model,
    describe_groups,
    finetune_groups,
    make_augment,
    start_at_train_median,
    train_loader,
)
from transferlimits.training.loop import warmup_cosine_lr

__all__ = ["INITS", "FinetuneOptions", "FinetuneResult", "finetune", "backbone_lr_scales", "describe_groups",
           "start_at_train_median"]

#: test cases whose predictions are kept in ``FinetuneResult.examples``.
N_EXAMPLES = 2


@dataclass
class FinetuneResult:
    """What :func:`finetune` returns.

    Attributes:
        model: the task model holding the best-on-validation weights (eval mode).
        curve: one dict per evaluation (see the module docstring).
        best_epoch: fractional epoch (``best_step / steps per epoch``, > 0) of the best validation primary
            metric among the evaluations after step 0.
        best_val: that metric value.
        test_scores: aggregated test scores (every metric of the task).
        per_case: per-case test score dicts (with ``case_id``).
        extra_scores: ``{split name: aggregated scores}`` for the further splits of ``data``.
        examples: a few test predictions as NumPy arrays (for figures).
        train_seconds: wall seconds of training (all epochs, validation included).
        lr_groups: the optimiser groups, ``{"name", "lr" (peak), "weight_decay", "n_params"}`` each.
        best_step: optimiser steps before the best evaluation (>= 1).
    """

    model: nn.Module
    curve: list[dict[str, float]]
    best_epoch: float
    best_val: float
    test_scores: dict[str, float]
    per_case: list[dict[str, Any]]
    extra_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    examples: dict[str, np.ndarray] = field(default_factory=dict)
    train_seconds: float = 0.0
    lr_groups: list[dict[str, Any]] = field(default_factory=list)
    best_step: int = 0


@dataclass(frozen=True)
class FinetuneOptions:
    """How :func:`finetune` runs, beyond the recipe (each may also be passed to it as a keyword).

    Attributes:
        seed: seeds the init of the head, the shuffling and the augmentation (default 0).
        progress: show a tqdm bar over epochs (default True).
        spacing: (z, y, x) mm voxel spacing for distance metrics (HD95); default None: the item's ``spacing``
            or 1 mm.
    """

    seed: int = 0
    progress: bool = True
    spacing: Sequence[float] | None = None


def _options(options: FinetuneOptions | None, keywords: dict[str, Any]) -> FinetuneOptions:
    """``options`` (default: the defaults) with the keywords applied (TypeError for a keyword that is no field)."""
    return replace(options if options is not None else FinetuneOptions(), **keywords)


def _splits(init: str, data: Mapping[str, Dataset]) -> tuple[Dataset, Dataset, Dataset]:
    """(train, val, test) of ``data`` after checking ``init`` and the splits."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; valid: {list(INITS)}")
    missing = [split for split in ("train", "val", "test") if split not in data]
    if missing:
        raise ValueError(f"data lacks split(s) {missing}; got {sorted(data)}")
    if len(data["train"]) == 0:
        raise ValueError("data['train'] is empty")
    return data["train"], data["val"], data["test"]


def _schedule(recipe: FinetuneRecipe, n_batches: int) -> Callable[[int], float]:
    """Global step -> lr: per-iteration warmup over ``warmup_epochs`` + cosine to 0 over all epochs."""
    steps_per_epoch = max(1, n_batches)
    total = steps_per_epoch * int(recipe.epochs)
    warmup = steps_per_epoch * int(recipe.warmup_epochs)
    return lambda s: warmup_cosine_lr(s, total, warmup, recipe.lr)


def finetune(
    spec: Any,
    model_name: str,
    encoder: nn.Module,
    init: str,
    data: Mapping[str, Dataset],
    recipe: FinetuneRecipe,
    device: torch.device | str,
    options: FinetuneOptions | None = None,
    **keywords: Any,
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
        options: :class:`FinetuneOptions` (``seed``, ``progress``, ``spacing``); default: their defaults.
        **keywords: ``seed``, ``progress`` and/or ``spacing`` (override ``options``; the former signature).

    Raises:
        ValueError: unknown ``init``, a missing split, or an empty training set.
        TypeError: a keyword other than ``seed``, ``progress``, ``spacing``.
        NonFiniteLossError: a NaN/inf training loss.
    """
    opts = _options(options, keywords)
    train_ds, val_ds, test_ds = _splits(init, data)
    device = torch.device(device)
    seed_everything(opts.seed)
    model = build_finetune_model(spec, model_name, encoder, init, recipe, train_ds)
    model.to(device)
    groups = finetune_groups(model, model_name, recipe, init)
    optimizer = torch.optim.AdamW(groups, lr=recipe.lr)
    bs = int(recipe.batch_size)
    loader = train_loader(spec, train_ds, bs, opts.seed)
    setup = EpochSetup(model, optimizer, spec, device, _schedule(recipe, len(loader)),
                       prepare=make_augment(spec, recipe, opts.seed))
    run = RunParts(setup, bs, opts.spacing, init == "linear_probe",
                   f"fine-tuning {spec.name}/{model_name} (init={init}")
    epochs = tqdm(range(1, int(recipe.epochs) + 1), desc=f"{spec.name}/{model_name}/{init}", leave=False,
                  disable=not opts.progress)
    fitted = fit(run, loader, val_ds, epochs, int(recipe.evals_per_run), int(recipe.eval_subset))
    model.load_state_dict(fitted.best_state)
    model.eval()
    test_scores, per_case, examples, _ = evaluate(model, test_ds, spec, device, bs, opts.spacing,
                                                  n_examples=N_EXAMPLES)
    extra = {name: evaluate(model, ds, spec, device, bs, opts.spacing, n_examples=0)[0]
             for name, ds in data.items() if name not in ("train", "val", "test")}
    return FinetuneResult(model=model, curve=fitted.curve, best_epoch=fitted.best_epoch,
                          best_val=float(fitted.best_val), test_scores=test_scores, per_case=per_case,
                          extra_scores=extra, examples=examples, train_seconds=fitted.curve[-1]["wall_s"],
                          lr_groups=describe_groups(groups, recipe.lr), best_step=fitted.best_step)
