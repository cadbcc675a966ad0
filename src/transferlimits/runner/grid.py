"""The study grid of a profile: one job per (task, model) pair, the pre-trainings they need, and the order.

:func:`build_grid` answers which jobs exist after ``--only`` (the Snakefile and the CLI both ask it); a
:class:`PairJob` is one notebook that runs every seed and objective of its pair (``study.run_pair``).
:func:`pair_priorities` orders the pair jobs longest first by the time their points took in the profile's last
run, so the cores stay busy to the end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from transferlimits import paths
from transferlimits.config import get_profile
from transferlimits.models.registry import check_profile_models, get_model
from transferlimits.runner.extensions import load_model_modules, load_task_modules, task_template
from transferlimits.study.pair import pair_objectives
from transferlimits.tasks.registry import check_profile_tasks

__all__ = ["ONLY_KEYS", "PairJob", "Grid", "parse_only", "build_grid", "analysis_indexes", "pair_priorities"]

ONLY_KEYS = ("task", "model", "seed")


@dataclass(frozen=True)
class PairJob:
    """One notebook of the grid: a (task, model) pair and the points its one job writes.

    Attributes:
        task, model: the pair. seeds: its seeds (after ``--only``). objectives: ``("native",)`` or
        ``("native", "swapped")`` (the 2x2 control), then the profile's encoder controls. released: the model uses released weights.
    """

    task: str
    model: str
    seeds: tuple[int, ...]
    objectives: tuple[str, ...]
    released: bool = False

    @property
    def name(self) -> str:
        """``<task>__<model>``: the executed notebook's stem and the job's log name."""
        return paths.pair_name(self.task, self.model)

    def points(self) -> tuple[tuple[int, str], ...]:
        """``(seed, objective kind)`` of every point, in the order the notebook runs them."""
        return tuple((s, o) for s in self.seeds for o in self.objectives)


@dataclass(frozen=True)
class Grid:
    """The jobs of one profile after ``--only`` filtering.

    Attributes:
        profile: profile name.
        pairs: one job per (task, model): the pair's notebook runs all its seeds and objectives.
        pretrain: (model, objective) pre-training jobs the runs need (models with released weights skip it).
        templates: task -> notebook template path.
        num_threads: the profile's torch threads per run (``Profile.num_threads``; 0 = all of a job's cores): a
            pre-training reserves this many cores, not all, so single-threaded ones run side by side.
    """

    profile: str
    pairs: tuple[PairJob, ...]
    pretrain: tuple[tuple[str, str], ...]
    templates: Mapping[str, str] = field(default_factory=dict)
    num_threads: int = 0

    @property
    def runs(self) -> tuple[tuple[str, str, int], ...]:
        """Native (task, model, seed) points."""
        return tuple((j.task, j.model, s) for j in self.pairs for s in j.seeds)

    @property
    def swapped(self) -> tuple[tuple[str, str, int], ...]:
        """(task, model, seed) points of the objective x architecture control."""
        return tuple((j.task, j.model, s) for j in self.pairs if "swapped" in j.objectives for s in j.seeds)



def parse_only(spec: str | None) -> dict[str, set[str]]:
    """Parse ``task=a,model=b,task=c`` into ``{"task": {"a","c"}, "model": {"b"}}``.

    Raises:
        ValueError: a malformed item or an unknown key (valid: task, model, seed).
    """
    out: dict[str, set[str]] = {}
    for item in filter(None, (s.strip() for s in (spec or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not value:
            raise ValueError(f"--only item {item!r} is not KEY=VALUE; valid keys: {list(ONLY_KEYS)}")
        if key not in ONLY_KEYS:
            raise ValueError(f"--only key {key!r} is unknown; valid keys: {list(ONLY_KEYS)}")
        out.setdefault(key, set()).add(value)
    return out


def build_grid(
    profile: str,
    only: Mapping[str, set[str]] | None = None,
    task_modules: Sequence[str] = (),
    task_notebooks: Mapping[str, str] | None = None,
    weights: Mapping[str, str] | None = None,
    model_modules: Sequence[str] = (),
    profile_overrides: Mapping[str, Any] | None = None,
) -> Grid:
    """All jobs of ``profile``: one per (task, model) pair (its seeds and objectives), pre-training, templates.

    Args:
        profile: profile name (smoke, reference, picai).
        only: ``{"task"|"model"|"seed": values}`` filter (see :func:`parse_only`). Default none.
        task_modules: modules that register extra tasks (the extension point). Default none.
        task_notebooks: task -> template path overrides. Default none.
        weights: model -> released encoder weights; such models skip pre-training and the control.
        model_modules: modules that register extra foundation models (the extension point). Default none.
        profile_overrides: ``get_profile`` overrides (``run --set``; e.g. ``{"seeds": [0]}``). Default none.
    """
    prof = get_profile(profile, **dict(profile_overrides or {}))
    only = dict(only or {})
    extra = load_task_modules(task_modules)
    tasks = list(prof.tasks) + [t for t in extra if t not in prof.tasks]
    extra_models = load_model_modules(model_modules)
    check_profile_tasks(prof)  # names are checked at the edge, against the registries (config is a leaf)
    check_profile_models(prof)
    models = list(prof.models) + [m for m in extra_models if m not in prof.models]
    for key, values in only.items():
        valid = {"task": tasks, "model": models, "seed": [str(s) for s in prof.seeds]}[key]
        bad = sorted(set(values) - set(valid))
        if bad:
            raise ValueError(f"--only {key}={bad[0]} is not in profile {profile!r}; valid: {valid}")

    def keep(task: str, model: str, seed: int) -> bool:
        return all(
            str(v) in only.get(k, {str(v)}) for k, v in (("task", task), ("model", model), ("seed", seed))
        )

    weights = dict(weights or {})
    pairs = []
    for task in tasks:
        for model in models:
            seeds = tuple(s for s in prof.seeds if keep(task, model, s))
            if seeds:
                released = model in weights
                pairs.append(PairJob(task, model, seeds, pair_objectives(prof, task, model, released), released))
    pre = {(j.model, get_model(j.model).native_objective) for j in pairs if not j.released}
    pre |= {(j.model, get_model(j.model).swapped_objective) for j in pairs if "swapped" in j.objectives}
    templates = {t: str(task_template(t, task_notebooks)) for t in {j.task for j in pairs}}
    return Grid(profile, tuple(pairs), tuple(sorted(pre)), templates, int(prof.num_threads))


def analysis_indexes(grid: Grid, full: Grid, swapped_only: bool = False) -> list[str]:
    """The pair indexes an analysis rule declares: those of ``grid``'s pairs (made by its jobs) and, when ``--only``
    narrowed the grid, those of the profile's other pairs that exist already (plain input files), so a partial
    run's summaries still cover every finished pair.

    Args:
        grid: the grid of this run. full: the same profile's grid without ``--only``.
        swapped_only: only pairs with the swapped-objective control (the 2x2 control's notebook).
    """
    ours = {(p.task, p.model) for p in grid.pairs}
    pairs = {(p.task, p.model): p for p in full.pairs + grid.pairs}
    out = []
    for (task, model), pair in pairs.items():
        index = paths.pair_index(grid.profile, task, model)
        if swapped_only and "swapped" not in pair.objectives:
            continue
        if (task, model) in ours or index.is_file():
            out.append(str(index))
    return out




def pair_priorities(grid: Grid, roots: Sequence[Path] = ()) -> dict[str, int]:
    """Snakemake priority of each pair job: its points' compute seconds in the last run found under ``roots``
    (default ``results/<profile>`` then the published ``book/generated/<profile>/results``), so the longest
    pairs start first; 0 where no earlier run timed it.
    """
    roots = list(roots) or [paths.results_dir(grid.profile), paths.generated_dir(grid.profile) / "results"]
    out = {}
    for pair in grid.pairs:
        seconds = 0.0
        for seed, objective in pair.points():
            name = paths.point_name(pair.task, pair.model, seed, objective)
            for root in roots:
                f = Path(root) / "runs" / name / "metrics.json"
                try:
                    seconds += float(json.loads(f.read_text())["provenance"]["timings"]["total_s"])
                    break
                except (OSError, ValueError, KeyError, TypeError):
                    continue
        out[pair.name] = int(seconds)
    return out
