"""What a cohort is built from and whether a cached case of it is current (used by :mod:`transferlimits.data.cohort`).

* the held-out patients: :func:`real_patient_ids` (the shipped real exams' patients, never in a split) and
  :func:`candidate_ids` (case ids without them);
* the input digests: :func:`phantom_digest` (a geometry-pack entry) and :func:`picai_digest` (a PI-CAI exam's
  files and marksheet row), the content keys a cached case is checked against;
* :func:`is_current` (a cached case loads and its metadata match) and :func:`report_changes` (what a build
  rebuilt, and which cases moved split since the last build).
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

from transferlimits import paths
from transferlimits.data.cache import inputs_digest, read_case_meta
from transferlimits.data.splits import patient_id

__all__ = ["real_patient_ids", "candidate_ids", "phantom_digest", "picai_digest", "is_current", "report_changes"]


@functools.lru_cache(maxsize=1)
def real_patient_ids() -> tuple[str, ...]:
    """Patients of the shipped real exams (``paths.REAL_CASES``): excluded from every split of every cohort."""
    root = Path(paths.REAL_CASES)
    return tuple(sorted({patient_id(f.name) for f in root.iterdir() if f.is_dir()})) if root.is_dir() else ()


def candidate_ids(case_ids: list[str], held_out: tuple[str, ...] | None = None) -> list[str]:
    """``case_ids`` without the cases of the ``held_out`` patients (default: the real exams', :func:`real_patient_ids`)."""
    drop = set(real_patient_ids() if held_out is None else held_out)
    return [c for c in case_ids if patient_id(c) not in drop]


def is_current(path: Path, meta: dict) -> bool:
    """Whether the cached case ``path`` exists, loads, and was written with exactly ``meta``."""
    if not path.is_file():
        return False
    try:
        return read_case_meta(path) == json.loads(json.dumps(meta))
    except ValueError:
        return False


def phantom_digest(pack: Any, case_id: str) -> str:
    """Content key of a phantom: its geometry-pack entry (label maps, spacing, clinical values)."""
    geom = pack.case(case_id)
    return inputs_digest(values={"clinical": geom.clinical, "spacing": list(geom.spacing)},
                         arrays={"zones": geom.zones, "lesions": geom.lesions})


def picai_digest(ds: Any, case_id: str) -> str:
    """Content key of a real exam: SHA-256 of its image and mask files and its marksheet row."""
    return inputs_digest(ds.input_files(case_id), ds.marksheet_row(case_id))


def report_changes(root: Path, splits: dict[str, list[str]], rebuilt: list[str]) -> None:
    """Print the cases rebuilt because an input changed, and cases that moved split since the last build."""
    old = root / "manifest.json"
    try:
        before = json.loads(old.read_text())["splits"] if old.is_file() else None
    except (ValueError, KeyError):
        before = None
    if rebuilt and before is not None:
        print(f"cohort: {len(rebuilt)} case(s) (re)built because they or their inputs changed: {rebuilt[:10]}"
              f"{' ...' if len(rebuilt) > 10 else ''}", file=sys.stderr)
    if before:
        was = {c: s for s, ids in before.items() for c in ids}
        moved = sorted(c for s, ids in splits.items() for c in ids if was.get(c, s) != s)
        if moved:
            print(f"cohort: {len(moved)} case(s) changed split since the last build (labels or case list "
                  f"changed, so the strata did): {moved[:10]}", file=sys.stderr)
