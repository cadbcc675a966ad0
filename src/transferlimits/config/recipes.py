"""The building blocks of a profile: the voxel grid, split sizes and the recipes of each stage.

Every dataclass is frozen and checks its numeric fields against :data:`~transferlimits.config.ranges.FIELD_RANGES`
in ``__post_init__``, so a wrong override fails where it is given, naming the field and its valid range.
"""

from __future__ import annotations

from dataclasses import dataclass

from transferlimits.config.ranges import check_ranges as _check_ranges

__all__ = ["GridSpec", "SplitSizes", "SplitFractions", "PretrainRecipe", "FinetuneRecipe", "MeasureConfig", "short_step"]


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


def short_step(steps: int, fraction: float) -> int:
    """The ``native_short`` step of a run of ``steps`` steps: ``fraction`` of them, at least 1; 0 when fraction is 0."""
    return max(1, round(int(steps) * fraction)) if fraction > 0 else 0


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
    # the ``native_short`` encoder (STUDY §5.1, a second pre-training length of the native objective): the encoder
    # after this fraction of the same run's steps (rounded, >= 1 step), saved as ``encoder_short.pt`` beside
    # ``encoder.pt``; 0 = none. A fraction, so that a profile whose steps are overridden keeps a valid short point
    short_fraction: float = 0.0

    def __post_init__(self) -> None:
        _check_ranges(self)
        if not 0.0 <= self.short_fraction < 1.0:
            raise ValueError(f"PretrainRecipe.short_fraction={self.short_fraction} must be in [0, 1)")

    @property
    def short_steps(self) -> int:
        """The step of the ``native_short`` encoder (0 = none): ``short_fraction`` of ``steps``, at least 1."""
        return short_step(self.steps, self.short_fraction)
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
    # dense heads: each model's light decoder instead of its published one, where the two differ (ProFound: an
    # all-MLP decoder, models/mlp_decoder3d.py, instead of the 3D UperNet; ProViCNet's slice head is light already).
    # Needs full_res_skip. Off = published
    light_decoder: bool = False
    channels_last_stages: int = 0  # ProFound encoder: stem + first N stages channels-last (speed only)
    # validations after step 0, evenly spaced over the run, joined with every epoch end (training/eval_plan.py;
    # STUDY §5.2: >= 10 per run for the interpolated time to 90 / 95 %); 1 = epoch ends only (the former loop)
    evals_per_run: int = 10
    # > 0: the intermediate evaluations score a fixed subset of this many validation cases, step 0 and the epoch
    # ends the full split and the subset (training/finetune_fit.py); 0 = the full split at every evaluation
    eval_subset: int = 0
    # > 0: a label budget (STUDY §5.1): every init fine-tunes on the first ``train_cases`` cases of the train split
    # (in its order), and the linear reference and LogME see the same cases; 0 = the whole train split
    train_cases: int = 0

    def __post_init__(self) -> None:
        _check_ranges(self)
        if self.residual and not self.full_res_skip:
            raise ValueError("FinetuneRecipe.residual=True needs full_res_skip=True")
        if self.light_decoder and not self.full_res_skip:
            raise ValueError("FinetuneRecipe.light_decoder=True needs full_res_skip=True")
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
