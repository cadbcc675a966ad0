"""Profiles of the study as typed, frozen dataclasses: one :class:`Profile` flows everywhere.

Three profiles exist (STUDY §6):

* ``smoke`` - CPU, tiny models, a few minutes: CI and a new user's first run.
* ``reference`` - one GPU, the published model sizes (ConvNeXt-V2-Tiny, ViT-S/14 at 448 px), the
  phantom cohort at the ProFound grid, three seeds: the numbers the book is about.
* ``picai`` - the user's own PI-CAI images (``--data``) and released weights (``--weights``).

Use :func:`get_profile` to obtain one, with optional overrides validated by name::

    prof = get_profile("smoke", finetune={"epochs": 2})

Unknown profile names or override keys raise :class:`ValueError` listing the valid ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = [
    "GridSpec",
    "SplitSizes",
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

#: The two foundation encoders (STUDY §2).
MODELS: tuple[str, ...] = ("profound", "provicnet")
#: The pre-training objectives; the native pairs are (profound, fcmae) and (provicnet, contrastive),
#: the swapped ones (profound, contrastive) and (provicnet, mae) form the 2x2 control (H6).
OBJECTIVES: tuple[str, ...] = ("fcmae", "contrastive", "mae")
NATIVE_OBJECTIVE: dict[str, str] = {"profound": "fcmae", "provicnet": "contrastive"}
SWAPPED_OBJECTIVE: dict[str, str] = {"profound": "contrastive", "provicnet": "mae"}
#: The five downstream tasks (STUDY §4). New tasks register in ``transferlimits.data.tasks``.
TASKS: tuple[str, ...] = (
    "classification",
    "segmentation",
    "super_resolution",
    "distortion_correction",
    "modality_translation",
)


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


@dataclass(frozen=True)
class MeasureConfig:
    """Settings of the transfer measurements (STUDY §5)."""

    bandwidth_multipliers: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    n_permutations: int = 200
    n_bootstrap: int = 200
    token_samples: int = 512  # token/voxel-level samples per layer for token-level MMD
    fractions: tuple[float, ...] = (0.9, 0.95)


@dataclass(frozen=True)
class Profile:
    """Everything that varies between the smoke, reference and picai runs."""

    name: str
    description: str
    grid: GridSpec  # profound 3D crop grid; phantoms are synthesised on it
    slice_size: int  # provicnet 2.5D input size in pixels (multiple of 14)
    encoder_sizes: Mapping[str, str]  # model name -> size name in transferlimits.models
    splits: SplitSizes
    pretrain: PretrainRecipe
    finetune: FinetuneRecipe
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    seeds: tuple[int, ...] = (0,)
    data_source: str = "phantom"  # "phantom" or "picai"
    tasks: tuple[str, ...] = TASKS
    models: tuple[str, ...] = MODELS
    control_tasks: tuple[str, ...] = TASKS  # tasks of the 2x2 objective x architecture control (H6)
    device: str = "auto"  # "auto" picks cuda when present, else cpu
    num_threads: int = 0  # torch intra-op threads per run; 0 = torch default
    # provicnet 2.5D stacks take every k-th slice of the grid as centre, with neighbours k slices away:
    # k = 3 on the 1 mm reference grid gives ProViCNet's native 3 mm stacks (and a third of the ViT passes)
    provicnet_slice_step: int = 1

    def __post_init__(self) -> None:
        if self.slice_size % 14:
            raise ValueError(f"slice_size must be a multiple of the ViT patch (14), got {self.slice_size}")
        if self.provicnet_slice_step < 1:
            raise ValueError(f"provicnet_slice_step must be >= 1, got {self.provicnet_slice_step}")
        if self.data_source not in ("phantom", "picai"):
            raise ValueError(f"data_source must be 'phantom' or 'picai', got {self.data_source!r}")
        unknown = set(self.models) - set(MODELS)
        if unknown:
            raise ValueError(f"unknown model(s) {sorted(unknown)}; valid: {list(MODELS)}")


_SMOKE = Profile(
    name="smoke",
    description="CPU, tiny models, tiny phantom grid: proves the pipeline in minutes (CI, first run).",
    grid=GridSpec(shape=(16, 64, 64), spacing=(3.0, 1.5, 1.5)),
    slice_size=56,
    encoder_sizes={"profound": "smoke", "provicnet": "smoke"},
    splits=SplitSizes(pretrain=48, train=24, val=8, test=16),
    pretrain=PretrainRecipe(steps=60, batch_size=4, warmup_steps=6, checkpoint_every=20),
    finetune=FinetuneRecipe(epochs=4, batch_size=4, lr=2e-3, decoder_width=32),
    measure=MeasureConfig(n_permutations=200, n_bootstrap=200, token_samples=256),
    seeds=(0,),
    control_tasks=("classification", "super_resolution"),
    num_threads=1,
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
)

PROFILES: dict[str, Profile] = {p.name: p for p in (_SMOKE, _REFERENCE, _PICAI)}


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
    return dataclasses.replace(obj, **changes)


def get_profile(name: str, **overrides: Any) -> Profile:
    """Return the profile ``name`` with optional (nested) overrides.

    Args:
        name: one of ``smoke``, ``reference``, ``picai``.
        **overrides: field overrides; nested dataclasses take a mapping, e.g.
            ``finetune={"epochs": 2}``, ``grid={"shape": (16, 32, 32), "spacing": (3, 2, 2)}``.

    Raises:
        ValueError: unknown profile or override key (the message lists the valid ones).
    """
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid: {sorted(PROFILES)}")
    prof = PROFILES[name]
    if "grid" in overrides and isinstance(overrides["grid"], Mapping):
        g = dict(dataclasses.asdict(prof.grid), **overrides["grid"])
        overrides = dict(overrides, grid=GridSpec(tuple(g["shape"]), tuple(g["spacing"])))
    return _apply(prof, overrides, "profile") if overrides else prof


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    """A JSON-ready dict of the profile (for provenance in metrics.json)."""
    d = dataclasses.asdict(profile)
    d["encoder_sizes"] = dict(profile.encoder_sizes)
    return d
