"""The study grid and the Snakemake command line: everything the Snakefile and the CLI share.

The Snakefile (``workflow/Snakefile``) asks :func:`build_grid` which jobs exist; the CLI asks
:func:`snakemake_command` how to call Snakemake. Snakemake itself decides what is up to date.

Extension point for new tasks: a Python module that calls
``transferlimits.tasks.register_task(TaskSpec(...))`` is named with ``--task-module`` (importable
from the working directory or ``PYTHONPATH``); every task it registers that the profile does not list
joins the grid. Every task runs the one template ``notebooks/10_task.py`` (:data:`TASK_TEMPLATE`) unless
``--task-notebook TASK=PATH`` names another.

Extension point for new foundation models: a module that calls
``transferlimits.models.registry.register_model(adapter)`` is named with ``--model-module``; every model it
registers that the profile does not list joins the grid (restrict it with ``--only model=NAME``).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import yaml

from transferlimits import paths
from transferlimits.config import get_profile
from transferlimits.models.registry import MODEL_REGISTRY, get_model
from transferlimits.study.pair import has_control
from transferlimits.tasks import registry as task_registry

__all__ = [
    "ONLY_KEYS",
    "Grid",
    "PairJob",
    "parse_only",
    "load_task_modules",
    "load_model_modules",
    "task_template",
    "build_grid",
    "executed_notebook",
    "metrics_path",
    "snakemake_command",
    "SNAKEFILE",
    "TASK_TEMPLATE",
    "CORE_SOURCES",
    "RULE_SOURCES",
    "rule_sources",
]

SNAKEFILE: Path = paths.ROOT / "workflow" / "Snakefile"
#: the notebook template of every task, executed once per (task, model): all its seeds and objectives.
TASK_TEMPLATE: Path = paths.NOTEBOOKS / "10_task.py"
ONLY_KEYS = ("task", "model", "seed")


@dataclass(frozen=True)
class PairJob:
    """One notebook of the grid: a (task, model) pair and the points its one job writes.

    Attributes:
        task, model: the pair. seeds: its seeds (after ``--only``). objectives: ``("native",)`` or
        ``("native", "swapped")`` (the 2x2 control). released: the model uses released weights.
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

    def metrics_files(self, objective: str | None = None) -> list[Path]:
        """``metrics.json`` of every point (of one objective kind when given), in grid order."""
        return [paths.run_dir(self.profile, j.task, j.model, s, o) / "metrics.json"
                for j in self.pairs for s, o in j.points() if objective in (None, o)]


#: Source files each Snakefile rule depends on, by concern (paths under ``src/transferlimits``; a folder
#: means its ``*.py`` files, ``*.py`` the package's top-level modules: config, paths, runtime, cli). The core
#: is needed by every rule: config derives ``TASKS`` from ``tasks/``, whose kinds score with ``metrics/``, and
#: every rule runs a notebook through ``runner/``. An edit in ``figures/`` therefore re-runs only the rules
#: whose notebooks plot with it; an edit in ``models/`` re-runs pre-training and the task runs.
CORE_SOURCES: tuple[str, ...] = ("*.py", "tasks", "metrics", "runner/notebook.py", "runner/params.py",
                                 "runner/provenance.py")
RULE_SOURCES: dict[str, tuple[str, ...]] = {
    "data": CORE_SOURCES + ("data", "figures/__init__.py", "figures/data.py"),
    "pretrain": CORE_SOURCES + ("data", "models", "training"),
    "pair": CORE_SOURCES + ("data", "models", "training", "study", "figures/__init__.py", "figures/training.py",
                            "figures/pair.py"),
    "control": CORE_SOURCES + ("study", "figures"),
    "alignment": CORE_SOURCES + ("study", "figures"),
}


def rule_sources(rule: str, root: Path | None = None) -> list[str]:
    """Sorted source files of ``rule`` (see :data:`RULE_SOURCES`) under ``root`` (default the package).

    Raises:
        ValueError: an unknown rule (the message lists the known ones).
    """
    if rule not in RULE_SOURCES:
        raise ValueError(f"unknown rule {rule!r}; valid: {sorted(RULE_SOURCES)}")
    root = Path(root) if root is not None else paths.ROOT / "src" / "transferlimits"
    files: set[Path] = set()
    for entry in RULE_SOURCES[rule]:
        target = root / entry
        files |= set(target.rglob("*.py")) if target.is_dir() else set(root.glob(entry))
    return sorted(str(f) for f in files)


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
            raise ValueError(f"{what} module {name!r} cannot be imported: {exc}") from None


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
                control = has_control(prof, task, model, released)
                pairs.append(PairJob(task, model, seeds, ("native", "swapped") if control else ("native",), released))
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


def repo_relative_paths(files: Iterable[str | Path]) -> list[str]:
    """Paths inside the repository made repository-relative (notebook parameters name no machine path)."""
    root = paths.ROOT.resolve()
    out = []
    for f in files:
        path = Path(f).resolve()
        out.append(path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path))
    return out


def executed_notebook(profile: str, name: str) -> Path:
    """Path of an executed notebook the book includes: ``generated_dir(profile)/<name>.ipynb``."""
    return paths.generated_dir(profile) / f"{name}.ipynb"


def metrics_path(profile: str, task: str, model: str, seed: int, swapped: bool = False) -> Path:
    """``metrics.json`` of one point (the swapped-objective control when ``swapped``)."""
    return paths.run_dir(profile, task, model, seed, "swapped" if swapped else "native") / "metrics.json"


def snakemake_command(
    configfile: str | Path,
    cores: int = 2,
    targets: Sequence[str] = (),
    force: Sequence[str] = (),
    dry_run: bool = False,
    profile_dir: str | Path | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The Snakemake command line the CLI runs.

    Args:
        configfile: YAML with the run's config (profile, only, task modules, weights ...).
        cores: local cores (``--cores``). Default 2.
        targets: target files; default the Snakefile's ``all`` rule.
        force: files to re-create even if up to date (``--forcerun``).
        dry_run: only list the jobs (``--dry-run``). Default False.
        profile_dir: a Snakemake profile folder (e.g. ``workflow/profiles/slurm``). Default the local one.
        extra: further Snakemake arguments, passed through.
    """
    if int(cores) < 1:
        raise ValueError(f"cores must be >= 1, got {cores}")
    cmd = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(SNAKEFILE),
        "--directory", str(paths.ROOT),
        "--configfile", str(configfile),
        "--cores", str(int(cores)),
        "--rerun-incomplete",
        "--printshellcmds",
        "--profile", str(profile_dir or paths.ROOT / "workflow" / "profiles" / "local"),
    ]
    if dry_run:
        cmd.append("--dry-run")
    if force:
        cmd += ["--forcerun", *force]
    cmd += list(extra)
    cmd += list(targets)
    return cmd


def write_config(path: str | Path, config: Mapping[str, Any]) -> Path:
    """Write the run config as YAML (what ``--configfile`` reads)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(config), sort_keys=True))
    return path


def notebook_timings(profile: str) -> dict[str, float]:
    """Seconds per executed notebook of the last runs, parsed from ``results/<profile>/logs/*.log``."""
    out: dict[str, float] = {}
    for log in sorted((paths.results_dir(profile) / "logs").glob("*.log")):
        m = re.search(r"\[notebook\] \S+ -> (\S+) in ([0-9.]+) s", log.read_text(errors="replace"))
        if m:
            out[Path(m.group(1)).stem] = float(m.group(2))
    return out
