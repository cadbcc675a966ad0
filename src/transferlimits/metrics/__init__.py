"""Measurements of transferlimits: task metrics, RPG and convergence, MMD², CKA, LogME and correlation.

See the module docstrings for definitions and conventions (STUDY §5).
"""

from __future__ import annotations

from .cka import center_gram, cka, feature_space_linear_cka, gram_linear, gram_rbf
from .logme import linear_probe_score, logme
from .mmd import MMDTestResult, median_bandwidth, mmd2, mmd2_ci, mmd2_multi, mmd2_test
from .stats import bootstrap_ci, correlate
from .tasks import (
    METRIC_DIRECTION,
    PSNR_CAP_DB,
    aggregate,
    classification_scores,
    restoration_scores,
    segmentation_scores,
)
from .transfer import convergence_summary, epochs_to_fraction, rpg, seconds_to_fraction

__all__ = [
    "METRIC_DIRECTION",
    "MMDTestResult",
    "PSNR_CAP_DB",
    "aggregate",
    "bootstrap_ci",
    "center_gram",
    "cka",
    "classification_scores",
    "convergence_summary",
    "correlate",
    "epochs_to_fraction",
    "feature_space_linear_cka",
    "gram_linear",
    "gram_rbf",
    "linear_probe_score",
    "logme",
    "median_bandwidth",
    "mmd2",
    "mmd2_ci",
    "mmd2_multi",
    "mmd2_test",
    "restoration_scores",
    "rpg",
    "seconds_to_fraction",
    "segmentation_scores",
]
