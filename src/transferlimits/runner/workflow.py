"""The study grid and the Snakemake command line: everything the Snakefile and the CLI share.

The Snakefile (``workflow/Snakefile``) asks :func:`build_grid` which jobs exist; the CLI asks
:func:`snakemake_command` how to call Snakemake. Snakemake itself decides what is up to date.

Extension point for new tasks: a Python module that calls
``transferlimits.data.tasks.register_task(TaskSpec(...))`` is named with ``--task-module`` (importable
from the working directory or ``PYTHONPATH``); every task it registers that the profile does not list
joins the grid. Its notebook template is ``--task-notebook TASK=PATH`` or, by default, the file
``notebooks/NN_<task>.py``.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from transferlimits import paths
from transferlimits.config import NATIVE_OBJECTIVE, SWAPPED_OBJECTIVE, get_profile

__all__ = [
    "ONLY_KEYS",
    "Grid",
    "parse_only",
    "load_task_modules",
    "task_template",
    "build_grid",
    "executed_notebook",
    "metrics_path",
    "snakemake_command",
    "SNAKEFILE",
]

SNAKEFILE: Path = paths.ROOT / "workflow" / "Snakefile"
ONLY_KEYS = ("task", "model", "seed")


@dataclass(frozen=True)
class Grid:
    """The jobs of one profile after ``--only`` filtering.

    Attributes:
        profile: profile name.
        runs: native (task, model, seed) points.
        swapped: (task, model, seed) points of the objective x architecture control.
        pretrain: (model, objective) pre-training jobs the runs need (models with released weights skip it).
        templates: task -> notebook template path.
    """

    profile: str
    runs: tuple[tuple[str, str, int], ...]
    swapped: tuple[tuple[str, str, int], ...]
    pretrain: tuple[tuple[str, str], ...]
    templates: Mapping[str, str] = field(default_factory=dict)


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


def load_task_modules(modules: Iterable[str]) -> list[str]:
    """Import modules that register tasks; return the names of tasks they added (in order).

    Raises:
        ValueError: a module cannot be imported.
    """
    from transferlimits.data import tasks as task_registry

    before = set(task_registry.TASK_REGISTRY)
    for name in modules:
        if not name:
            continue
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ValueError(f"task module {name!r} cannot be imported: {exc}") from None
    return [t for t in task_registry.TASK_REGISTRY if t not in before]


def task_template(task: str, task_notebooks: Mapping[str, str] | None = None) -> Path:
    """Notebook template of ``task``: ``task_notebooks[task]`` or ``notebooks/NN_<task>.py``.

    Raises:
        ValueError: no template found (the message lists the templates that exist).
    """
    if task_notebooks and task in task_notebooks:
        path = Path(task_notebooks[task]).resolve()
        if not path.is_file():
            raise ValueError(f"notebook template for task {task!r} does not exist: {path}")
        return path
    found = sorted(paths.NOTEBOOKS.glob(f"[0-9][0-9]_{task}.py"))
    if not found:
        have = sorted(p.name for p in paths.NOTEBOOKS.glob("1[0-9]_*.py"))
        raise ValueError(f"no notebook template for task {task!r}; pass --task-notebook {task}=PATH (have: {have})")
    return found[0]


def build_grid(
    profile: str,
    only: Mapping[str, set[str]] | None = None,
    task_modules: Sequence[str] = (),
    task_notebooks: Mapping[str, str] | None = None,
    weights: Mapping[str, str] | None = None,
) -> Grid:
    """All jobs of ``profile``: native runs, swapped control runs, pre-training, templates.

    Args:
        profile: profile name (smoke, reference, picai).
        only: ``{"task"|"model"|"seed": values}`` filter (see :func:`parse_only`). Default none.
        task_modules: modules that register extra tasks (the extension point). Default none.
        task_notebooks: task -> template path overrides. Default none.
        weights: model -> released encoder weights; such models skip pre-training and the control.
    """
    prof = get_profile(profile)
    only = dict(only or {})
    extra = load_task_modules(task_modules)
    tasks = list(prof.tasks) + [t for t in extra if t not in prof.tasks]
    for key, values in only.items():
        valid = {"task": tasks, "model": list(prof.models), "seed": [str(s) for s in prof.seeds]}[key]
        bad = sorted(set(values) - set(valid))
        if bad:
            raise ValueError(f"--only {key}={bad[0]} is not in profile {profile!r}; valid: {valid}")

    def keep(task: str, model: str, seed: int) -> bool:
        return all(
            str(v) in only.get(k, {str(v)}) for k, v in (("task", task), ("model", model), ("seed", seed))
        )

    weights = dict(weights or {})
    runs = tuple((t, m, s) for t in tasks for m in prof.models for s in prof.seeds if keep(t, m, s))
    swapped = tuple(
        (t, m, s) for t in prof.control_tasks for m in prof.models for s in prof.seeds
        if keep(t, m, s) and m not in weights and t in tasks
    )
    pre = {(m, NATIVE_OBJECTIVE[m]) for _, m, _ in runs if m not in weights}
    pre |= {(m, SWAPPED_OBJECTIVE[m]) for _, m, _ in swapped}
    templates = {t: str(task_template(t, task_notebooks)) for t in {r[0] for r in runs}}
    return Grid(profile, runs, swapped, tuple(sorted(pre)), templates)


def executed_notebook(profile: str, name: str) -> Path:
    """Path of an executed notebook the book includes: ``generated_dir(profile)/<name>.ipynb``."""
    return paths.generated_dir(profile) / f"{name}.ipynb"


def metrics_path(profile: str, task: str, model: str, seed: int, swapped: bool = False) -> Path:
    """``metrics.json`` of one point; the swapped-objective control run uses the ``__swapped`` folder."""
    folder = paths.run_dir(profile, task, model, seed)
    if swapped:
        folder = folder.with_name(folder.name + "__swapped")
    return folder / "metrics.json"


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
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(config), sort_keys=True))
    return path


def notebook_timings(profile: str) -> dict[str, float]:
    """Seconds per executed notebook of the last runs, parsed from ``results/<profile>/logs/*.log``."""
    import re

    out: dict[str, float] = {}
    for log in sorted((paths.results_dir(profile) / "logs").glob("*.log")):
        m = re.search(r"\[notebook\] \S+ -> (\S+) in ([0-9.]+) s", log.read_text(errors="replace"))
        if m:
            out[Path(m.group(1)).stem] = float(m.group(2))
    return out
