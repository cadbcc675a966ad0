"""Profiles of the study as typed, frozen dataclasses: one :class:`Profile` flows everywhere.

Four profiles exist (STUDY §6):

* ``smoke`` - CPU, tiny models, a few minutes: CI and a new user's first run.
* ``cpu`` - two CPU cores, under an hour: small encoders, 100 test cases, three seeds, full-resolution dense
  heads; sized so every point can beat its trivial baseline (``benchmarks/estimate_cpu.py``).
* ``reference`` - one GPU, the published model sizes (ConvNeXt-V2-Tiny, ViT-S/14 at 448 px), the
  phantom cohort at the ProFound grid, three seeds: the numbers the book is about.
* ``picai`` - the user's own PI-CAI images (``--data``) and released weights (``--weights``).

Use :func:`get_profile` to obtain one, with optional overrides validated by name::

    prof = get_profile("smoke", finetune={"epochs": 2})

Unknown profile names or override keys raise :class:`ValueError` listing the valid ones.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field
from typing import Any, Mapping

from transferlimits.config_ranges import FIELD_RANGES, Range, check_ranges as _check_ranges

from transferlimits.tasks.registry import TASK_REGISTRY

__all__ = [
    "GridSpec",
    "SplitSizes",
    "SplitFractions",
    "Range",
    "FIELD_RANGES",
    "PretrainRecipe",
    "FinetuneRecipe",
    "MeasureConfig",
    "Profile",
    "MODELS",
    "OBJECTIVES",
    "TASKS",
    "PROFILES",
    "get_profile",
    "profile_to_dict",
]

#: The foundation models the built-in profiles study (STUDY §2); each is a registered adapter in
#: :mod:`transferlimits.models` (``models/adapters/``). This is data, like ``encoder_sizes``.
STUDY_MODELS: tuple[str, ...] = ("profound", "provicnet")


def _model_axis() -> dict[str, Any]:
    """``MODELS``, ``OBJECTIVES``, ``NATIVE_OBJECTIVE``, ``SWAPPED_OBJECTIVE`` derived from the model registry.

    Imported on first use: the model adapters import data modules that import this one. Importing the
    registry imports :mod:`transferlimits.models`, which registers the study's adapters.
    """
    from transferlimits.models.registry import MODEL_REGISTRY, model_names

    adapters = [MODEL_REGISTRY[m] for m in model_names()]
    return {
        "MODELS": model_names(),
        "OBJECTIVES": tuple(dict.fromkeys(o for a in adapters for o in a.objectives)),
        "NATIVE_OBJECTIVE": {a.name: a.native_objective for a in adapters},
        "SWAPPED_OBJECTIVE": {a.name: a.swapped_objective for a in adapters},
    }


def __getattr__(name: str) -> Any:
    """Lazy, registry-derived module attributes: ``MODELS`` (registered model names), ``OBJECTIVES`` (their
    objectives, in order), ``NATIVE_OBJECTIVE`` / ``SWAPPED_OBJECTIVE`` (model -> objective; the native and
    swapped pairs form the 2x2 control, H6). Read at access time, so models registered later appear."""
    if name in ("MODELS", "OBJECTIVES", "NATIVE_OBJECTIVE", "SWAPPED_OBJECTIVE"):
        return _model_axis()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
#: The five downstream tasks (STUDY §4): the tasks registered by :mod:`transferlimits.tasks.registry`.
#: Tasks added later by ``register_task`` (a ``--task-module``) join the grid through the runner.
TASKS: tuple[str, ...] = tuple(TASK_REGISTRY)


@dataclass(frozen=True)
class GridSpec:
    """A voxel grid: ``shape`` is (D, H, W) voxels, ``spacing`` is (z, y, x) in mm."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or any(int(s) < 1 for s in self.shape):
            raise ValueError(f"GridSpec.shape must be 3 positive ints (D, H, W), got {self.shape}")
        if len(self.spacing) != 3 or any(float(s) <= 0 for s in self.spacing):
            raise ValueError(f"GridSpec.spacing must be 3 positive mm values (z, y, x), got {self.spacing}")

    @property
    def extent_mm(self) -> tuple[float, float, float]:
        return tuple(float(n) * float(s) for n, s in zip(self.shape, self.spacing))  # type: ignore[return-value]


@dataclass(frozen=True)
class SplitSizes:
    """Number of patients per split. ``pretrain`` is the pre-training pool; train/val/test are per task."""

    pretrain: int
    train: int
    val: int
    test: int

    def __post_init__(self) -> None:
        _check_ranges(self)


