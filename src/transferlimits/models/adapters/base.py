"""The model-adapter contract: one object per foundation model owns everything model-specific.

A :class:`ModelAdapter` says how the rest of the package builds, loads, feeds, heads, optimises and names one
foundation model. Adding a model to the study is one module that subclasses it and calls
:func:`transferlimits.models.registry.register_model` once (see ``tests/toy_model.py``).

The encoder contract every adapter's encoder keeps: ``forward_features(x, pos=None) -> EncoderOutput(pooled
[B, C], maps list[[B, C_i, ...]], tokens [B, N, C] | None)`` and attributes ``out_dim``, ``map_dims``,
``map_names``, ``input_kind`` (``"volume"``: x [B, 3, D, H, W]; ``"slices"``: x [B, 3, S, S] with pos [B, 2]).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from transferlimits.models.adapters.objectives import OBJECTIVE_FAMILIES, ObjectiveInfo
from transferlimits.models.pooled_heads import Classifier, ScalarRegressor

__all__ = ["OBJECTIVE_FAMILIES", "ObjectiveInfo", "ViewSettings", "ModelAdapter", "LIGHT_WIDTH_FACTOR",
           "light_hidden_width"]

#: a light decoder's hidden width as a multiple of ``decoder_width``: 64 at the ``cpu`` profile's 16, where a
#: ProFound super-resolution run costs what it did with UperNet at width 16 (~14 s on one slow core, measured)
LIGHT_WIDTH_FACTOR = 4


def light_hidden_width(width: int | None) -> int:
    """The hidden width of an adapter's light decoder: :data:`LIGHT_WIDTH_FACTOR` x ``width``, 64 when None."""
    return 64 if width is None else LIGHT_WIDTH_FACTOR * int(width)

@dataclass(frozen=True)
class ViewSettings:
    """Data-view settings a model's view may use (a volume model ignores them).

    Attributes:
        slice_size: S, in-plane size of 2.5D slices in pixels (``Profile.slice_size``).
        slice_step: k, stacks centred on every k-th slice (``Profile.provicnet_slice_step``).
    """

    slice_size: int
    slice_step: int = 1

    @classmethod
    def from_profile(cls, profile: Any, slice_size: int | None = None) -> "ViewSettings":
        """The settings of ``profile``; ``slice_size`` overrides the profile's when given."""
        return cls(int(slice_size or profile.slice_size), int(getattr(profile, "provicnet_slice_step", 1)))


