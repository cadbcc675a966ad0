"""The files every job of a grid produces, whether they are usable, and keeping them through failed re-runs.

One notion of "up to date", shared by ``run`` and ``status``: a job's outputs must exist AND parse
(:func:`check_output`: ``metrics.json`` through :func:`transferlimits.study.load_metrics`, notebooks through
nbformat, encoders as a torch zip archive), the job must not have failed last time (the record
:data:`FAILED_RECORD`), and Snakemake must find it current (inputs, parameters, code). ``run`` forces the
jobs whose outputs are unusable (:func:`unusable_outputs`); ``status`` reports them; neither needs Snakemake's
own idea of a present-but-truncated file.

Stage, then swap (design): every writer replaces its file atomically (temp file + ``os.replace``), so a
file is either the old or the complete new version. Snakemake, however, deletes a job's outputs before the
job runs and again when it fails. :func:`backup` therefore hard-links every existing output of the grid
into ``results/<profile>/.runtime/backup/`` before Snakemake starts (no copy: the atomic writers give a new
file a new inode, so the link keeps the old content); :func:`restore` afterwards puts back every output
that is missing (its job failed or was interrupted) and returns the failed jobs, which are recorded so the
next plain ``run`` re-runs them and ``status`` lists them.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from transferlimits import paths
from transferlimits.runner.workflow import Grid
from transferlimits.study.pair_index import index_problem
from transferlimits.runtime import atomic_write_json
from transferlimits.study.schema import load_metrics

__all__ = ["JobFiles", "grid_jobs", "check_output", "unusable_outputs", "link_or_copy", "backup", "restore",
           "read_failed", "write_failed", "FAILED_RECORD", "BACKUP_DIR"]

#: failed jobs of the last run (outputs restored or missing), relative to the profile's results folder
FAILED_RECORD = Path(".runtime") / "failed_jobs.json"
BACKUP_DIR = Path(".runtime") / "backup"


@dataclass(frozen=True)
class JobFiles:
    """One Snakemake job: its rule, a readable name, the files it writes and its log.

    Attributes:
        rule: Snakefile rule name (``pair`` for every (task, model) job). name: a readable label (``task__model``
        for a pair). outputs: declared output files. log: the job's log file (notebook output and the runner's
        one-line error). points: a pair's point names, which its index (an output) must list, each unchanged.
    """

    rule: str
    name: str
    outputs: tuple[Path, ...]
    log: Path
    points: tuple[str, ...] = ()


def grid_jobs(grid: Grid, render_only: bool = False) -> list[JobFiles]:
    """Every job of ``grid`` with the paths the Snakefile declares (the Snakefile takes its targets from here).

    Args:
        grid: the jobs. render_only: a render of results computed elsewhere: a pre-training's page is its only
            output (its ``encoder.pt`` may not have come back, and is not re-made), and so is the data page (it
            reads the cohort's manifest and linear references as the computing run wrote them).
    """
    gen, res = paths.generated_dir(grid.profile), paths.results_dir(grid.profile)
    logs = res / "logs"
    cohort = () if render_only else (paths.data_dir(grid.profile) / "manifest.json",
                                     paths.linear_references(grid.profile))
    jobs = [JobFiles("resolve_profile", "profile", (paths.profile_json(grid.profile),), logs / "profile.log"),
            JobFiles("data", "data", (gen / "00_data.ipynb", *cohort), logs / "00_data.log")]
    for model, objective in grid.pretrain:
        weights = () if render_only else (res / "pretrain" / f"{model}__{objective}" / "encoder.pt",)
        jobs.append(JobFiles("pretrain", f"pretrain {model}+{objective}",
                             (gen / f"01_pretrain__{model}__{objective}.ipynb", *weights),
                             logs / f"pretrain__{model}__{objective}.log"))
    for pair in grid.pairs:
        points = tuple(paths.point_name(pair.task, pair.model, s, o) for s, o in pair.points())
        jobs.append(JobFiles("pair", pair.name, (gen / f"{pair.name}.ipynb",
                                                 paths.pair_index(grid.profile, pair.task, pair.model)),
                             logs / f"{pair.name}.log", points))
    if grid.swapped:
        jobs.append(JobFiles("control", "20_control", (gen / "20_control.ipynb",), logs / "20_control.log"))
    jobs.append(JobFiles("alignment", "30_alignment", (gen / "30_alignment.ipynb",), logs / "30_alignment.log"))
    return jobs


def check_output(path: Path) -> str | None:
    """None when ``path`` is a usable output, else the problem in a few words ("missing", "unparseable: ...")."""

    path = Path(path)
    if not path.is_file():
        return "missing"
    if path.stat().st_size == 0:
        return "unparseable: empty file"
    try:
        if path.name == "metrics.json":
            load_metrics(path)
        elif path.suffix == ".ipynb":
            import nbformat

            nbformat.read(str(path), as_version=4)
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix in (".pt", ".npz") and not zipfile.is_zipfile(path):
            return "unparseable: not a complete zip archive (truncated?)"
    except (ValueError, OSError, KeyError, TypeError) as exc:  # JSONDecodeError and nbformat errors included
        return f"unparseable: {str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__}"
    return None


def unusable_outputs(jobs: Iterable[JobFiles]) -> dict[Path, str]:
    """``{output: problem}`` of every declared output that is missing or does not parse."""
    out = {}
    for job in jobs:
        for f in job.outputs:
            problem = check_output(f)
            if problem is None and job.points and f.parent.name == "pairs":  # a pair's index and its points
                problem = index_problem(f, job.points)
                if problem:
                    problem = f"{'unparseable' if 'unparseable' in problem else 'stale'}: {problem}"
            if problem:
                out[f] = problem
    return out


def _backup_path(profile: str, path: Path) -> Path:
    rel = Path(path).resolve().relative_to(paths.ROOT.resolve()) if Path(path).resolve().is_relative_to(
        paths.ROOT.resolve()) else Path(*Path(path).resolve().parts[1:])
    return paths.results_dir(profile) / BACKUP_DIR / rel


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` as ``dst`` (a new name, no new data), or copy it where a link is impossible (another file
    system). An error of the copy names ``dst``, the file being written (``shutil`` names the source, or no file
    at all, when the disk fills), with the source beside it."""
    try:
        os.link(src, dst)
        return
    except OSError:
        pass
    try:
        shutil.copy2(src, dst)
    except OSError as exc:
        err = OSError(exc.errno, exc.strerror or str(exc), str(src), None, str(dst))
        raise err from exc


def backup(profile: str, jobs: Iterable[JobFiles]) -> int:
    """Hard-link (copy where links are impossible) every existing output into the backup folder.

    Returns:
        The number of files backed up.
    """
    root = paths.results_dir(profile) / BACKUP_DIR
    shutil.rmtree(root, ignore_errors=True)
    n = 0
    for job in jobs:
        for f in job.outputs:
            if not f.is_file():
                continue
            dst = _backup_path(profile, f)
            dst.parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(f, dst)
            n += 1
    return n


def restore(profile: str, jobs: Iterable[JobFiles]) -> tuple[list[JobFiles], list[Path], set[Path]]:
    """Put back every output Snakemake removed.

    A job counts as failed when any of its outputs is missing after the run. Its other outputs are put back
    too (from the backup) so that the job's files stay one consistent, earlier result.

    Returns:
        ``(failed jobs, restored files, untouched files)``; untouched = outputs still the very file that was
        backed up (their job did not write them in this run).
    """
    failed, restored, untouched = [], [], set()
    for job in jobs:
        for f in job.outputs:
            src = _backup_path(profile, f)
            if f.is_file() and src.is_file() and os.path.samefile(src, f):
                untouched.add(f)
        if all(f.is_file() for f in job.outputs):
            continue
        failed.append(job)
        for f in job.outputs:
            src = _backup_path(profile, f)
            if src.is_file() and (not f.is_file() or not os.path.samefile(src, f)):
                f.parent.mkdir(parents=True, exist_ok=True)
                tmp = f.with_name(f".{f.name}.restore")
                tmp.unlink(missing_ok=True)
                try:
                    link_or_copy(src, tmp)
                except OSError:
                    tmp.unlink(missing_ok=True)
                    raise
                os.replace(tmp, f)
                restored.append(f)
    shutil.rmtree(paths.results_dir(profile) / BACKUP_DIR, ignore_errors=True)
    return failed, restored, untouched


def read_failed(profile: str) -> dict[str, str]:
    """``{output path: job name}`` of the jobs that failed in the last run (empty when none or unreadable)."""
    try:
        return dict(json.loads((paths.results_dir(profile) / FAILED_RECORD).read_text()))
    except (OSError, ValueError, TypeError):
        return {}


def write_failed(profile: str, failed: dict[str, str]) -> None:
    """Record ``{output path: job name}`` of failed jobs (the file is removed when there are none)."""

    path = paths.results_dir(profile) / FAILED_RECORD
    if failed:
        atomic_write_json(path, dict(sorted(failed.items())))
    else:
        path.unlink(missing_ok=True)
