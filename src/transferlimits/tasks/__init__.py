"""Downstream tasks: the task registry (:mod:`.registry`) and one strategy per task kind (:mod:`.kinds`).

A task of an existing kind is one :func:`register_task` call; a new kind is one module in ``kinds/``.
"""

from transferlimits.tasks.kinds import KIND_REGISTRY, TaskKind, get_kind, register_kind
from transferlimits.tasks.registry import (
    TASK_KINDS,
    TASK_REGISTRY,
    TaskSample,
    TaskSpec,
    get_task,
    pirads_class,
    rectal_gas_mask,
    register_task,
)

__all__ = ["KIND_REGISTRY", "TaskKind", "get_kind", "register_kind", "TASK_KINDS", "TASK_REGISTRY", "TaskSample",
           "TaskSpec", "get_task", "pirads_class", "rectal_gas_mask", "register_task"]
