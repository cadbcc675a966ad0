"""Task kinds: one strategy object per kind (see :mod:`.base`), each registered by its own module on import.

The package imports every module it holds, so a new kind is one module here (or in a user's ``--task-module``)
that subclasses :class:`TaskKind` (or :class:`DenseKind`) and calls :func:`register_kind`; nothing else names
it. Built in: ``classification``, ``segmentation``, ``regression`` (dense regression) and ``scalar_regression``.
"""

from __future__ import annotations

import importlib
import pkgutil

from transferlimits.tasks.kinds.base import AUX_WEIGHT, KIND_REGISTRY, TaskKind, get_kind, register_kind
from transferlimits.tasks.kinds.dense import DenseKind

__all__ = ["AUX_WEIGHT", "KIND_REGISTRY", "DenseKind", "TaskKind", "get_kind", "register_kind"]

#: the kind modules of this package, imported (and so registered) in name order
KIND_MODULES: tuple[str, ...] = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__)
                                             if m.name not in ("base", "dense")))
for _name in KIND_MODULES:
    importlib.import_module(f"{__name__}.{_name}")
