"""What defines a finished point, and whether one can be resumed (``settings`` of metrics.json).

A point's settings are everything its numbers depend on: the point (task, model, seed, objective), its
pre-trained encoder and the scratch run it reuses (paths and SHA-256), the profile, the cohort manifest's hash
and a fingerprint of the code that computes it. :func:`resume` returns a finished point's metrics only when its
stored settings equal the current ones, so a killed (task, model) job resumes after its last finished point and a
change of code, data, encoder or profile re-computes the points it affects.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferlimits import paths
from transferlimits.config import Profile, profile_to_dict
from transferlimits.study.schema import OBJECTIVE_KINDS, load_metrics

__all__ = ["PointKey", "COMPUTE_PACKAGES", "code_fingerprint", "file_sha256_or_none", "portable_path",
           "point_settings", "resume"]


@dataclass(frozen=True)
class PointKey:
    """One point of the study: (task, model, seed) and the objective kind (``paths.OBJECTIVE_KINDS``)."""

    task: str
    model: str
    seed: int = 0
    objective: str = "native"

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVE_KINDS:
            raise ValueError(f"unknown objective {self.objective!r}; valid: {list(OBJECTIVE_KINDS)}")

    @property
    def name(self) -> str:
        """The point's name (:func:`transferlimits.paths.point_name`)."""
        return paths.point_name(self.task, self.model, self.seed, self.objective)

    def folder(self, profile: str) -> Path:
        """The point's results folder (metrics.json, examples.npz)."""
        return paths.run_dir(profile, self.task, self.model, self.seed, self.objective)


def file_sha256_or_none(path: Path) -> str | None:
    """SHA-256 of a file (None when missing): a re-trained encoder or a rebuilt cohort invalidates finished points."""
    path = Path(path)
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: the package folders whose code decides a point's numbers (presentation layers excluded: a change in figures/,
#: runner/ or reporting/ re-renders a page but never re-computes a finished point)
COMPUTE_PACKAGES = ("data", "models", "training", "tasks", "metrics", "study")


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """SHA-256 over the source of every module that computes a point (top-level modules and
    :data:`COMPUTE_PACKAGES`): part of a point's settings, so a finished point is re-computed after a code
    change and resumed otherwise."""
    pkg = Path(__file__).resolve().parents[1]
    files = sorted(pkg.glob("*.py")) + sorted(f for d in COMPUTE_PACKAGES for f in (pkg / d).rglob("*.py"))
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(pkg).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def portable_path(path: str | Path) -> str:
    """A path in a point's settings: relative to the results folder or the repository when inside one (a results
    tree moved to another checkout resumes; the file's hash, beside it, says what it holds)."""
    path = Path(path).resolve()
    for root in (paths.results_dir("").resolve(), paths.ROOT.resolve()):
        if path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return str(path)


def resume(out: Path, settings: dict[str, Any]) -> dict | None:
    """The finished metrics in ``out`` when their ``settings`` equal ``settings`` (else None)."""
    done = out / "metrics.json"
    if not done.exists():
        return None
    try:
        old = load_metrics(done)
    except (ValueError, KeyError, json.JSONDecodeError):  # unreadable, non-strict or an older schema: redo
        return None
    return old if old["settings"] == settings else None




def point_settings(key: PointKey, prof: Profile, objective_name: str, pretrained: Path,
                   reuse_scratch_from: Path | None) -> dict[str, Any]:
    """The resume key of a point (plain JSON types): see the module docstring."""
    return json.loads(json.dumps(
        {"task": key.task, "model": key.model, "seed": key.seed, "objective": key.objective,
         "objective_name": objective_name, "pretrained": portable_path(pretrained),
         "pretrained_sha256": file_sha256_or_none(pretrained), "width": prof.finetune.decoder_width,
         "reuse_scratch_from": None if reuse_scratch_from is None else portable_path(reuse_scratch_from),
         "reuse_scratch_sha256": None if reuse_scratch_from is None else file_sha256_or_none(Path(reuse_scratch_from)),
         "code_sha256": code_fingerprint(), "data_sha256": file_sha256_or_none(paths.data_dir(prof.name) / "manifest.json"),
         "profile": profile_to_dict(prof)}, default=str))
