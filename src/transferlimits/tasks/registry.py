"""The downstream tasks as a registry of :class:`TaskSpec` (STUDY §4), and the extension point for new ones.

A task turns an :class:`~transferlimits.data.case.MRCase` into a :class:`TaskSample` (named input
volumes, a target, evaluation masks). The views (:mod:`transferlimits.data.views`) turn a sample into the
tensors of each encoder. Adding a task is one call::

    def make_volume(case, rng):
        return TaskSample({"t2w": case.t2w}, np.float32(case.gland.sum() * np.prod(case.spacing) / 1000),
                          {"body": case.body, "gland": case.gland}, case.case_id)

    register_task(TaskSpec(name="gland_volume", kind="scalar_regression", out_channels=1,
                           primary_metric="mae", higher_is_better=False, metrics=("mae",),
                           channel_inputs=("t2w", "", ""), single_input="t2w", uses_labels=True,
                           make_sample=make_volume, description="T2W -> gland volume (mL)."))

Kinds (strategies in :mod:`transferlimits.tasks.kinds`): ``classification`` (target: int class),
``segmentation`` (target: int label map [D, H, W]), ``regression`` (dense regression, target: float32
volume [D, H, W]), ``scalar_regression`` (target: float scalar). The five tasks registered here are the
built-in profiles' :data:`transferlimits.config.STUDY_TASKS`; :func:`check_profile_tasks` checks a profile's
task names against the registry where the profile is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from transferlimits.data.case import MRCase
from transferlimits.data.degrade import epi_distortion, through_plane_degrade
from transferlimits.tasks.kinds import KIND_REGISTRY, get_kind
from transferlimits.tasks.kinds.base import add_entry, find_entry

__all__ = [
    "TaskSpec", "TaskSample", "TASK_REGISTRY", "TASK_KINDS", "register_task", "get_task", "check_profile_tasks",
    "pirads_class", "rectal_gas_mask", "SR_SLICE_FACTOR", "LESION_SEQUENCE",
]

#: super-resolution's through-plane factor: ``SR_SLICE_FACTOR`` adjacent slices averaged into one thick slice (STUDY
#: §4 says x2). At x2 on the ``cpu`` grid (3 mm slices) no network beat the closed-form 3x3x3 linear filter in its
#: fine-tuning budget (31.99 dB; scratch ProFound 31.24, ProViCNet 31.43; ProFound 31.59 at 3x the steps). At x4 (12 mm
#: thick slices on the cpu grid, 4 mm on the reference grid) the filter gains 0.28 dB over the input (26.91 -> 27.18)
#: and, seeds 0-2 outside the grid, scratch networks score 27.67 (ProFound) / 27.31 (ProViCNet) and the positive
#: controls 28.22 / 27.71 (gain t = 10.8 / 32.8); a wider 7x5x5 linear filter reaches 27.66
#: (benchmarks/records/super_resolution_factor_2026-12-04.json). STUDY §5.1 lets a task's degradation be re-set so
#: that a network beats its linear reference.
SR_SLICE_FACTOR = 4

#: the one sequence a single-sequence (2.5D, ProViCNet) model reads on the lesion tasks (classification, segmentation).
#: It was T2W; on the phantom cohort a csPCa lesion's contrast-to-noise against the gland around it is -0.5 on T2W
#: (its 16-28 % T2W drop hides in the zone's texture), +2.2 on high-b and -1.3 on ADC (benchmarks/lesion_contrast.py),
#: and from T2W no ProViCNet encoder, the positive control included, segmented a lesion voxel (Dice 0); from high-b a
#: scratch ProViCNet reaches Dice 0.03-0.20 over seeds 0-2 and the positive control 0.18-0.20, and classification's
#: scratch AUROC rises to 0.68 (T2W: 0.46-0.63) (benchmarks/records/provicnet_lesion_sequence_2026-12-04.json).
#: ProFound reads all three sequences as channels whatever this is.
LESION_SEQUENCE = "hbv"

#: the kind names registered at import (new kinds register in :mod:`transferlimits.tasks.kinds`).
TASK_KINDS: tuple[str, ...] = tuple(KIND_REGISTRY)


@dataclass
class TaskSample:
    """One (input, target) pair of a task.

    Attributes:
        inputs: sequence/derived name -> float32 [D, H, W] (e.g. ``"t2w"``, ``"t2w_degraded"``).
        target: float32 [D, H, W] (regression), int label map [D, H, W] (segmentation), int class
            (classification) or float scalar (scalar_regression).
        masks: ``"body"`` and ``"gland"`` uint8 [D, H, W] (evaluation masks).
        case_id: the case.
    """

    inputs: dict[str, np.ndarray]
    target: np.ndarray | int | float
    masks: dict[str, np.ndarray]
    case_id: str
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TaskSpec:
    """What a task is: its kind, head size, metrics, inputs per encoder, and how to make a sample.

    Attributes:
        name: registry key.
        kind: one of :data:`TASK_KINDS`.
        out_channels: classes (classification/segmentation) or 1 (regression kinds).
        primary_metric: the metric RPG is computed on; ``higher_is_better`` its direction.
        metrics: all metric names recorded.
        channel_inputs: 3 input names in ``SEQUENCES`` order [t2w, hbv, adc], the channels of a multi-channel
            (3D, ProFound-like) model; ``""`` = zero channel.
        single_input: the one input name a single-sequence (2.5D, ProViCNet-like) model sees.
        uses_labels: False for restoration tasks (they also run on the real exams as external test).
        make_sample: ``(case, rng) -> TaskSample``.
        description: one paragraph (shown by the book), including the input choices.
        target_unit: units of a ``"regression"`` target (``data.views.target_units``). ``None`` (restoration
            of the input's own modality): the target in the z-score of ``single_input`` over the body mask,
            i.e. exactly the units of the model's input, so the identity baseline is the input itself; a
            positive float (translation to another modality): a fixed physical unit, ``y = target / unit``.
        dense_output: the output of the kind's dense head, one of the kind's ``outputs`` (default
            ``"default"``). The ``"regression"`` kind also offers ``"warp"`` / ``"warp_no_jacobian"`` /
            ``"warp_blur"`` for same-modality restoration: the input resampled by a displacement along the
            phase-encode axis that the head predicts from encoder features (:mod:`transferlimits.models.warp`;
            distortion correction).
        positive_prelude: tasks (same inputs) the task's positive control learns first
            (:mod:`transferlimits.study.encoder_sources`): it starts from the last one's positive control (whose own
            prelude, if any, it learned before) and then learns the task itself. Default none.
    """

    name: str
    kind: str
    out_channels: int
    primary_metric: str
    higher_is_better: bool
    metrics: tuple[str, ...]
    channel_inputs: tuple[str, str, str]
    single_input: str
    uses_labels: bool
    make_sample: Callable[[MRCase, np.random.Generator], TaskSample]
    description: str = ""
    target_unit: float | None = None
    dense_output: str = "default"
    positive_prelude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KIND_REGISTRY:
            raise ValueError(f"task {self.name!r}: unknown kind {self.kind!r}; valid: {sorted(KIND_REGISTRY)}")
        if len(self.channel_inputs) != 3:
            raise ValueError(f"task {self.name!r}: channel_inputs must have 3 entries, got {self.channel_inputs}")
        if self.out_channels < 1:
            raise ValueError(f"task {self.name!r}: out_channels must be >= 1, got {self.out_channels}")
        get_kind(self.kind).check_output(self)
        get_kind(self.kind).validate(self)
        if not self.single_input:
            raise ValueError(f"task {self.name!r}: single_input must name an input")
        if self.primary_metric not in self.metrics:
            raise ValueError(f"task {self.name!r}: primary_metric {self.primary_metric!r} not in {self.metrics}")
        if self.target_unit is not None and not float(self.target_unit) > 0:
            raise ValueError(f"task {self.name!r}: target_unit must be None or > 0, got {self.target_unit}")


TASK_REGISTRY: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec, overwrite: bool = False) -> TaskSpec:
    """Add ``spec`` to :data:`TASK_REGISTRY` (ValueError if the name exists and not ``overwrite``)."""
    if not isinstance(spec, TaskSpec):
        raise ValueError(f"register_task needs a TaskSpec, got {type(spec).__name__}")
    return add_entry(TASK_REGISTRY, spec.name, spec, overwrite, "task")


def get_task(name: str) -> TaskSpec:
    """The registered task ``name`` (ValueError listing the valid names otherwise)."""
    return find_entry(TASK_REGISTRY, name, "task")


def check_profile_tasks(profile: Any) -> None:
    """Check that every task a profile names (``tasks``, ``control_tasks``) is registered.

    Call it where a profile is consumed, after any ``--task-module`` has registered its tasks.

    Args:
        profile: a :class:`~transferlimits.config.Profile` (or any object with ``name``, ``tasks`` and
            ``control_tasks``).

    Raises:
        ValueError: a task is not registered (the message names the profile, the unknown tasks and the valid
            ones).
    """
    named = list(getattr(profile, "tasks", ())) + list(getattr(profile, "control_tasks", ()))
    unknown = sorted(set(named) - set(TASK_REGISTRY))
    if unknown:
        raise ValueError(f"profile {getattr(profile, 'name', '?')!r}: unknown task(s) {unknown}; "
                         f"valid: {list(TASK_REGISTRY)}")


def pirads_class(pirads: int | None) -> int:
    """PI-RADS -> class: <= 2 -> 0, 3 -> 1, 4 -> 2, 5 -> 3; a missing PI-RADS counts as class 0.

    Missing PI-RADS in the PI-CAI marksheet means no lesion was reported, i.e. a negative MRI.
    """
    if pirads is None or (isinstance(pirads, float) and np.isnan(pirads)):
        return 0
    p = int(pirads)
    return 0 if p <= 2 else min(p, 5) - 2


def rectal_gas_mask(case: MRCase) -> np.ndarray:
    """Susceptibility source proxy: dark (T2W < 0.15 x gland median) body voxels behind the gland."""
    gland = case.zones > 0
    ref = float(np.median(case.t2w[gland])) if gland.any() else float(np.median(case.t2w))
    dark = (case.t2w < 0.15 * ref) & (case.body > 0)
    if gland.any():
        post = np.nonzero(gland.any(axis=(0, 2)))[0].max()
        dark[:, : post + 1] = False
    return dark


def _masks(case: MRCase) -> dict[str, np.ndarray]:
    return {"body": case.body.astype(np.uint8), "gland": case.gland}


def _all_inputs(case: MRCase) -> dict[str, np.ndarray]:
    return {"t2w": case.t2w, "hbv": case.hbv, "adc": case.adc}


def _classification(case: MRCase, rng: np.random.Generator) -> TaskSample:
    return TaskSample(_all_inputs(case), pirads_class(case.clinical.get("pirads")), _masks(case), case.case_id)


def _segmentation(case: MRCase, rng: np.random.Generator) -> TaskSample:
    return TaskSample(_all_inputs(case), (case.lesion == 2).astype(np.int64), _masks(case), case.case_id)


def _super_resolution(case: MRCase, rng: np.random.Generator) -> TaskSample:
    return TaskSample({"t2w_degraded": through_plane_degrade(case.t2w, SR_SLICE_FACTOR)}, case.t2w.astype(np.float32),
                      _masks(case), case.case_id)


def _distortion(case: MRCase, rng: np.random.Generator) -> TaskSample:
    distorted, disp = epi_distortion(case.hbv, case.spacing, rng, max_shift_mm=4.0, mask=rectal_gas_mask(case))
    return TaskSample({"hbv_distorted": distorted}, case.hbv.astype(np.float32), _masks(case), case.case_id,
                      extra={"displacement": disp})


def _translation(case: MRCase, rng: np.random.Generator) -> TaskSample:
    return TaskSample({"t2w": case.t2w}, case.adc.astype(np.float32), _masks(case), case.case_id)


for _spec in (
    TaskSpec("classification", "classification", 4, "auroc_ge4", True,
             ("auroc_ge4", "qwk", "accuracy", "auroc_ge3"), ("t2w", "hbv", "adc"), LESION_SEQUENCE, True,
             _classification,
             "mpMRI -> case PI-RADS class (<=2, 3, 4, 5; missing PI-RADS = class 0). ProFound sees [T2W, hbv, "
             "ADC]; ProViCNet sees high-b DWI 2.5D stacks (one sequence per model, as upstream; the phantom's "
             "lesions show on high-b, hardly on T2W) and pools slices.",
             # the label lives in ~100-voxel lesions that training on the label alone does not put into the pooled
             # embedding at the cpu grid; an encoder that first learned to segment them does carry it
             # (benchmarks/classification_signal.py, records/positive_control_limits_2026-12-05.json)
             positive_prelude=("segmentation",)),
    TaskSpec("segmentation", "segmentation", 2, "dice", True, ("dice", "hd95", "lesion_sensitivity"),
             ("t2w", "hbv", "adc"), LESION_SEQUENCE, True, _segmentation,
             "mpMRI -> csPCa lesion mask (lesion label 2; PI-RADS-only findings are background). ProFound sees "
             "[T2W, hbv, ADC]; ProViCNet sees high-b DWI 2.5D stacks (the phantom's lesions show on high-b, hardly "
             "on T2W), predictions re-stacked to 3D."),
    TaskSpec("super_resolution", "regression", 1, "psnr", True, ("psnr", "ssim", "nmse"),
             ("t2w_degraded", "", ""), "t2w_degraded", False, _super_resolution,
             f"T2W with through-plane resolution reduced {SR_SLICE_FACTOR}x (groups of {SR_SLICE_FACTOR} adjacent "
             "slices averaged into thick slices, resampled back linearly) -> T2W. "
             "ProFound: the degraded T2W in its T2W channel, hbv/ADC channels zero; ProViCNet: degraded T2W."),
    TaskSpec("distortion_correction", "regression", 1, "psnr", True, ("psnr", "ssim", "nmse"),
             ("", "hbv_distorted", ""), "hbv_distorted", False, _distortion,
             "High-b DWI warped by a simulated EPI susceptibility field (smooth B0 map + bump at rectal gas, "
             "<= 4 mm along anterior-posterior, Jacobian modulation) -> undistorted high-b. ProFound: the "
             "distorted image in its hbv channel, others zero; ProViCNet: the distorted high-b. The dense head "
             "outputs the input warped along anterior-posterior by a displacement field it predicts from the "
             "encoder's features, averaged over the displacement's predicted SD (with the Jacobian factor).",
             dense_output="warp_blur"),
    TaskSpec("modality_translation", "regression", 1, "mae_gland", False, ("mae_gland", "psnr", "ssim"),
             ("t2w", "", ""), "t2w", False, _translation,
             "T2W -> ADC. ProFound: T2W in its T2W channel, others zero; ProViCNet: T2W. MAE inside the gland "
             "on ADC in 10^-3 mm^2/s (a fixed unit: ADC is quantitative, see data.views).", target_unit=1000.0),
):
    register_task(_spec)
