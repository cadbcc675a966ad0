"""Measurements of transferlimits: task metrics, baselines, RPG and convergence, MMD², CKA, LogME, correlation.

See the module docstrings for definitions and conventions (STUDY §5).
"""

from __future__ import annotations

from .baselines import (
    class_prior,
    class_prior_scores,
    empty_mask_scores,
    identity_scores,
    median_constant_scores,
    train_median,
)
from .cka import center_gram, cka, feature_space_linear_cka, gram_linear, gram_rbf
from .logme import linear_probe_score, logme
from .correlation import average_seeds, correlate_points, standardise_by, within_group_correlation
from .mmd import MMDTestResult, median_bandwidth, mmd2, mmd2_ci, mmd2_multi, mmd2_test
from .mmd_paired import (
    MULTIPLIERS,
    PairedKernel,
    PairedMMDResult,
    median_sigma,
    mmd2_paired,
    mmd2_paired_ci,
    mmd2_paired_clustered,
    mmd2_paired_multi,
    mmd2_paired_test,
)
from .convergence import RunCurve, convergence_table, curve_of, find_crossing, time_to_fraction
from .stats import bootstrap_ci, correlate
from .tasks import (
    METRIC_DIRECTION,
    PSNR_CAP_DB,
    aggregate,
    classification_scores,
    restoration_scores,
    segmentation_scores,
)
from .transfer import (
    RPGStatus,
    convergence_summary,
    epochs_to_fraction,
    normalised_gain,
    rpg,
    rpg_status,
    seconds_to_fraction,
)

__all__ = [
    "METRIC_DIRECTION",
    "MMDTestResult",
    "MULTIPLIERS",
    "PSNR_CAP_DB",
    "PairedKernel",
    "PairedMMDResult",
    "RPGStatus",
    "RunCurve",
    "aggregate",
    "average_seeds",
    "bootstrap_ci",
    "center_gram",
    "cka",
    "class_prior",
    "class_prior_scores",
    "classification_scores",
    "convergence_summary",
    "convergence_table",
    "correlate",
    "correlate_points",
    "curve_of",
    "empty_mask_scores",
    "epochs_to_fraction",
    "feature_space_linear_cka",
    "find_crossing",
    "gram_linear",
    "gram_rbf",
    "identity_scores",
    "linear_probe_score",
    "logme",
    "median_bandwidth",
    "median_constant_scores",
    "median_sigma",
    "mmd2",
    "mmd2_ci",
    "mmd2_multi",
    "mmd2_paired",
    "mmd2_paired_ci",
    "mmd2_paired_clustered",
    "mmd2_paired_multi",
    "mmd2_paired_test",
    "mmd2_test",
    "normalised_gain",
    "restoration_scores",
    "rpg",
    "rpg_status",
    "seconds_to_fraction",
    "segmentation_scores",
    "standardise_by",
    "time_to_fraction",
    "train_median",
    "within_group_correlation",
]
