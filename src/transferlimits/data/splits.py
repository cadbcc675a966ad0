"""Patient-level splits, fixed by seed: pre-training pool, train, val, test (disjoint by patient).

A patient with several studies (PI-CAI: 1500 cases from 1476 patients) lands with all of its cases in one
split. Patients are stratified by the case PI-RADS class (a patient takes the max over its cases): within
each stratum patients are shuffled, then the strata are interleaved by rank so that every split gets
about the cohort's class mix. Splits are filled in the order test, val, train, pretrain. The same task
splits serve all tasks (``train``/``val``/``test``); ``pretrain`` never overlaps with them.

Sizes are exact patient counts (:class:`~transferlimits.config.SplitSizes`: smoke, reference) or
fractions of the usable patients with minimums (:class:`~transferlimits.config.SplitFractions`: picai),
resolved by :func:`resolve_split_sizes`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from transferlimits.config import SplitFractions, SplitSizes
from transferlimits.runtime import atomic_write_json

__all__ = ["SPLIT_NAMES", "patient_id", "resolve_split_sizes", "make_splits", "write_splits", "load_splits"]

SPLIT_NAMES: tuple[str, ...] = ("pretrain", "train", "val", "test")


def patient_id(case_id: str) -> str:
    """PI-CAI patient of a case id ``"<patient>_<study>"``."""
    return str(case_id).split("_")[0]


def resolve_split_sizes(sizes: SplitSizes | SplitFractions, n_patients: int, where: str = "") -> SplitSizes:
    """Patients per split for ``n_patients`` usable patients.

    Exact :class:`SplitSizes` are returned unchanged. :class:`SplitFractions` give
    ``max(minimum, floor(fraction * n))`` per split; when the fractions add up to 1 the patients left by
    rounding go to ``pretrain``.

    Args:
        sizes: exact sizes or fractions with minimums.
        n_patients: number of usable patients.
        where: where the patients come from (e.g. the images folder), for the message.

    Raises:
        ValueError: fewer patients than the minimums need (the message gives both numbers).
    """
    if isinstance(sizes, SplitSizes):
        return sizes
    frac = {n: float(getattr(sizes, n)) for n in SPLIT_NAMES}
    mins = {n: int(getattr(sizes, f"min_{n}")) for n in SPLIT_NAMES}
    need = sum(mins.values())
    if n_patients < need:
        src = f" in {where}" if where else ""
        raise ValueError(
            f"{n_patients} usable patient(s) found{src}, the split fractions need at least {need} "
            f"(minimums {mins}); add cases, or give exact sizes, e.g. get_profile(..., splits="
            "{'pretrain': 0, 'train': 1, 'val': 0, 'test': 1})")
    out = {n: max(mins[n], int(np.floor(frac[n] * n_patients + 1e-9))) for n in SPLIT_NAMES}
    while sum(out.values()) > n_patients:  # minimums pushed the total over: shrink the largest above its minimum
        name = max((n for n in SPLIT_NAMES if out[n] > mins[n]), key=lambda n: out[n] - mins[n])
        out[name] -= 1
    if sum(frac.values()) >= 1.0 - 1e-9:
        out["pretrain"] += n_patients - sum(out.values())
    return SplitSizes(**out)


def make_splits(
    case_ids: Sequence[str],
    strata: Sequence[int],
    sizes: SplitSizes | SplitFractions,
    seed: int = 0,
    patient_ids: Sequence[str] | None = None,
    enrich: Sequence[bool] | None = None,
    test_enrich_frac: float = 0.0,
) -> dict[str, list[str]]:
    """Split cases by patient.

    Args:
        case_ids: the candidate cases.
        strata: stratification key per case (e.g. PI-RADS class 0..3).
        sizes: number of PATIENTS per split (``pretrain``, ``train``, ``val``, ``test``), or fractions
            of the available patients with minimums (see :func:`resolve_split_sizes`).
        seed: fixes the shuffle (default 0).
        patient_ids: patient per case (default: :func:`patient_id` of the case id).
        enrich: per case, whether it counts for enrichment (e.g. csPCa); a patient counts when any case does.
        test_enrich_frac: at least ``ceil(frac * test)`` test patients are enriched ones (taken in the
            stratified order, then the rest of the test split in that order); 0 (default) = no enrichment.

    Returns:
        ``{split: sorted case ids}`` for :data:`SPLIT_NAMES`.

    Raises:
        ValueError: lengths differ, fewer patients than the sizes ask for, ``test_enrich_frac`` outside [0, 1]
            or without ``enrich``, or too few enriched patients for it.
    """
    case_ids = [str(c) for c in case_ids]
    if len(strata) != len(case_ids):
        raise ValueError(f"strata has {len(strata)} entries for {len(case_ids)} cases")
    pids = [patient_id(c) for c in case_ids] if patient_ids is None else [str(p) for p in patient_ids]
    if len(pids) != len(case_ids):
        raise ValueError(f"patient_ids has {len(pids)} entries for {len(case_ids)} cases")
    by_patient, stratum = _by_patient(case_ids, pids, strata)
    need = _patients_needed(sizes, len(by_patient))
    ordered = _stratified_order(by_patient, stratum, np.random.default_rng(seed))
    if test_enrich_frac:
        ordered = _enrich_test_first(ordered, case_ids, pids, enrich, test_enrich_frac, need["test"])
    out: dict[str, list[str]] = {}
    start = 0
    for name in ("test", "val", "train", "pretrain"):
        chosen = ordered[start : start + need[name]]
        start += need[name]
        out[name] = sorted(c for p in chosen for c in by_patient[p])
    return {n: out[n] for n in SPLIT_NAMES}


def _by_patient(case_ids: list[str], pids: list[str],
                strata: Sequence[int]) -> tuple[dict[str, list[str]], dict[str, int]]:
    """``({patient: its cases}, {patient: its stratum})``; a patient's stratum is the max over its cases."""
    by_patient: dict[str, list[str]] = {}
    stratum: dict[str, int] = {}
    for c, p, s in zip(case_ids, pids, strata):
        by_patient.setdefault(p, []).append(c)
        stratum[p] = max(stratum.get(p, int(s)), int(s))
    return by_patient, stratum