@dataclass(frozen=True)
class SplitFractions:
    """Split sizes as fractions of the usable patients, each with a minimum number of patients.

    Used where the cohort size is the user's (``picai``: however many cases ``--data`` holds);
    :func:`transferlimits.data.splits.resolve_split_sizes` turns them into :class:`SplitSizes`.
    """

    pretrain: float
    train: float
    val: float
    test: float
    min_pretrain: int = 4
    min_train: int = 4
    min_val: int = 2
    min_test: int = 4

    def __post_init__(self) -> None:
        _check_ranges(self)
        total = self.pretrain + self.train + self.val + self.test
        if total > 1.0 + 1e-9:
            raise ValueError(f"SplitFractions add up to {total:g} > 1 (pretrain + train + val + test)")


@dataclass(frozen=True)
class PretrainRecipe:
    """Pre-training recipe shared by all four (objective, backbone) pairs of one profile."""

    steps: int
    batch_size: int
    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 10
    checkpoint_every: int = 50
    mask_ratio: float = 0.6
    contrastive_alpha: float = 0.05
    # pair-mining rules of the contrastive objective, as cancer fractions of a token cell (62/64 and 2/64
    # upstream); small grids have coarse cells that lesions rarely fill, so the cpu profile lowers the anchor rule
    anchor_frac: float = 62 / 64
    neg_frac: float = 2 / 64
    # ProFound encoder: stem + first N stages in channels_last_3d (CPU speed-up, same maths); 0 = off
    channels_last_stages: int = 0

    def __post_init__(self) -> None:
        _check_ranges(self)
        if not 0.0 <= self.neg_frac < self.anchor_frac <= 1.0:
            raise ValueError(f"PretrainRecipe: need 0 <= neg_frac < anchor_frac <= 1, got neg_frac={self.neg_frac}, "
                             f"anchor_frac={self.anchor_frac}")
        if not 0 <= self.channels_last_stages <= 4:
            raise ValueError(f"PretrainRecipe.channels_last_stages={self.channels_last_stages} must be in 0..4")
        if len(self.betas) != 2:
            raise ValueError(f"PretrainRecipe.betas={self.betas!r} is invalid: expected two numbers in [0, 1)")


@dataclass(frozen=True)
class FinetuneRecipe:
    """Fine-tuning recipe: identical for pretrained and scratch inits of one encoder (STUDY §4)."""

    epochs: int
    batch_size: int
    lr: float = 1e-3
    weight_decay: float = 1e-5
    warmup_epochs: int = 1
    layer_decay: float = 0.75  # profound: layer-wise lr decay of the backbone
    backbone_lr_scale: float = 0.05  # provicnet: backbone lr = 0.05 x head lr (upstream)
    augment: bool = True
    decoder_width: int | None = None  # dense-head width; None = published (UperNet 512, ProViCNet head 128/64)
    # dense heads: full-resolution skip from the input, and (regression) a residual output gain*input + correction
    # (models/fullres.py; deviations from the published heads, off = published)
    full_res_skip: bool = False
    residual: bool = False
    channels_last_stages: int = 0  # ProFound encoder: stem + first N stages channels-last (speed only)

    def __post_init__(self) -> None:
        _check_ranges(self)
        if self.residual and not self.full_res_skip:
            raise ValueError("FinetuneRecipe.residual=True needs full_res_skip=True")
        if not 0 <= self.channels_last_stages <= 4:
            raise ValueError(f"FinetuneRecipe.channels_last_stages={self.channels_last_stages} must be in 0..4")


@dataclass(frozen=True)
class MeasureConfig:
    """Settings of the transfer measurements (STUDY §5)."""

    bandwidth_multipliers: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    n_permutations: int = 200
    n_bootstrap: int = 200
    token_samples: int = 512  # token/voxel-level samples per layer for token-level MMD
    fractions: tuple[float, ...] = (0.9, 0.95)

    def __post_init__(self) -> None:
        _check_ranges(self)


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
    tasks: tuple[str, ...] = TASKS
    models: tuple[str, ...] = STUDY_MODELS  # registered model names (checked by get_profile)
    control_tasks: tuple[str, ...] = TASKS  # tasks of the 2x2 objective x architecture control (H6)
    device: str = "auto"  # "auto" picks cuda when present, else cpu
    num_threads: int = 0  # torch intra-op threads per run; 0 = torch default
    # provicnet 2.5D stacks take every k-th slice of the grid as centre, with neighbours k slices away:
    # k = 3 on the 1 mm reference grid gives ProViCNet's native 3 mm stacks (and a third of the ViT passes)
    provicnet_slice_step: int = 1
    # at least this fraction of the TEST patients have csPCa (data.splits.make_splits); 0 = the cohort's mix.
    # Segmentation's Dice is a mean over test cases with a lesion, so the cohort's ~30 % leaves ~30 of 100.
    test_cspca_frac: float = 0.0
    # per-task changes to ``finetune`` ({task: {FinetuneRecipe field: value}}): a task's training budget, the same
    # for both models and every init of that task (pretrained, scratch, linear probe); see finetune_for
    task_finetune: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_ranges(self)
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


