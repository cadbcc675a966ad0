"""The :class:`Profile` dataclass: everything that varies between the smoke, cpu, reference and picai runs.

Task and model names in a profile are plain strings here: this module is a leaf (no registry, no torch). The
registries check them where a profile is consumed (:func:`transferlimits.tasks.registry.check_profile_tasks`,
:func:`transferlimits.models.registry.check_profile_models`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from transferlimits.config.ranges import check_ranges as _check_ranges
from transferlimits.config.recipes import (
    FinetuneRecipe,
    GridSpec,
    MeasureConfig,
    PretrainRecipe,
    SplitFractions,
    SplitSizes,
)

__all__ = ["STUDY_TASKS", "STUDY_MODELS", "TASKS", "Profile"]

#: The five downstream tasks of the built-in profiles (STUDY §4), in the order of the book's chapters. Each is
#: registered by :mod:`transferlimits.tasks.registry` (a test checks it); tasks added later by
#: ``register_task`` (a ``--task-module``) join the grid through the runner. This is data, like ``encoder_sizes``.
STUDY_TASKS: tuple[str, ...] = ("classification", "segmentation", "super_resolution", "distortion_correction",
                                "modality_translation")
#: Former name of :data:`STUDY_TASKS`.
TASKS = STUDY_TASKS
#: The foundation models the built-in profiles study (STUDY §2); each is a registered adapter in
#: :mod:`transferlimits.models` (``models/adapters/``). This is data, like ``encoder_sizes``.
STUDY_MODELS: tuple[str, ...] = ("profound", "provicnet")


#: the encoder kinds a profile may add to every pair beyond native / swapped (``control_inits``): the shorter
#: native pre-training and the encoder controls (their makers: ``study.encoder_sources``; config stays a leaf)
CONTROL_INITS: tuple[str, ...] = ("native_short", "random", "transfusion", "positive")


@dataclass(frozen=True)
class Profile:
    """Everything that varies between the smoke, reference and picai runs."""

    name: str
    description: str
    grid: GridSpec  # profound 3D crop grid; phantoms are synthesised on it
    slice_size: int  # provicnet 2.5D input size in pixels (multiple of 14)
    encoder_sizes: Mapping[str, str]  # model name -> size name in transferlimits.models
    splits: SplitSizes | SplitFractions  # fractions: resolved on the usable patients (picai)
    pretrain: PretrainRecipe
    finetune: FinetuneRecipe
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    seeds: tuple[int, ...] = (0,)
    data_source: str = "phantom"  # "phantom" or "picai"
    tasks: tuple[str, ...] = STUDY_TASKS
    models: tuple[str, ...] = STUDY_MODELS  # registered model names (checked by models.registry.check_profile_models)
    control_tasks: tuple[str, ...] = STUDY_TASKS  # tasks of the 2x2 objective x architecture control (H6)
    # encoder controls run on every pair (STUDY §5.1; study.encoder_sources): "random", "transfusion" (negative),
    # "positive" (an encoder already trained on the task); each is one more point per seed, reusing scratch
    control_inits: tuple[str, ...] = ()
    device: str = "auto"  # "auto" picks cuda when present, else cpu
    num_threads: int = 0  # torch intra-op threads per run; 0 = torch default
    # provicnet 2.5D stacks take every k-th slice of the grid as centre, with neighbours k slices away:
    # k = 3 on the 1 mm reference grid gives ProViCNet's native 3 mm stacks (and a third of the ViT passes)
    provicnet_slice_step: int = 1
    # at least this fraction of the TEST patients have csPCa (data.splits.make_splits); 0 = the cohort's mix.
    # Segmentation's Dice is a mean over test cases with a lesion, so the cohort's ~30 % leaves ~30 of 100.
    test_cspca_frac: float = 0.0
    # phantom only: factor on every lesion's T2W / ADC drop (data.phantom.synthesize); 1 = calibrated on the real exams
    lesion_conspicuity: float = 1.0
    # per-task changes to ``finetune`` ({task: {FinetuneRecipe field: value}}): a task's training budget, the same
    # for both models and every init of that task (pretrained, scratch, linear probe); see finetune_for
    task_finetune: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_ranges(self)
        bad = [c for c in self.control_inits if c not in CONTROL_INITS]
        if bad or len(set(self.control_inits)) != len(tuple(self.control_inits)):
            raise ValueError(f"Profile.control_inits={tuple(self.control_inits)!r}: each one of {list(CONTROL_INITS)}, "
                             f"at most once")
        if not 0.0 < self.lesion_conspicuity <= 3.0:
            raise ValueError(f"lesion_conspicuity must be in (0, 3], got {self.lesion_conspicuity}")
        if not 0.0 <= self.test_cspca_frac <= 1.0:
            raise ValueError(f"test_cspca_frac must be in [0, 1], got {self.test_cspca_frac}")
        if not isinstance(self.task_finetune, Mapping):
            raise ValueError(f"Profile.task_finetune must map task -> {{FinetuneRecipe field: value}}, got "
                             f"{self.task_finetune!r}")
        for task in self.task_finetune:
            self.finetune_for(task)  # unknown fields and out-of-range values fail here, naming the task
        for name, kind in (("grid", GridSpec), ("splits", (SplitSizes, SplitFractions)),
                           ("pretrain", PretrainRecipe), ("finetune", FinetuneRecipe), ("measure", MeasureConfig)):
            if not isinstance(getattr(self, name), kind):
                want = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
                raise ValueError(f"Profile.{name} must be a {want} (or a mapping of its fields), got "
                                 f"{getattr(self, name)!r}")
        if self.slice_size % 14:
            raise ValueError(f"slice_size must be a multiple of the ViT patch (14), got {self.slice_size}")
        if self.provicnet_slice_step < 1:
            raise ValueError(f"provicnet_slice_step must be >= 1, got {self.provicnet_slice_step}")
        if self.data_source not in ("phantom", "picai"):
            raise ValueError(f"data_source must be 'phantom' or 'picai', got {self.data_source!r}")
        if not self.models or not all(isinstance(m, str) and m for m in self.models):
            raise ValueError(f"Profile.models must be a non-empty tuple of model names, got {self.models!r}")

    def finetune_for(self, task: str) -> FinetuneRecipe:
        """The fine-tuning recipe of ``task``: :attr:`finetune` with the task's :attr:`task_finetune` changes.

        Raises:
            ValueError: a change names an unknown field or an out-of-range value (the message names the task).
        """
        changes = self.task_finetune.get(task) or {}
        if not isinstance(changes, Mapping):
            raise ValueError(f"Profile.task_finetune[{task!r}] must be a mapping of FinetuneRecipe fields, "
                             f"got {changes!r}")
        valid = {f.name for f in dataclasses.fields(FinetuneRecipe)}
        unknown = sorted(set(changes) - valid)
        if unknown:
            raise ValueError(f"Profile.task_finetune[{task!r}]: unknown FinetuneRecipe field(s) {unknown}; valid: "
                             f"{sorted(valid)}")
        try:
            return dataclasses.replace(self.finetune, **changes) if changes else self.finetune
        except (TypeError, ValueError) as err:
            raise ValueError(f"Profile.task_finetune[{task!r}]: {err}") from None

    def with_task_finetune(self, task: str, **changes: Any) -> "Profile":
        """This profile with ``changes`` added to ``task``'s :attr:`task_finetune` (e.g. ``epochs=2``)."""
        merged = {**self.task_finetune, task: {**(self.task_finetune.get(task) or {}), **changes}}
        return dataclasses.replace(self, task_finetune=merged)
