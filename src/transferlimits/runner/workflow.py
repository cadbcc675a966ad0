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

import re
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from transferlimits import paths
from transferlimits.runner.extensions import TASK_TEMPLATE, load_model_modules, load_task_modules, task_template
from transferlimits.runner.grid import ONLY_KEYS, Grid, PairJob, analysis_indexes, build_grid, pair_priorities, parse_only

__all__ = [
    "ONLY_KEYS",
    "Grid",
    "PairJob",
    "parse_only",
    "load_task_modules",
    "load_model_modules",
    "task_template",
    "build_grid",
    "analysis_indexes",
    "pair_priorities",
    "repo_relative_paths",
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


#: Source files each Snakefile rule depends on, by concern (paths under ``src/transferlimits``; a folder
#: means its ``*.py`` files, ``*.py`` the package's top-level modules: paths, runtime, resolved, cli). The core
#: is needed by every rule: the ``config`` package (profiles), ``tasks/`` (registered on import, checked at the
#: edge), whose kinds score with ``metrics/``, and the ``runner/`` modules that run a notebook. An edit in
#: ``figures/`` therefore re-runs only the rules whose notebooks plot with it; an edit in ``models/`` re-runs
#: pre-training and the pairs (whose points are re-computed only where their code fingerprint changed).
CORE_SOURCES: tuple[str, ...] = ("*.py", "config", "tasks", "metrics", "runner/notebook.py", "runner/params.py",
                                 "runner/provenance.py")
RULE_SOURCES: dict[str, tuple[str, ...]] = {
    "resolve_profile": ("*.py", "config", "runner/resolve_profile.py"),
    "data": CORE_SOURCES + ("data", "figures/__init__.py", "figures/data.py", "study/linear_reference.py"),
    "pretrain": CORE_SOURCES + ("data", "models", "training"),
    "pair": CORE_SOURCES + ("data", "models", "training", "study", "figures/__init__.py", "figures/training.py",
                            "figures/pair.py", "figures/palette.py"),
    "control": CORE_SOURCES + ("models", "study", "figures"),  # objective families come from the adapters
    "alignment": CORE_SOURCES + ("models", "study", "figures"),
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
