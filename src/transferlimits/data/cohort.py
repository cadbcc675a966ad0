"""Build a profile's cohort: select cases, split by patient, synthesise and cache phantoms, write a manifest.

``python -m transferlimits data --profile smoke`` builds (or reuses) ``results/<profile>/data/``::

    splits.json       patient-level splits (pretrain / train / val / test)
    manifest.json     case ids per split, generator version, grid, seed, sha256 of every cached case
    cases/<id>.npz    one phantom per case on the profile grid (see transferlimits.data.cache)
    real/<id>.npz     the two real exams resampled onto the profile grid (crop centred on the gland)

Cases come from the geometry pack (``data_source="phantom"``): all patients are stratified by PI-RADS
class and the first ``sum(profile.splits)`` patients of the seeded order are used. The patients of the real
exams (:func:`real_patient_ids`) are never candidates: the exams are the restoration tasks' external test set,
so neither they nor a phantom of their anatomy may enter a pre-training pool or a task split (no leakage). With
``data_source="picai"`` the cases are the user's PI-CAI images (``--data``, ``--labels``), each loaded
with :class:`~transferlimits.data.picai.PicaiDataset` and resampled onto the profile grid. A cached case is
reused when it loads and its generator version, grid, seed and input digest (SHA-256 of every source
file and label value it was made from) match; otherwise exactly that case is rebuilt. Torch datasets of the tasks are in
:mod:`transferlimits.data.datasets` (re-exported here).
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from transferlimits import paths
from transferlimits.config import Profile
from transferlimits.data.cache import read_case, sha256_file, write_case
from transferlimits.data.cohort_inputs import (candidate_ids, is_current, phantom_digest, picai_digest,
                                               real_patient_ids, report_changes)
from transferlimits.data.cohort_real import real_entries
from transferlimits.data.cohort_store import Cohort, as_profile, cohort_meta
from transferlimits.data.datasets import pretrain_dataset, task_dataset  # re-exported
from transferlimits.data.case import MRCase
from transferlimits.data.geometry import load_geometry_pack
from transferlimits.data.phantom import synthesize
from transferlimits.data.picai import PicaiDataset
from transferlimits.data.regrid import case_to_grid
from transferlimits.data.splits import make_splits, patient_id, resolve_split_sizes, write_splits
from transferlimits.runtime import atomic_write_json
from transferlimits.tasks.registry import pirads_class

__all__ = ["Cohort", "BuildOptions", "build_cohort", "build_cohort_with", "open_cohort", "recorded_cohort",
           "cohort_meta", "task_dataset", "pretrain_dataset", "real_patient_ids", "candidate_ids"]


@functools.lru_cache(maxsize=2)
def _pack(pack_path: str):
    """The geometry pack, opened once per process."""
    return load_geometry_pack(pack_path)


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    """How :func:`build_cohort_with` builds a cohort (the arguments of :func:`build_cohort`, plus the pack loader).

    ``load_pack`` opens the geometry pack from its path (default: the shipped pack's cached loader); with
    ``workers`` > 1 it must be picklable (a module-level function).
    """

    seed: int = 0
    progress: bool = True
    workers: int = 1
    images_root: str | None = None
    labels_root: str | None = None
    skip_incomplete: bool = False
    held_out_patients: tuple[str, ...] | None = None
    load_pack: Callable[[str], Any] = _pack


@dataclasses.dataclass
class _Build:
    """One build in progress: where it writes, the metadata every cached case carries, what it (re)built."""

    prof: Profile
    options: BuildOptions
    held_out: tuple[str, ...]
    root: Path
    meta: dict[str, Any]
    shas: dict[str, str] = dataclasses.field(default_factory=dict)
    digests: dict[str, str] = dataclasses.field(default_factory=dict)
    rebuilt: list[str] = dataclasses.field(default_factory=list)


def _phantom_job(args: tuple) -> tuple[str, str]:
    """Synthesise one case into ``path`` (worker of :func:`build_cohort`); returns (case_id, sha256)."""
    load_pack, pack_path, case_id, grid, seed, path, meta = args
    geom = load_pack(pack_path).case(case_id)
    conspicuity = float(meta.get("lesion_conspicuity", 1.0))
    return case_id, write_case(synthesize(geom, grid, seed, lesion_conspicuity=conspicuity), path, meta)


def _select_phantom(prof: Profile, seed: int, held_out: tuple[str, ...] | None = None,
                    load_pack: Callable[[str], Any] = _pack) -> tuple[dict[str, list[str]], Path]:
    """Patient-level splits of the geometry pack's cases (gland volume > 0, ``held_out`` patients left out).

    Args:
        prof: the profile (split sizes, csPCa share of the test split). seed: the split seed.
        held_out: patients kept out (default: the real exams', :func:`real_patient_ids`).
        load_pack: opens the geometry pack from its path.

    Returns:
        ``(splits, pack path)``.

    Raises:
        ValueError: no geometry pack, or too few patients for the split sizes.
    """
    pack_path = paths.GEOMETRY_PACK
    try:
        pack = load_pack(str(pack_path))
    except FileNotFoundError as exc:
        raise ValueError(f"{exc}; the phantom cohort needs the geometry pack") from exc
    clin = pack.clinical
    ids = candidate_ids([c for c in pack.case_ids if "gland_ml" not in clin.columns or clin.loc[c, "gland_ml"] > 0], held_out)
    clinical = [pack.clinical_dict(c) for c in ids]
    strata = [pirads_class(c.get("pirads")) for c in clinical]
    cspca = [bool(c.get("cspca")) for c in clinical]
    return make_splits(ids, strata, prof.splits, seed=seed, enrich=cspca,
                       test_enrich_frac=prof.test_cspca_frac), pack_path


def _run_jobs(jobs: list[tuple], build: _Build) -> None:
    """Synthesise the phantoms of ``jobs`` (in ``workers`` processes when there are several), noting each sha256."""
    opts = build.options
    bar = tqdm(total=len(jobs), desc=f"phantoms ({build.prof.name})", disable=not opts.progress)
    if opts.workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=opts.workers) as ex:
            for cid, sha in ex.map(_phantom_job, jobs, chunksize=4):
                build.shas[cid] = sha
                bar.update()
    else:
        for job in jobs:
            cid, sha = _phantom_job(job)
            build.shas[cid] = sha
            bar.update()
    bar.close()


def _phantom_splits(build: _Build) -> dict[str, list[str]]:
    """Split the geometry pack's patients and synthesise every case whose cache is not current."""
    opts, prof, seed = build.options, build.prof, build.options.seed
    splits, pack_path = _select_phantom(prof, seed, build.held_out, opts.load_pack)
    todo = []
    for cid in sorted(c for s in splits.values() for c in s):
        path = build.root / "cases" / f"{cid}.npz"
        cmeta = dict(build.meta, inputs_sha256=phantom_digest(opts.load_pack(str(pack_path)), cid))
        build.digests[cid] = cmeta["inputs_sha256"]
        if not is_current(path, cmeta):
            todo.append((opts.load_pack, str(pack_path), cid, prof.grid, int(seed), path, cmeta))
            build.rebuilt.append(cid)
    _run_jobs(todo, build)
    return splits


def _picai_splits(build: _Build) -> dict[str, list[str]]:
    """Split the user's PI-CAI patients and resample every case whose cache is not current onto the grid."""
    opts, prof = build.options, build.prof
    if opts.images_root is None:
        raise ValueError("profile data_source='picai' needs images_root (--data): a PI-CAI public-image folder")
    ds = PicaiDataset(opts.images_root, opts.labels_root or paths.PICAI_LABELS, skip_incomplete=opts.skip_incomplete)
    if ds.skipped:
        print(f"cohort: skipped {len(ds.skipped)} incomplete case(s) of {opts.images_root}: "
              + ", ".join(f"{c} (no {'/'.join(m)})" for c, m in ds.skipped.items()), file=sys.stderr)
    usable = candidate_ids(list(ds.case_ids), build.held_out)
    clinical = [ds.clinical(c) for c in usable]
    strata = [pirads_class(c.get("pirads")) for c in clinical]
    sizes = resolve_split_sizes(prof.splits, len({patient_id(c) for c in usable}), str(opts.images_root))
    splits = make_splits(usable, strata, sizes, seed=opts.seed, enrich=[bool(c.get("cspca")) for c in clinical],
                         test_enrich_frac=prof.test_cspca_frac)
    for cid in tqdm(sorted(c for s in splits.values() for c in s), desc="PI-CAI cases", disable=not opts.progress):
        path = build.root / "cases" / f"{cid}.npz"
        cmeta = dict(build.meta, inputs_sha256=picai_digest(ds, cid))
        build.digests[cid] = cmeta["inputs_sha256"]
        if not is_current(path, cmeta):
            write_case(case_to_grid(ds.load_case(cid), prof.grid), path, cmeta)
            build.rebuilt.append(cid)
    return splits


def _write_manifest(build: _Build, splits: dict[str, list[str]]) -> dict[str, Any]:
    """Write splits.json and manifest.json (case entries with their sha256) of a finished build; the manifest."""
    root, prof, seed = build.root, build.prof, build.options.seed
    cases = {}
    for split, ids in splits.items():
        for cid in ids:
            f = Path("cases") / f"{cid}.npz"
            cases[cid] = {"split": split, "file": str(f), "sha256": build.shas.get(cid) or sha256_file(root / f),
                          "inputs_sha256": build.digests[cid]}
    real, real_skipped = real_entries(build.prof, build.root, build.meta, build.rebuilt)
    report_changes(root, splits, build.rebuilt)
    write_splits(splits, root / "splits.json", {"seed": int(seed), "sizes": dataclasses.asdict(prof.splits)})
    manifest = {**build.meta, "profile": prof.name, "split_sizes": dataclasses.asdict(prof.splits),
                "held_out_patients": list(build.held_out), "splits": splits,
                "patients": {s: len({patient_id(c) for c in ids}) for s, ids in splits.items()}, "cases": cases,
                "real_cases": real, **({"real_skipped": real_skipped} if real_skipped else {})}
    atomic_write_json(root / "manifest.json", manifest)
    return manifest


def build_cohort_with(profile: Profile | str, options: BuildOptions) -> Cohort:
    """Build (or refresh) the cohort of ``profile`` on disk as ``options`` say, and return it.

    Args:
        profile: a :class:`Profile` or its name.
        options: seed, progress bar, workers, PI-CAI folders, held-out patients and the geometry-pack loader
            (see :func:`build_cohort` for each).

    Raises:
        ValueError: missing geometry pack / image folder, or too few patients for the split sizes;
            DataError (a ValueError): incomplete or corrupt cases, malformed marksheet values.
    """
    prof = as_profile(profile)
    held_out = real_patient_ids() if options.held_out_patients is None else tuple(options.held_out_patients)
    root = paths.data_dir(prof.name)
    (root / "cases").mkdir(parents=True, exist_ok=True)
    build = _Build(prof, options, held_out, root, cohort_meta(prof, options.seed))
    splits = _phantom_splits(build) if prof.data_source == "phantom" else _picai_splits(build)
    return Cohort(prof, root, _write_manifest(build, splits))


def build_cohort(profile: Profile | str, seed: int = 0, progress: bool = True, workers: int = 1,
                 images_root: str | None = None, labels_root: str | None = None,
                 skip_incomplete: bool = False, held_out_patients: tuple[str, ...] | None = None) -> Cohort:
    """Build (or refresh) the cohort of ``profile`` on disk and return it (:func:`build_cohort_with`).

    Args:
        profile: a :class:`Profile` or its name.
        seed: split and phantom seed (default 0).
        progress: show a tqdm bar (default True).
        workers: processes for phantom synthesis (default 1).
        images_root: PI-CAI image folder (``data_source="picai"`` only).
        labels_root: picai_labels checkout (``data_source="picai"`` only; default the shipped subset).
        skip_incomplete: leave out PI-CAI cases that lack a sequence (their count and ids are printed)
            instead of raising (default False).
        held_out_patients: patients kept out of every split (default: the real exams', :func:`real_patient_ids`;
            ``()`` only to test the PI-CAI path on the shipped exams themselves; recorded in the manifest).

    A cached case is reused only when its generator version, grid, seed AND the digest of its inputs
    (:func:`~transferlimits.data.cache.inputs_digest`) match; any other case is rebuilt and listed.

    Raises:
        ValueError: missing geometry pack / image folder, or too few patients for the split sizes;
            DataError (a ValueError): incomplete or corrupt cases, malformed marksheet values.
    """
    return build_cohort_with(profile, BuildOptions(seed, progress, workers, images_root, labels_root,
                                                   skip_incomplete, held_out_patients))


def open_cohort(profile: Profile | str, seed: int = 0) -> Cohort:
    """The profile's cohort as built on disk, building it only when it is missing or stale.

    Stale means: another generator version, grid, seed, data source or split sizes than ``profile`` asks
    for. Unlike :func:`build_cohort` this does not touch the files of a current cohort, so parallel
    runs (Snakemake jobs) can open it at the same time.

    Raises:
        ValueError: a ``picai`` cohort that was not built yet (it needs ``--data``).
    """
    prof = as_profile(profile)
    want = {**cohort_meta(prof, seed), "split_sizes": dataclasses.asdict(prof.splits),
            "held_out_patients": list(real_patient_ids())}
    try:
        cohort = Cohort.load(prof)
        if all(cohort.manifest.get(k) == v for k, v in want.items()):
            return cohort
    except (FileNotFoundError, OSError, ValueError, KeyError):
        pass
    if prof.data_source == "picai":
        raise ValueError(
            f"the {prof.name!r} cohort is missing or stale; build it first with "
            f"`python -m transferlimits data --profile {prof.name} --data <PI-CAI image folder>`"
        )
    return build_cohort(prof, seed=seed, progress=False)


def recorded_cohort(profile: Profile | str) -> tuple[Cohort, list[MRCase]]:
    """The cohort as its manifest records it, and the real exams: what a render of results made elsewhere reads.

    Results computed on an accelerator come back without the cohort's cases (they are too large to return);
    their manifest lists every case and its sha256. Nothing is synthesised or checked here: the manifest is read
    as it is, and only the two shipped real exams are resampled onto the grid when their cache is missing (the
    data page draws them; SimpleITK is needed for that, as in every CPU run).

    Raises:
        ValueError: no manifest (naming the file), or the real exams cannot be made here (the reason).
    """
    prof = as_profile(profile)
    cohort = Cohort.load(prof)
    seed = int(cohort.manifest.get("seed", 0))  # the seed the computing run made the cohort with
    entries, skipped = real_entries(prof, cohort.root, cohort_meta(prof, seed), [])
    if skipped:
        raise ValueError(skipped)
    return cohort, [read_case(cohort.root / entry["file"]) for entry in entries.values()]