def _patients_needed(sizes: SplitSizes | SplitFractions, n_patients: int) -> dict[str, int]:
    """Patients per split for ``n_patients`` patients.

    Raises:
        ValueError: a negative size, or more patients asked for than there are.
    """
    sizes = resolve_split_sizes(sizes, n_patients)
    need = {n: int(getattr(sizes, n)) for n in SPLIT_NAMES}
    if any(v < 0 for v in need.values()):
        raise ValueError(f"split sizes must be >= 0, got {need}")
    if sum(need.values()) > n_patients:
        raise ValueError(f"split sizes {need} need {sum(need.values())} patients, only {n_patients} available")
    return need


def _stratified_order(by_patient: dict[str, list[str]], stratum: dict[str, int],
                      rng: np.random.Generator) -> list[str]:
    """The patients shuffled within each stratum, the strata interleaved by relative rank (jittered)."""
    keys: list[tuple[float, float, str]] = []
    for s in sorted(set(stratum.values())):
        members = sorted(p for p in by_patient if stratum[p] == s)
        order = rng.permutation(len(members))
        for rank, i in enumerate(order):
            keys.append(((rank + rng.uniform()) / len(members), rng.uniform(), members[i]))
    return [p for _, _, p in sorted(keys)]


def _enrich_test_first(ordered: list[str], case_ids: list[str], pids: list[str], enrich: Sequence[bool] | None,
                       frac: float, n_test: int) -> list[str]:
    """``ordered`` with the test block (its first ``n_test`` patients) holding >= ``ceil(frac * n_test)``
    enriched patients: the first enriched patients of the order, then the first others; the rest keeps its order
    within the enriched and the other patients, interleaved so that each later split gets the rest's enriched share."""
    if not 0.0 <= frac <= 1.0:
        raise ValueError(f"test_enrich_frac must be in [0, 1], got {frac}")
    if enrich is None or len(enrich) != len(case_ids):
        raise ValueError("test_enrich_frac > 0 needs one enrich flag per case")
    flagged = {p for p, e in zip(pids, enrich) if bool(e)}
    n_pos = int(np.ceil(frac * n_test))
    pos = [p for p in ordered if p in flagged][:n_pos]
    if len(pos) < n_pos:
        raise ValueError(f"test_enrich_frac={frac}: {n_pos} of {n_test} test patients must be enriched, "
                         f"only {len(pos)} are available")
    chosen = set(pos)
    fill = [p for p in ordered if p not in chosen][: n_test - len(pos)]
    chosen |= set(fill)
    test = [p for p in ordered if p in chosen]
    rest = [p for p in ordered if p not in chosen]
    # the test block took the front's enriched patients: re-interleave the rest so that every later split keeps
    # the remaining enriched share (each group in its order, ranked by its relative position)
    groups = ([p for p in rest if p in flagged], [p for p in rest if p not in flagged])
    keys = [((rank + 0.5) / len(g), gi, p) for gi, g in enumerate(groups) for rank, p in enumerate(g)]
    return test + [p for _, _, p in sorted(keys)]


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
