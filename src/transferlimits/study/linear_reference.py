"""A cohort's closed-form linear references, one per task that has one: ``results/<profile>/linear_references.json``.

The data notebook writes the file right after the cohort (so every run has it, and the task pages, the run page and
the design check read it); ``python -m transferlimits compute`` writes it as well; a render of results made elsewhere
(``run --render-only``) reads it as that run wrote it (:func:`read_linear_references`). Each task kind says what its
reference is (``TaskKind.linear_reference``: the 3x3x3 least-squares filter of same-modality restoration, a
voxel-wise logistic regression for segmentation; none for classification or translation), fitted on the
``train`` split and scored on ``test`` of data seed 0, on the first of the profile's model views the kind can fit
on (restoration reads the degraded input on the target grid, ``identity_input``, whatever the view; segmentation
needs a whole-volume input, which a slice view does not give).
Single-threaded; about 35 s on the ``cpu`` cohort (distortion correction 26 s).

Layout::

    {"profile", "hardware", "tasks": {task: {"metric", <scores>, "n_test" | "n_lesion_cases", "model", "view",
                                             "seconds"}}}
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from transferlimits.config import Profile
from transferlimits.data.cohort import task_dataset
from transferlimits.jsonsafe import loads_strict
from transferlimits.runtime import atomic_write_json
from transferlimits.tasks import get_kind, get_task

__all__ = ["linear_references", "write_linear_references", "read_linear_references"]


def linear_references(prof: Profile, cohort: Any, hardware: str) -> dict[str, Any]:
    """The references of every task of ``prof`` that has one (module docstring).

    Args:
        prof: the resolved profile (its tasks and models). cohort: the built cohort (``data.cohort.build_cohort``).
        hardware: the machine, in words (recorded beside the values).
    """
    out: dict[str, Any] = {"profile": prof.name, "hardware": hardware, "tasks": {}}
    for task in prof.tasks:
        spec = get_task(task)
        for model in prof.models:  # the first view the kind can fit on (segmentation: a whole-volume input)
            t0 = time.perf_counter()
            train = task_dataset(cohort, task, "train", model, 0, max_cases=prof.finetune_for(task).train_cases)
            test = task_dataset(cohort, task, "test", model, 0)
            ref = get_kind(spec.kind).linear_reference(spec, train, test)
            if ref is not None:
                out["tasks"][task] = {**ref, "view": model, "seconds": time.perf_counter() - t0}
                break
    return out


def write_linear_references(prof: Profile, cohort: Any, hardware: str, path: Path) -> dict[str, Any]:
    """Compute :func:`linear_references` and write them to ``path`` atomically; returns them."""
    refs = linear_references(prof, cohort, hardware)
    atomic_write_json(Path(path), refs)
    return refs


def read_linear_references(path: Path) -> dict[str, Any]:
    """The references as a run wrote them (a render of results made elsewhere reads them, never re-fits them).

    Raises:
        ValueError: ``path`` missing, unparseable or without its ``tasks`` (naming the file).
    """
    path = Path(path)
    try:
        refs = loads_strict(path.read_text())  # the project's strict JSON: NaN/Infinity are errors
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: the run's linear references cannot be read ({exc}); a render needs the file "
                         "the computing run wrote") from exc
    if not isinstance(refs, dict) or not isinstance(refs.get("tasks"), dict):
        raise ValueError(f"{path}: not a linear-references file (no 'tasks' mapping)")
    return refs