class ModelAdapter(ABC):
    """Everything model-specific about one foundation model.

    Class attributes a subclass sets:
        name: registry key, lower-case letters only (it appears in file names and Snakemake wildcards).
        display_name: human name for titles and legends (e.g. ``"ProFound"``).
        color: matplotlib colour of the model in figures.
        input_kind: ``"volume"`` or ``"slices"`` (the encoder's ``input_kind``).
        objective_infos: the pre-training objectives it supports as :class:`ObjectiveInfo`, native first, then
            the swapped control (if any); :attr:`objectives` are their names.
        objective_modules: objective name -> its module class, called ``cls(encoder, **kwargs)`` by
            :meth:`build_objective`.
        sizes: encoder size names :meth:`build_encoder` accepts.
        pretrain_keys: batch keys the objective modules take before ``labels`` (``("x",)`` or ``("x", "pos")``).
        pretrain_ndim: dimensions of a pre-training batch ``x`` (5: [B, 3, D, H, W]; 4: [B, 3, S, S]).
        no_decay_names: parameter leaf names exempt from weight decay besides the generic ones
            (1-D parameters, ``*_token``, ``pos_embed``; see ``training.loop.param_groups``).
        has_light_decoder: :meth:`dense_head` accepts ``light=True`` and then builds a light decoder other than the
            published head (``FinetuneRecipe.light_decoder``); False (default): the recipe switch leaves the head.
    """

    name: str = ""
    display_name: str = ""
    color: str = "tab:gray"
    input_kind: str = "volume"
    objective_infos: tuple[ObjectiveInfo, ...] = ()
    objective_modules: Mapping[str, type[nn.Module]] = {}
    sizes: tuple[str, ...] = ()
    pretrain_keys: tuple[str, ...] = ("x",)
    pretrain_ndim: int = 5
    no_decay_names: tuple[str, ...] = ()
    has_light_decoder: bool = False

    # --- objectives -------------------------------------------------------------------------------------
    @property
    def objectives(self) -> tuple[str, ...]:
        """The names of :attr:`objective_infos`, native first."""
        return tuple(o.name for o in self.objective_infos)

    def objective_info(self, objective: str) -> ObjectiveInfo:
        """The declared contract of ``objective``.

        Raises:
            ValueError: ``objective`` is not one of :attr:`objectives` (the message lists them).
        """
        self.check_objective(objective)
        return next(o for o in self.objective_infos if o.name == objective)

    @property
    def has_control(self) -> bool:
        """True when the model has a second, swapped objective (the 2x2 control, STUDY H6, runs it)."""
        return len(self.objective_infos) > 1

    @property
    def native_objective(self) -> str:
        """The objective the model was published with (the first of :attr:`objectives`)."""
        return self.objectives[0]

    @property
    def swapped_objective(self) -> str:
        """The other model's objective (the 2x2 control, STUDY H6); the native one if there is none."""
        return self.objectives[1] if len(self.objectives) > 1 else self.objectives[0]

    def check_objective(self, objective: str) -> None:
        """Raise ValueError unless ``objective`` is one of :attr:`objectives` (the message lists them)."""
        if objective not in self.objectives:
            raise ValueError(f"unknown objective {objective!r} for {self.name!r}; valid: {list(self.objectives)}")

    def build_objective(self, objective: str, encoder: nn.Module, profile_or_kwargs: Any = None) -> nn.Module:
        """Wrap ``encoder`` in the pre-training module of ``objective``: ``objective_modules[objective](encoder,
        **kwargs)`` with the kwargs of :meth:`objective_kwargs` (an adapter may override this instead).

        Args:
            objective: one of :attr:`objectives`.
            encoder: the encoder to train (shared by reference).
            profile_or_kwargs: a ``Profile`` (settings follow it), a dict of constructor kwargs, or None.

        Raises:
            ValueError: ``objective`` is not one of :attr:`objectives`.
            NotImplementedError: the adapter names no module class for it (``objective_modules``).
        """
        self.check_objective(objective)
        module = dict(self.objective_modules).get(objective)
        if module is None:
            raise NotImplementedError(f"model adapter {self.name!r} has no objective_modules entry for {objective!r}: "
                                      "set objective_modules or override build_objective")
        return module(encoder, **self.objective_kwargs(objective, profile_or_kwargs))

    def objective_kwargs(self, objective: str, profile_or_kwargs: Any = None) -> dict[str, Any]:
        """Constructor kwargs of ``objective``'s module: none for None, a mapping as it is, and for a ``Profile``
        :meth:`profile_objective_kwargs`."""
        if profile_or_kwargs is None:
            return {}
        if isinstance(profile_or_kwargs, Mapping):
            return dict(profile_or_kwargs)
        return self.profile_objective_kwargs(objective, profile_or_kwargs)

    def profile_objective_kwargs(self, objective: str, profile: Any) -> dict[str, Any]:
        """Constructor kwargs of ``objective``'s module that follow ``profile`` (default none)."""
        return {}

    # --- encoders ---------------------------------------------------------------------------------------
    @abstractmethod
    def build_encoder(self, size: str, **kw: Any) -> nn.Module:
        """A randomly initialised encoder of ``size`` (ValueError for an unknown size)."""

    def size_for(self, profile: Any) -> str:
        """The encoder size ``profile`` uses (``profile.encoder_sizes[name]``).

        Raises:
            ValueError: the profile names no size for this model.
        """
        sizes = getattr(profile, "encoder_sizes", {}) or {}
        if self.name not in sizes:
            raise ValueError(f"profile {getattr(profile, 'name', '?')!r} has no encoder_sizes entry for model "
                             f"{self.name!r}; it has {sorted(sizes)}")
        return sizes[self.name]

    def encoder_kwargs(self, profile: Any) -> dict[str, Any]:
        """Extra :meth:`build_encoder` kwargs that follow the profile (recorded in pre-training metadata)."""
        return {}

    def encoder_kwargs_from_meta(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        """The :meth:`build_encoder` kwargs stored in an ``encoder.pt``'s metadata."""
        return {}

    def encoder_for_profile(self, profile: Any, **kw: Any) -> nn.Module:
        """:meth:`build_encoder` with the profile's size and :meth:`encoder_kwargs` (``kw`` wins)."""
        return self.build_encoder(self.size_for(profile), **{**self.encoder_kwargs(profile), **kw})

    @abstractmethod
    def load_released(self, path: str | Path, size: str | None = None, return_extras: bool = False,
                      **kw: Any) -> nn.Module | tuple[nn.Module, Any]:
        """Build an encoder and load released weights from ``path`` strictly (``(encoder, extras)`` with
        ``return_extras``)."""

    def load_released_for_profile(self, profile: Any, path: str | Path) -> nn.Module:
        """Released weights at ``path`` into an encoder of the profile's size."""
        return self.load_released(path, size=self.size_for(profile), **self.encoder_kwargs(profile))

    # --- data -------------------------------------------------------------------------------------------
    @abstractmethod
    def task_view(self, sample: Any, spec: Any, settings: ViewSettings) -> dict:
        """One dataset item of a task sample: ``x`` (+ ``pos``), ``y`` on the 3D grid, ``masks``, ``case_id``,
        ``scale`` (see :mod:`transferlimits.data.views`)."""

    @abstractmethod
    def pretrain_index(self, case_ids: Sequence[str], depth: int, settings: ViewSettings) -> list[tuple[str, Any]]:
        """The pre-training items: ``(case_id, key)`` pairs (key None for one item per case)."""

    @abstractmethod
    def pretrain_prepare(self, case: Any, labels: torch.Tensor, settings: ViewSettings) -> tuple[torch.Tensor,
                                                                                                   torch.Tensor]:
        """``(x, labels)`` of one case, computed once and cached (labels: int64 4-class map [D, H, W])."""

    @abstractmethod
    def pretrain_item(self, case_id: str, key: Any, x: torch.Tensor, labels: torch.Tensor,
                      settings: ViewSettings) -> dict:
        """The item of index entry ``(case_id, key)`` from the prepared ``(x, labels)``."""

    # --- heads and optimiser ----------------------------------------------------------------------------
    def classification_head(self, encoder: nn.Module, n_classes: int) -> nn.Module:
        """Classifier on the pooled embedding (ProFound's ``Classifier`` layout)."""
        return Classifier(encoder, int(n_classes))

    def scalar_head(self, encoder: nn.Module) -> nn.Module:
        """One float per volume from the pooled embedding."""
        return ScalarRegressor(encoder)

    @abstractmethod
    def dense_head(self, encoder: nn.Module, out_channels: int, width: int | None = None,
                   out_size: Sequence[int] | None = None, slice_step: int = 1) -> nn.Module:
        """Dense model returning [B, out_channels, D, H, W] (see ``models.heads.build_task_model``).

        Adapters that support the full-resolution path also accept ``full_res: bool`` and ``residual: bool``
        (:mod:`transferlimits.models.fullres`); they are passed only when a recipe turns them on. Those with a
        displacement-field output (:mod:`transferlimits.models.warp`) also accept ``warp_axis: int`` (0, 1, 2 of
        D, H, W), ``warp_jacobian: bool`` and ``warp_blur: bool``, passed only to a task whose kind asks for a warp.
        Those with a light decoder (:attr:`has_light_decoder`) accept ``light: bool``, passed only when a recipe turns
        ``FinetuneRecipe.light_decoder`` on; the others keep their head."""

    def lr_scales(self, model: nn.Module, recipe: Any) -> dict[str, float]:
        """``{parameter name: lr multiplier}`` of the trainable ``encoder.*`` parameters of a task model
        (default: the flat ``recipe.backbone_lr_scale``). Applied to PRETRAINED encoders only: fine-tuning from
        scratch trains every parameter at the head's lr (``training.finetune.backbone_lr_scales``)."""
        return {name: float(recipe.backbone_lr_scale) for name, p in model.named_parameters()
                if name.startswith("encoder.") and p.requires_grad}
