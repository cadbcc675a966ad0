"""Publish a finished run's small result files beside its executed notebooks, so that they can be committed.

``results/<profile>/`` holds encoders, cached phantoms and logs (hundreds of MB, never committed). What a reader
needs to check a run — every metrics.json, the pre-training records, the splits, the grid's wall time and the
resolved configuration — is a few MB of JSON/YAML; :func:`publish_results` copies exactly those files to
``book/generated/<profile>/results/`` (same relative paths), where ``scripts/check_cpu_profile.py --results``
and the book read them. The copy is built in a temporary folder and swapped in, so an interrupted publish
leaves the previous copy whole.

``python -m transferlimits run`` publishes after every successful grid; ``publish_results(profile)`` can be
called by hand on a finished ``results/<profile>``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from transferlimits import paths

__all__ = ["PUBLISHED", "published_dir", "publish_results"]

#: glob patterns, relative to ``results/<profile>``, of the files that are published.
PUBLISHED: tuple[str, ...] = (
    "grid.json",
    "profile.json",  # the run's resolved profile
    ".runtime/run_config.yaml",
    "data/splits.json",
    "data/manifest.json",
    "runs/*/metrics.json",
    "pairs/*.json",  # each (task, model) pair's index: its points with their metrics' hashes
    "pretrain/*/pretrain.json",
    "pretrain/*/curve.json",
    "pretrain/*/positive.json",
    "linear_references.json",  # benchmarks/linear_references.py, when it has run
)


def published_dir(profile: str) -> Path:
    """Where :func:`publish_results` puts a profile's result files: ``book/generated/<profile>/results``."""
    return paths.generated_dir(profile) / "results"


def _copy_compact(file: Path, target: Path) -> None:
    """Copy ``file`` to ``target``; a JSON file is written without indentation (the same values: the published run
    travels with every checkout, and indentation was a third of its metrics files), and one holding NaN or Infinity
    is refused, naming the file."""
    if file.suffix != ".json":
        shutil.copy2(file, target)
        return
    try:
        text = json.dumps(json.loads(file.read_text()), separators=(",", ":"), allow_nan=False)
    except ValueError as err:
        raise ValueError(f"{file}: not strict JSON ({err}); nothing published") from err
    target.write_text(text + "\n")


def publish_results(profile: str, src: Path | None = None, dst: Path | None = None, merge: bool = False) -> list[Path]:
    """Copy the :data:`PUBLISHED` files of ``src`` (default ``results/<profile>``) to ``dst``.

    Args:
        profile: profile name. src: results folder (default :func:`transferlimits.paths.results_dir`).
        dst: destination (default :func:`published_dir`); replaced as a whole, unless ``merge``.
        merge: copy this run's files over ``dst`` and keep every other file there (a grid restricted with
            ``--only`` must not delete the published results of the pairs it did not run). Default False.

    Returns:
        The published files (paths under ``dst``), sorted.

    Raises:
        ValueError: ``src`` has no ``runs/*/metrics.json`` (nothing finished to publish; ``dst`` untouched).
    """
    src = paths.results_dir(profile) if src is None else Path(src)
    dst = published_dir(profile) if dst is None else Path(dst)
    if not any(src.glob("runs/*/metrics.json")):
        raise ValueError(f"{src}: no runs/*/metrics.json to publish; run the {profile!r} study first")
    tmp = dst.parent / f".{dst.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    copied = []
    for pattern in PUBLISHED:
        for file in sorted(src.glob(pattern)):
            rel = file.relative_to(src)
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            _copy_compact(file, target)
            copied.append(dst / rel)
    if merge and dst.exists():  # keep the published files this run did not make; each file replaced atomically
        for file in sorted(p for p in tmp.rglob("*") if p.is_file()):
            target = dst / file.relative_to(tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(file, target)
        shutil.rmtree(tmp, ignore_errors=True)
        return sorted(copied)
    old = dst.parent / f".{dst.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if dst.exists():
        os.replace(dst, old)
    os.replace(tmp, dst)
    shutil.rmtree(old, ignore_errors=True)
    return sorted(copied)
