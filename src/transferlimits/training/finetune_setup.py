"""What a fine-tuning run is built from: the task model, its optimiser groups, the training loader, augmentation.

Split from :mod:`transferlimits.training.finetune` (which runs the epochs); the recipe is described there.
Every helper here draws random numbers in the order :func:`~transferlimits.training.finetune.finetune` has
always drawn them (model init after ``seed_everything``, then the loader's generator, then the augmentation's).
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from transferlimits.config import FinetuneRecipe
from transferlimits.data.views import in_input_units
from transferlimits.models.ablation import ZeroedEncoder
from transferlimits.models.fullres import start_output_at
from transferlimits.models.heads import build_task_model
from transferlimits.models.registry import get_model
from transferlimits.tasks.kinds import get_kind
from transferlimits.training.augment import augment_batch
from transferlimits.training.engine import collate
from transferlimits.training.loop import param_groups

__all__ = ["INITS", "start_at_train_median", "backbone_lr_scales", "describe_groups", "build_finetune_model",
           "finetune_groups", "train_loader", "make_augment"]

#: ``ablated``: the scratch encoder behind a :class:`~transferlimits.models.ablation.ZeroedEncoder` (STUDY §5.1).
INITS: tuple[str, ...] = ("pretrained", "scratch", "linear_probe", "ablated")


def start_at_train_median(model: nn.Module, train_ds: Dataset) -> float | None:
    """Make a translation head start at the train median of its target (returned), not at zero.

    A translation target is in a fixed physical unit (ADC in 10^-3 mm^2/s from a T2W z-score) and gets no identity
    residual (:mod:`transferlimits.models.fullres`): its head's last layer starts with zero weights and its bias at
    the median of the training targets inside the body mask, so the model starts at the train-median baseline and
    learns from the encoder's features from there. Nothing happens (None) for a model without an
    ``output_layer()`` (classification, scalar heads).

    Args:
        model: a dense task model (its output layer is changed in place).
        train_ds: the training dataset (items ``y`` and optionally ``masks["body"]``).
    """
    layer_of = getattr(model, "output_layer", None)
    if layer_of is None:
        return None
    values = []
    for i in range(len(train_ds)):
        item = train_ds[i]
        y = np.asarray(item["y"], np.float32)
        body = np.asarray(item.get("masks", {}).get("body", np.ones_like(y))) > 0
        values.append(y[body] if body.any() else y.ravel())
    median = float(np.median(np.concatenate(values)))
    start_output_at(layer_of(), median)
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

    Raises:
        ValueError: an unknown ``init``.
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; valid: {list(INITS)}")
    return {} if init in ("scratch", "ablated") else get_model(model_name).lr_scales(model, recipe)


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


def build_finetune_model(spec: Any, model_name: str, encoder: nn.Module, init: str, recipe: FinetuneRecipe,
                         train_ds: Dataset) -> nn.Module:
    """The task model on a copy of ``encoder`` (the head initialised from the global RNG; seed it first).

    Args:
        spec: the task's ``TaskSpec``. model_name: a registered model name. encoder: copied, never modified.
        init: ``"pretrained"``, ``"scratch"``, ``"linear_probe"`` (the copied encoder is frozen) or ``"ablated"``
            (the head on a :class:`~transferlimits.models.ablation.ZeroedEncoder`: the encoder's output is zeros).
        recipe: the fine-tuning recipe (``decoder_width``, ``full_res_skip``, ``residual``, ``light_decoder``,
            ``channels_last_stages``). train_ds: the training split (target size, slice step, train median).
    """
    encoder = copy.deepcopy(encoder)
    if recipe.channels_last_stages and hasattr(encoder, "channels_last_stages"):  # memory layout only (speed)
        encoder.channels_last_stages = int(recipe.channels_last_stages)
    dense = get_kind(spec.kind).dense
    out_size = tuple(np.shape(train_ds[0]["y"]))[-3:] if dense else None
    model = build_task_model(model_name, encoder, spec, width=recipe.decoder_width, out_size=out_size,
                             slice_step=int(getattr(train_ds, "slice_step", 1)),
                             full_res=bool(recipe.full_res_skip), residual=bool(recipe.residual),
                             light=bool(recipe.light_decoder))
    if recipe.residual and get_kind(spec.kind).regression and not in_input_units(spec):
        start_at_train_median(model, train_ds)  # translation: start at the train median (no identity residual)
    if init == "linear_probe":
        for p in model.encoder.parameters():
            p.requires_grad_(False)
    if init == "ablated":  # after the head's init, so the ablated head draws the same numbers as scratch's
        model.encoder = ZeroedEncoder(model.encoder)
    return model


def finetune_groups(model: nn.Module, model_name: str, recipe: FinetuneRecipe, init: str) -> list[dict[str, Any]]:
    """AdamW parameter groups of a task model (``training.loop.param_groups`` with the adapter's lr scales).

    Args:
        model: the task model. model_name: a registered model name. recipe: the fine-tuning recipe.
        init: the init (``scratch`` trains every parameter at the head's lr).
    """
    return param_groups(model, recipe.weight_decay, backbone_lr_scales(model, model_name, recipe, init),
                        no_decay_names=get_model(model_name).no_decay_names)


def train_loader(spec: Any, train_ds: Dataset, batch_size: int, seed: int) -> DataLoader:
    """The shuffled (or kind-weighted) training loader; its own generator is seeded with ``seed``.

    Args:
        spec: the task's ``TaskSpec`` (its kind may weight the cases). train_ds: the training split.
        batch_size: the batch size (a last batch of one sample is dropped: BatchNorm). seed: the draws' seed.
    """
    bs = int(batch_size)
    drop_last = len(train_ds) > bs and len(train_ds) % bs == 1  # BatchNorm needs > 1 sample per batch
    weights = get_kind(spec.kind).train_weights(train_ds)  # None: each case once per epoch, shuffled
    draws = torch.Generator().manual_seed(seed)
    sampler = None if weights is None else WeightedRandomSampler(
        torch.as_tensor(weights, dtype=torch.double), num_samples=len(train_ds), replacement=True, generator=draws)
    return DataLoader(train_ds, batch_size=bs, shuffle=sampler is None, sampler=sampler, drop_last=drop_last,
                      collate_fn=collate, generator=draws if sampler is None else None)


def make_augment(spec: Any, recipe: FinetuneRecipe, seed: int) -> Callable[[dict], dict] | None:
    """The batch augmentation (its generator seeded with ``seed + 1``), or None when ``recipe.augment`` is off.

    Args:
        spec: the task's ``TaskSpec``. recipe: the fine-tuning recipe. seed: the run seed.
    """
    aug_gen = torch.Generator().manual_seed(seed + 1)
    dense = get_kind(spec.kind).dense
    follows = in_input_units(spec)  # a target in its input's units moves with the input's intensity draw
    if not recipe.augment:
        return None
    return lambda batch: augment_batch(batch, aug_gen, dense_target=dense, target_follows_input=follows)
