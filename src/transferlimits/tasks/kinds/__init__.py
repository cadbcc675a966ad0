"""Task kinds: one strategy object per kind (see :mod:`.base`), registered by name on import.

``classification``, ``segmentation``, ``regression`` (dense regression) and ``scalar_regression``.
"""

from transferlimits.tasks.kinds import classification, dense_regression, scalar_regression, segmentation
from transferlimits.tasks.kinds.base import AUX_WEIGHT, KIND_REGISTRY, DenseKind, TaskKind, get_kind, register_kind

__all__ = ["AUX_WEIGHT", "KIND_REGISTRY", "DenseKind", "TaskKind", "get_kind", "register_kind",
           "classification", "segmentation", "dense_regression", "scalar_regression"]