_SMOKE = Profile(
    name="smoke",
    description="CPU, tiny models, tiny phantom grid: proves the pipeline in minutes (CI, first run).",
    grid=GridSpec(shape=(16, 64, 64), spacing=(3.0, 1.5, 1.5)),
    slice_size=56,
    encoder_sizes={"profound": "smoke", "provicnet": "smoke"},
    splits=SplitSizes(pretrain=48, train=24, val=8, test=16),
    # anchor rule 3/64 (upstream 62/64): on the 4 x 4 token grid of 56-px slices no cell pair is ever >= 62/64
    # cancer, so the contrastive term would be zero in every step; at 3/64 about 10 % of ProViCNet steps and
    # 90 % of ProFound (stride-4 cell) steps mine a positive pair (pretrain.json contrastive_active_fraction)
    pretrain=PretrainRecipe(steps=60, batch_size=4, warmup_steps=6, checkpoint_every=20, anchor_frac=3 / 64),
    finetune=FinetuneRecipe(epochs=4, batch_size=4, lr=2e-3, decoder_width=32),
    measure=MeasureConfig(n_permutations=200, n_bootstrap=200, token_samples=256),
    seeds=(0,),
    control_tasks=("classification", "super_resolution"),
    num_threads=1,
)

_DENSE_CPU = {"batch_size": 2, "lr": 5e-3, "warmup_epochs": 0}
_CPU = Profile(
    name="cpu",
    description=(
        "Two CPU cores, under an hour: small encoders sized by benchmarks/estimate_cpu.py, 100 test cases per "
        "task, three seeds, the 2x2 control on every task, full-resolution dense heads; results that can beat "
        "the trivial baselines (scripts/check_cpu_profile.py)."
    ),
    grid=GridSpec(shape=(16, 64, 64), spacing=(3.0, 1.5, 1.5)),
    slice_size=112,  # 8 x 8 ViT tokens per slice; 112 px = 2 x the 56 px of smoke, down-sampled to the 64 px grid
    encoder_sizes={"profound": "cpu", "provicnet": "cpu"},
    # fine-tuning is ~90 % of the grid (110 runs): 64 train cases x 3 epochs (48 steps of 4) against 96 x 6, and
    # UperNet / conv head at width 16, cut it ~3.5x (benchmarks/estimate_cpu.py); 100 test cases stay (the floor)
    splits=SplitSizes(pretrain=300, train=64, val=24, test=100),
    # batch 24 and anchors at >= 1/4 cancer: on the 12 mm ViT token cells of 112 px slices of the 96 mm grid,
    # 4.9 % of the pool's 2.5D stacks have a positive pair at 1/4 (1.6 % at 1/2, ~0 at 62/64), so ~70 % of
    # batches of 24 do (ProFound's stride-4 cells: 39 % of crops, ~100 % of batches); benchmarks/estimate_cpu.py
    pretrain=PretrainRecipe(steps=300, batch_size=24, lr=1e-3, warmup_steps=20, checkpoint_every=100,
                            anchor_frac=0.25, neg_frac=2 / 64, channels_last_stages=2),
    finetune=FinetuneRecipe(epochs=3, batch_size=4, lr=2e-3, decoder_width=16, full_res_skip=True,
                            residual=True, channels_last_stages=2),
    measure=MeasureConfig(n_permutations=200, n_bootstrap=200, token_samples=512),
    seeds=(0, 1, 2),
    control_tasks=TASKS,
    num_threads=1,
    test_cspca_frac=0.5,
    # dense tasks: batch 2 at lr 5e-3 without warm-up (twice the optimiser steps at the same cost), and
    # segmentation 6 epochs: on this cohort a scratch ConvNeXt + UperNet predicts no lesion voxel before its
    # ~150th step. Classification keeps batch 4 at 2e-3 (at 5e-3 ProViCNet's AUROC fell to chance)
    task_finetune={
        "super_resolution": _DENSE_CPU, "distortion_correction": _DENSE_CPU, "modality_translation": _DENSE_CPU,
        "segmentation": {**_DENSE_CPU, "epochs": 6},
    },
)

