"""Patient-level splits, fixed by seed: pre-training pool, train, val, test (disjoint by patient).

A patient with several studies (PI-CAI: 1500 cases from 1476 patients) lands with all of its cases in one
split. Patients are stratified by the case PI-RADS class (a patient takes the max over its cases): within
each stratum patients are shuffled, then the strata are interleaved by rank so that every split gets
about the cohort's class mix. Splits are filled in the order test, val, train, pretrain. The same task
splits serve all tasks (``train``/``val``/``test``); ``pretrain`` never overlaps with them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from transferlimits.config import SplitSizes
from transferlimits.runtime import atomic_write_json

__all__ = ["SPLIT_NAMES", "patient_id", "make_splits", "write_splits", "load_splits"]

SPLIT_NAMES: tuple[str, ...] = ("pretrain", "train", "val", "test")


def patient_id(case_id: str) -> str:
    """PI-CAI patient of a case id ``"<patient>_<study>"``."""
    return str(case_id).split("_")[0]


def make_splits(
    case_ids: Sequence[str],
    strata: Sequence[int],
    sizes: SplitSizes,
    seed: int = 0,
    patient_ids: Sequence[str] | None = None,
) -> dict[str, list[str]]:
    """Split cases by patient.

    Args:
        case_ids: the candidate cases.
        strata: stratification key per case (e.g. PI-RADS class 0..3).
        sizes: number of PATIENTS per split (``pretrain``, ``train``, ``val``, ``test``).
        seed: fixes the shuffle (default 0).
        patient_ids: patient per case (default: :func:`patient_id` of the case id).

    Returns:
        ``{split: sorted case ids}`` for :data:`SPLIT_NAMES`.

    Raises:
        ValueError: lengths differ, or fewer patients than the sizes ask for.
    """
    case_ids = [str(c) for c in case_ids]
    if len(strata) != len(case_ids):
        raise ValueError(f"strata has {len(strata)} entries for {len(case_ids)} cases")
    pids = [patient_id(c) for c in case_ids] if patient_ids is None else [str(p) for p in patient_ids]
    if len(pids) != len(case_ids):
        raise ValueError(f"patient_ids has {len(pids)} entries for {len(case_ids)} cases")
    need = {n: int(getattr(sizes, n)) for n in SPLIT_NAMES}
    if any(v < 0 for v in need.values()):
        raise ValueError(f"split sizes must be >= 0, got {need}")
    by_patient: dict[str, list[str]] = {}
    stratum: dict[str, int] = {}
    for c, p, s in zip(case_ids, pids, strata):
        by_patient.setdefault(p, []).append(c)
        stratum[p] = max(stratum.get(p, int(s)), int(s))
    if sum(need.values()) > len(by_patient):
        raise ValueError(f"split sizes {need} need {sum(need.values())} patients, only {len(by_patient)} available")
    rng = np.random.default_rng(seed)
    keys: list[tuple[float, float, str]] = []
    for s in sorted(set(stratum.values())):
        members = sorted(p for p in by_patient if stratum[p] == s)
        order = rng.permutation(len(members))
        for rank, i in enumerate(order):
            keys.append(((rank + rng.uniform()) / len(members), rng.uniform(), members[i]))
    ordered = [p for _, _, p in sorted(keys)]
    out: dict[str, list[str]] = {}
    start = 0
    for name in ("test", "val", "train", "pretrain"):
        chosen = ordered[start : start + need[name]]
        start += need[name]
        out[name] = sorted(c for p in chosen for c in by_patient[p])
    return {n: out[n] for n in SPLIT_NAMES}


def write_splits(splits: dict[str, list[str]], path: str | os.PathLike, meta: dict | None = None) -> Path:
    """Write ``splits`` (plus ``meta``, e.g. seed and sizes) atomically as JSON."""
    return atomic_write_json(path, {"splits": splits, "meta": meta or {}})


def load_splits(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read splits written by :func:`write_splits`."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: splits file not found; build the cohort first (python -m transferlimits data)")
    data = json.loads(path.read_text())
    return {n: list(data["splits"][n]) for n in SPLIT_NAMES}
