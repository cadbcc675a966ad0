"""The extension points of the grid: modules that register tasks or models (``--task-module``,
``--model-module``), and each task's notebook template (``--task-notebook``)."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from transferlimits import paths
from transferlimits.models.registry import MODEL_REGISTRY
from transferlimits.tasks import registry as task_registry

__all__ = ["TASK_TEMPLATE", "load_task_modules", "load_model_modules", "task_template"]

#: the notebook template of every task, executed once per (task, model): all its seeds and objectives.
TASK_TEMPLATE: Path = paths.NOTEBOOKS / "10_task.py"


def _import_modules(modules: Iterable[str], what: str) -> None:
    """Import each named module (from the working directory or ``PYTHONPATH``).

    Raises:
        ValueError: a module cannot be imported (``what`` names the option).
    """
    for name in modules:
        if not name:
            continue
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ValueError(f"--{what}-module {name!r} cannot be imported: {exc}") from None
        except Exception as exc:  # the module itself raised (a bad register_task call, a typo): name it, one line
            raise ValueError(f"--{what}-module {name!r} raised while it was imported: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}") from None


#: (kind, module name) -> the names its import registered, so that a second call returns them again
_REGISTERED_BY: dict[tuple[str, str], list[str]] = {}


def _load_registering(modules: Iterable[str], what: str, registry: Mapping[str, Any],
                      origin: Callable[[Any], str]) -> list[str]:
    """Import modules that register entries in ``registry``; the names each one registered, on every call.

    A module imported earlier (by a notebook or a previous call) is recognised by ``origin(entry)``, the
    module that defines the entry.

    Raises:
        ValueError: a module cannot be imported (``what`` names the option).
    """
    out: list[str] = []
    for name in filter(None, modules):
        key = (what, name)
        if name in sys.modules and key not in _REGISTERED_BY:
            _REGISTERED_BY[key] = [n for n, entry in registry.items() if origin(entry) == name]
        if key not in _REGISTERED_BY:
            before = set(registry)
            _import_modules([name], what)
            _REGISTERED_BY[key] = [n for n in registry if n not in before]
        out += [n for n in _REGISTERED_BY[key] if n not in out]
    return out


def load_task_modules(modules: Iterable[str]) -> list[str]:
    """Import modules that register tasks; the names of the tasks they registered (in order; every call).

    Raises:
        ValueError: a module cannot be imported.
    """
    return _load_registering(modules, "task", task_registry.TASK_REGISTRY,
                             lambda spec: getattr(spec.make_sample, "__module__", ""))


def load_model_modules(modules: Iterable[str]) -> list[str]:
    """Import modules that register foundation models; the names of the models they registered (in order;
    every call).

    Raises:
        ValueError: a module cannot be imported.
    """
    return _load_registering(modules, "model", MODEL_REGISTRY, lambda adapter: type(adapter).__module__)


def task_template(task: str, task_notebooks: Mapping[str, str] | None = None) -> Path:
    """Notebook template of ``task``: ``task_notebooks[task]`` or :data:`TASK_TEMPLATE`.

    Raises:
        ValueError: an override that does not exist.
    """
    if task_notebooks and task in task_notebooks:
        path = Path(task_notebooks[task]).resolve()
        if not path.is_file():
            raise ValueError(f"notebook template for task {task!r} does not exist: {path}")
        return path
    return TASK_TEMPLATE