_REFERENCE = Profile(
    name="reference",
    description=(
        "One GPU: ConvNeXt-V2-Tiny on 64x224x224 crops at 0.5x0.5x1 mm, ViT-S/14 with registers at "
        "448 px, the phantom cohort, three seeds."
    ),
    grid=GridSpec(shape=(64, 224, 224), spacing=(1.0, 0.5, 0.5)),
    slice_size=448,
    encoder_sizes={"profound": "tiny", "provicnet": "vits14"},
    # sized by benchmarks/estimate_reference.py to fit ~40 GPU-minutes on one H100 at ~30 % MFU
    splits=SplitSizes(pretrain=600, train=160, val=40, test=200),
    pretrain=PretrainRecipe(steps=1500, batch_size=8, warmup_steps=100, checkpoint_every=250),
    # UperNet at 128 wide, not ProFound's 512: at 512 the 3D decoder costs ~3.8 TFLOP per 64x224x224
    # volume, 40x the encoder (benchmarks/estimate_reference.py), which alone exceeds the GPU budget.
    finetune=FinetuneRecipe(epochs=10, batch_size=4, lr=1e-3, decoder_width=128),
    measure=MeasureConfig(n_permutations=1000, n_bootstrap=1000, token_samples=4096),
    seeds=(0, 1, 2),
    provicnet_slice_step=3,
)

_PICAI = dataclasses.replace(
    _REFERENCE,
    name="picai",
    description=(
        "The user's own PI-CAI public images (--data) with picai_labels, released weights by path "
        "(--weights); reference sizes."
    ),
    data_source="picai",
    # every usable patient of the user's folder, in the reference proportions (600/160/40/200), with
    # minimums per split (data.splits.resolve_split_sizes); exact sizes: get_profile("picai", splits={...ints})
    splits=SplitFractions(pretrain=0.6, train=0.16, val=0.04, test=0.2),
)

PROFILES: dict[str, Profile] = {p.name: p for p in (_SMOKE, _CPU, _REFERENCE, _PICAI)}


def _apply(obj: Any, overrides: Mapping[str, Any], where: str) -> Any:
    valid = {f.name for f in dataclasses.fields(obj)}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in valid:
            raise ValueError(f"unknown {where} field {key!r}; valid: {sorted(valid)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
            value = _apply(current, value, f"{where}.{key}")
        elif isinstance(current, tuple) and isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        changes[key] = value
    try:
        return dataclasses.replace(obj, **changes)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None


def _splits_override(current: Any, value: Mapping[str, Any]) -> SplitSizes | SplitFractions:
    """A ``splits`` mapping: all-int values give exact :class:`SplitSizes`, numbers with a fraction
    :class:`SplitFractions` (merged into ``current`` when it has the same type)."""
    names = ("pretrain", "train", "val", "test")
    sizes = {k: v for k, v in value.items() if k in names}
    exact = all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in sizes.values())
    exact = exact and not any(k.startswith("min_") for k in value)
    cls = SplitSizes if exact else SplitFractions
    if isinstance(current, cls):
        return _apply(current, value, "profile.splits")
    missing = [n for n in names if n not in value]
    if missing:
        raise ValueError(
            f"profile.splits: switching to {cls.__name__} needs all of {list(names)}; missing {missing} "
            "(ints = patients per split, fractions in [0, 1] = shares of the usable patients)")
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - valid)
    if unknown:
        raise ValueError(f"unknown profile.splits field {unknown[0]!r}; valid: {sorted(valid)}")
    try:
        return cls(**value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"profile.splits: {err}") from None


def get_profile(name: str, **overrides: Any) -> Profile:
    """Return the profile ``name`` with optional (nested) overrides.

    Args:
        name: one of ``smoke``, ``cpu``, ``reference``, ``picai``.
        **overrides: field overrides; nested dataclasses take a mapping, e.g.
            ``finetune={"epochs": 2}``, ``grid={"shape": (16, 32, 32), "spacing": (3, 2, 2)}``.

    Raises:
        ValueError: unknown profile or override key (the message lists the valid ones), or a value of
            the wrong type or out of range (the message names the field and its range, see
            :data:`FIELD_RANGES`).
    """
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid: {sorted(PROFILES)}")
    prof = PROFILES[name]
    if isinstance(overrides.get("splits"), Mapping):
        overrides = dict(overrides, splits=_splits_override(prof.splits, overrides["splits"]))
    if "grid" in overrides and isinstance(overrides["grid"], Mapping):
        g = dict(dataclasses.asdict(prof.grid), **overrides["grid"])
        overrides = dict(overrides, grid=GridSpec(tuple(g["shape"]), tuple(g["spacing"])))
    prof = _apply(prof, overrides, "profile") if overrides else prof
    _check_models(prof)
    return prof


def _check_models(prof: Profile) -> None:
    """ValueError naming the models of ``prof`` that are not registered (``transferlimits.models``)."""
    registered = __getattr__("MODELS")
    unknown = sorted(set(prof.models) - set(registered))
    if unknown:
        raise ValueError(f"profile {prof.name!r}: unknown model(s) {unknown}; valid: {list(registered)}")


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    """A JSON-ready dict of the profile (for provenance in metrics.json)."""
    d = dataclasses.asdict(profile)
    d["encoder_sizes"] = dict(profile.encoder_sizes)
    d["task_finetune"] = {t: dict(c) for t, c in profile.task_finetune.items()}
    return d
