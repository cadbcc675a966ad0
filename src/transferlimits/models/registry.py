"""Model registry: the foundation models of the study by name, and name-based shortcuts to their adapters.

Each foundation model is one :class:`~transferlimits.models.adapters.base.ModelAdapter` registered here with
:func:`register_model`; the two of the study (``adapters/profound.py``, ``adapters/provicnet.py``) register
when :mod:`transferlimits.models` is imported. Everything else asks :func:`get_model`::

    enc = build_encoder("profound", "tiny")                      # ConvNeXt-V2-Tiny 3D
    enc = build_encoder("provicnet", "vits14", img_size=448)     # ViT-S/14 + registers + slice tokens
    enc = load_pretrained("profound", "checkpoint-799.pth", allow_pickle=True)
    obj = build_objective("profound", "fcmae", enc, get_profile("smoke"))
    loss, pred, mask = obj(x)

This module imports nothing from the adapters (they import it), so it has no import cycle.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the adapters import this module
    from torch import nn

    from transferlimits.models.adapters.base import ModelAdapter, ObjectiveInfo

__all__ = [
    "MODEL_REGISTRY",
    "register_model",
    "get_model",
    "model_names",
    "build_encoder",
    "encoder_for_profile",
    "load_pretrained",
    "build_objective",
    "check_profile_models",
    "objective_info",
]

#: name -> adapter, in registration order (the study's two models first).
MODEL_REGISTRY: dict[str, "ModelAdapter"] = {}
_NAME = re.compile(r"^[a-z]+$")
_REQUIRED = ("build_encoder", "build_objective", "load_released", "task_view", "pretrain_index",
             "pretrain_prepare", "pretrain_item", "dense_head", "classification_head", "scalar_head", "lr_scales")


def register_model(adapter: "ModelAdapter", overwrite: bool = False) -> "ModelAdapter":
    """Add ``adapter`` to :data:`MODEL_REGISTRY` and return it.

    Args:
        adapter: a :class:`~transferlimits.models.adapters.base.ModelAdapter` instance.
        overwrite: replace an adapter of the same name (default False).

    Raises:
        ValueError: the name is not lower-case letters (it is a Snakemake wildcard), it declares no objective
            (``objective_infos``, see ``models.adapters.base.ObjectiveInfo``) or two with one name, a required
            method is missing, or the name is taken and not ``overwrite``.
    """
    name = getattr(adapter, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"model adapter name must be lower-case letters only, got {name!r}")
    missing = [m for m in _REQUIRED if not callable(getattr(adapter, m, None))]
    if missing:
        raise ValueError(f"model adapter {name!r} lacks {missing}; subclass models.adapters.base.ModelAdapter")
    infos = tuple(getattr(adapter, "objective_infos", ()) or ())
    names = [getattr(o, "name", None) for o in infos]
    if not infos or not all(hasattr(o, "family") and hasattr(o, "uses_labels") for o in infos):
        raise ValueError(f"model adapter {name!r} declares no pre-training objective: set objective_infos = "
                         "(ObjectiveInfo(name, family, uses_labels), ...), native first")
    if len(set(names)) != len(names) or tuple(adapter.objectives) != tuple(names):
        raise ValueError(f"model adapter {name!r}: objective names must be unique and objectives must be the names "
                         f"of objective_infos; got objective_infos names {names}, objectives {adapter.objectives!r}")
    if name in MODEL_REGISTRY and not overwrite:
        raise ValueError(f"model {name!r} is already registered; pass overwrite=True to replace it")
    MODEL_REGISTRY[name] = adapter
    return adapter


def get_model(name: str) -> "ModelAdapter":
    """The adapter registered as ``name``.

    Raises:
        ValueError: unknown name (the message lists the registered ones).
    """
    if name not in MODEL_REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid: {list(MODEL_REGISTRY)}")
    return MODEL_REGISTRY[name]


def model_names() -> tuple[str, ...]:
    """Registered model names, in registration order."""
    return tuple(MODEL_REGISTRY)


def check_profile_models(profile: Any) -> None:
    """Check that every model a profile names (``profile.models``) is registered.

    Call it where a profile is consumed, after any ``--model-module`` has registered its model.

    Args:
        profile: a :class:`~transferlimits.config.Profile` (or any object with ``name`` and ``models``).

    Raises:
        ValueError: a model is not registered (the message names the profile, the unknown models and the
            valid ones).
    """
    unknown = sorted(set(getattr(profile, "models", ())) - set(MODEL_REGISTRY))
    if unknown:
        raise ValueError(f"profile {getattr(profile, 'name', '?')!r}: unknown model(s) {unknown}; "
                         f"valid: {list(MODEL_REGISTRY)}")


def objective_info(model: str, objective: str) -> "ObjectiveInfo":
    """The declared contract (family, labels) of ``objective`` of model ``model``.

    Raises:
        ValueError: unknown model, or an objective the model does not declare (the messages list the valid ones).
    """
    return get_model(model).objective_info(objective)


def build_encoder(name: str, size: str, **kw: Any) -> "nn.Module":
    """A randomly initialised encoder of model ``name`` and ``size`` (see the adapter's ``build_encoder``).

    Raises:
        ValueError: unknown model or size (listing the valid ones).
    """
    return get_model(name).build_encoder(size, **kw)


def encoder_for_profile(name: str, profile: Any, **kw: Any) -> "nn.Module":
    """:func:`build_encoder` with the profile's size and view settings (e.g. ``slice_size`` as ``img_size``)."""
    return get_model(name).encoder_for_profile(profile, **kw)


def load_pretrained(name: str, path: str | Path, size: str | None = None, return_extras: bool = False,
                    **kw: Any) -> "nn.Module | tuple[nn.Module, Any]":
    """Build an encoder of model ``name`` and load released (or our own) weights into it, strictly.

    Args:
        name: a registered model.
        path: checkpoint file.
        size: encoder size; default: the adapter's (inferred from the file, or the published size).
        return_extras: also return what the loader found besides the encoder. Default False.
        **kw: loader options of the adapter (e.g. ``allow_pickle``, ``strict``, ``img_size``).

    Raises:
        ValueError: unknown model; ``CheckpointError`` (a ValueError) for keys/shapes that do not match.
    """
    return get_model(name).load_released(path, size=size, return_extras=return_extras, **kw)


def build_objective(model_name: str, objective: str, encoder: "nn.Module", profile_or_kwargs: Any = None) -> "nn.Module":
    """Wrap ``encoder`` in the pre-training module of ``objective`` for model ``model_name``.

    Args:
        model_name: a registered model.
        objective: one of the adapter's ``objectives``.
        encoder: the encoder to train (shared by reference, not copied).
        profile_or_kwargs: a ``Profile``, a dict of constructor kwargs, or None (constructor defaults).

    Raises:
        ValueError: unknown model, or an objective the model does not support.
    """
    adapter = get_model(model_name)
    adapter.check_objective(objective)
    return adapter.build_objective(objective, encoder, profile_or_kwargs)
