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
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from transferlimits import paths
from transferlimits.config import GridSpec, Profile, get_profile
from transferlimits.data.cache import inputs_digest, read_case, read_case_meta, write_case
from transferlimits.data.case import MRCase
from transferlimits.data.splits import SPLIT_NAMES, make_splits, patient_id, resolve_split_sizes, write_splits
from transferlimits.tasks.registry import pirads_class
from transferlimits.data.tissues import GENERATOR_VERSION
from transferlimits.runtime import atomic_write_json

__all__ = ["Cohort", "build_cohort", "task_dataset", "pretrain_dataset", "real_patient_ids", "candidate_ids"]


def _profile(profile: Profile | str) -> Profile:
    return get_profile(profile) if isinstance(profile, str) else profile


def _grid_dict(grid: GridSpec) -> dict[str, list]:
    return {"shape": list(grid.shape), "spacing": [float(s) for s in grid.spacing]}


class Cohort:
    """A built cohort on disk: splits, cached cases, the real exams on the same grid."""

    def __init__(self, profile: Profile, root: Path, manifest: dict[str, Any]) -> None:
        self.profile, self.root, self.manifest = profile, Path(root), manifest

    @classmethod
    def load(cls, profile: Profile | str) -> "Cohort":
        """Open the cohort of ``profile`` (ValueError if it has not been built)."""
        prof = _profile(profile)
        root = paths.data_dir(prof.name)
        mpath = root / "manifest.json"
        if not mpath.is_file():
            raise ValueError(f"{mpath}: no cohort manifest; build it with `python -m transferlimits data --profile {prof.name}`")
        return cls(prof, root, json.loads(mpath.read_text()))

    @property
    def splits(self) -> dict[str, list[str]]:
        return {n: list(self.manifest["splits"][n]) for n in SPLIT_NAMES}

    def case_ids(self, split: str) -> list[str]:
        """Case ids of ``split`` (one of pretrain, train, val, test; ``real`` for the real exams)."""
        if split == "real":
            return sorted(self.manifest["real_cases"])
        if split not in SPLIT_NAMES:
            raise ValueError(f"unknown split {split!r}; valid: {list(SPLIT_NAMES) + ['real']}")
        return list(self.manifest["splits"][split])

    def case(self, case_id: str) -> MRCase:
        """Load one cached case (phantom or real) by id."""
        entry = self.manifest["cases"].get(case_id) or self.manifest["real_cases"].get(case_id)
        if entry is None:
            raise ValueError(f"case {case_id!r} is not in the cohort of profile {self.profile.name!r}")
        return read_case(self.root / entry["file"])

    def cases(self, split: str) -> list[MRCase]:
        """All cases of ``split`` (loaded from the cache)."""
        return [self.case(c) for c in self.case_ids(split)]

    def real_cases(self) -> list[MRCase]:
        """The real exams resampled onto the profile grid (external test of the restoration tasks)."""
        return self.cases("real")


@functools.lru_cache(maxsize=2)
def _pack(pack_path: str):
    """The geometry pack, opened once per process."""

    return load_geometry_pack(pack_path)


def _phantom_job(args: tuple) -> tuple[str, str]:
    """Synthesise one case into ``path`` (worker of :func:`build_cohort`); returns (case_id, sha256)."""
    pack_path, case_id, grid, seed, path, meta = args

    geom = _pack(pack_path).case(case_id)
    return case_id, write_case(synthesize(geom, grid, seed), path, meta)


def _valid(path: Path, meta: dict) -> bool:
    if not path.is_file():
        return False
    try:
        return read_case_meta(path) == json.loads(json.dumps(meta))
    except ValueError:
        return False


def _phantom_digest(pack_path: str, case_id: str) -> str:
    """Content key of a phantom: its geometry-pack entry (label maps, spacing, clinical values)."""
    geom = _pack(pack_path).case(case_id)
    return inputs_digest(values={"clinical": geom.clinical, "spacing": list(geom.spacing)},
                         arrays={"zones": geom.zones, "lesions": geom.lesions})


def _picai_digest(ds: Any, case_id: str) -> str:
    """Content key of a real exam: SHA-256 of its image and mask files and its marksheet row."""
    return inputs_digest(ds.input_files(case_id), ds.marksheet_row(case_id))


def _report_changes(root: Path, splits: dict[str, list[str]], rebuilt: list[str]) -> None:
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


@functools.lru_cache(maxsize=1)
def real_patient_ids() -> tuple[str, ...]:
    """Patients of the shipped real exams (``paths.REAL_CASES``): excluded from every split of every cohort."""
    root = Path(paths.REAL_CASES)
    return tuple(sorted({patient_id(f.name) for f in root.iterdir() if f.is_dir()})) if root.is_dir() else ()


def candidate_ids(case_ids: list[str], held_out: tuple[str, ...] | None = None) -> list[str]:
    """``case_ids`` without the cases of the ``held_out`` patients (default: the real exams', :func:`real_patient_ids`)."""
    drop = set(real_patient_ids() if held_out is None else held_out)
    return [c for c in case_ids if patient_id(c) not in drop]


def _select_phantom(prof: Profile, seed: int, held_out: tuple[str, ...] | None = None
                    ) -> tuple[dict[str, list[str]], Path]:
    pack_path = paths.GEOMETRY_PACK
    try:
        pack = _pack(str(pack_path))
    except FileNotFoundError as exc:
        raise ValueError(f"{exc}; the phantom cohort needs the geometry pack") from exc
    clin = pack.clinical
    ids = candidate_ids([c for c in pack.case_ids if "gland_ml" not in clin.columns or clin.loc[c, "gland_ml"] > 0], held_out)
    clinical = [pack.clinical_dict(c) for c in ids]
    strata = [pirads_class(c.get("pirads")) for c in clinical]
    cspca = [bool(c.get("cspca")) for c in clinical]
    return make_splits(ids, strata, prof.splits, seed=seed, enrich=cspca,
                       test_enrich_frac=prof.test_cspca_frac), pack_path


def build_cohort(profile: Profile | str, seed: int = 0, progress: bool = True, workers: int = 1,
                 images_root: str | None = None, labels_root: str | None = None,
                 skip_incomplete: bool = False, held_out_patients: tuple[str, ...] | None = None) -> Cohort:
    """Build (or refresh) the cohort of ``profile`` on disk and return it.

    Args:
        profile: a :class:`Profile` or its name.
        seed: split and phantom seed (default 0).
        progress: show a tqdm bar (default True).
        workers: processes for phantom synthesis (default 1).
        images_root, labels_root: PI-CAI image folder and picai_labels checkout (``data_source="picai"``
            only; labels default to the shipped subset).
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
    from tqdm.auto import tqdm


    prof = _profile(profile)
    held_out = real_patient_ids() if held_out_patients is None else tuple(held_out_patients)
    root = paths.data_dir(prof.name)
    (root / "cases").mkdir(parents=True, exist_ok=True)
    meta = {"generator_version": GENERATOR_VERSION, "grid": _grid_dict(prof.grid), "seed": int(seed),
            "data_source": prof.data_source}
    shas: dict[str, str] = {}
    digests: dict[str, str] = {}
    rebuilt: list[str] = []
    if prof.data_source == "phantom":
        splits, pack_path = _select_phantom(prof, seed, held_out)
        todo = []
        for cid in sorted(c for s in splits.values() for c in s):
            path = root / "cases" / f"{cid}.npz"
            cmeta = dict(meta, inputs_sha256=_phantom_digest(str(pack_path), cid))
            digests[cid] = cmeta["inputs_sha256"]
            if not _valid(path, cmeta):
                todo.append((str(pack_path), cid, prof.grid, int(seed), path, cmeta))
                rebuilt.append(cid)
        bar = tqdm(total=len(todo), desc=f"phantoms ({prof.name})", disable=not progress)
        if workers > 1 and len(todo) > 1:
            with ProcessPoolExecutor(max_workers=workers) as ex:
                for cid, sha in ex.map(_phantom_job, todo, chunksize=4):
                    shas[cid] = sha
                    bar.update()
        else:
            for job in todo:
                cid, sha = _phantom_job(job)
                shas[cid] = sha
                bar.update()
        bar.close()
    else:
        if images_root is None:
            raise ValueError("profile data_source='picai' needs images_root (--data): a PI-CAI public-image folder")
        ds = PicaiDataset(images_root, labels_root or paths.PICAI_LABELS, skip_incomplete=skip_incomplete)
        if ds.skipped:
            print(f"cohort: skipped {len(ds.skipped)} incomplete case(s) of {images_root}: "
                  + ", ".join(f"{c} (no {'/'.join(m)})" for c, m in ds.skipped.items()), file=sys.stderr)
        usable = candidate_ids(list(ds.case_ids), held_out)
        clinical = [ds.clinical(c) for c in usable]
        strata = [pirads_class(c.get("pirads")) for c in clinical]
        sizes = resolve_split_sizes(prof.splits, len({patient_id(c) for c in usable}), str(images_root))
        splits = make_splits(usable, strata, sizes, seed=seed, enrich=[bool(c.get("cspca")) for c in clinical],
                             test_enrich_frac=prof.test_cspca_frac)
        for cid in tqdm(sorted(c for s in splits.values() for c in s), desc="PI-CAI cases", disable=not progress):
            path = root / "cases" / f"{cid}.npz"
            cmeta = dict(meta, inputs_sha256=_picai_digest(ds, cid))
            digests[cid] = cmeta["inputs_sha256"]
            if not _valid(path, cmeta):
                write_case(case_to_grid(ds.load_case(cid), prof.grid), path, cmeta)
                rebuilt.append(cid)

    cases = {}
    for split, ids in splits.items():
        for cid in ids:
            f = Path("cases") / f"{cid}.npz"
            cases[cid] = {"split": split, "file": str(f), "sha256": shas.get(cid) or sha256_file(root / f),
                          "inputs_sha256": digests[cid]}
    real = {}
    real_ds = PicaiDataset(paths.REAL_CASES, paths.PICAI_LABELS)
    for cid in real_ds.case_ids:
        f = Path("real") / f"{cid}.npz"
        rmeta = dict(meta, source="real", inputs_sha256=_picai_digest(real_ds, cid))
        if not _valid(root / f, rmeta):
            write_case(case_to_grid(real_ds.load_case(cid), prof.grid), root / f, rmeta)
            rebuilt.append(cid)
        real[cid] = {"file": str(f), "sha256": sha256_file(root / f), "inputs_sha256": rmeta["inputs_sha256"]}
    _report_changes(root, splits, rebuilt)
    write_splits(splits, root / "splits.json", {"seed": int(seed), "sizes": dataclasses.asdict(prof.splits)})
    manifest = {**meta, "profile": prof.name, "split_sizes": dataclasses.asdict(prof.splits),
                "held_out_patients": list(held_out), "splits": splits,
                "patients": {
        s: len({patient_id(c) for c in ids}) for s, ids in splits.items()}, "cases": cases, "real_cases": real}
    atomic_write_json(root / "manifest.json", manifest)
    return Cohort(prof, root, manifest)


def open_cohort(profile: Profile | str, seed: int = 0) -> Cohort:
    """The profile's cohort as built on disk, building it only when it is missing or stale.

    Stale means: another generator version, grid, seed, data source or split sizes than ``profile`` asks
    for. Unlike :func:`build_cohort` this does not touch the files of a current cohort, so parallel
    runs (Snakemake jobs) can open it at the same time.

    Raises:
        ValueError: a ``picai`` cohort that was not built yet (it needs ``--data``).
    """
    prof = _profile(profile)
    want = {"generator_version": GENERATOR_VERSION, "grid": _grid_dict(prof.grid), "seed": int(seed),
            "data_source": prof.data_source, "split_sizes": dataclasses.asdict(prof.splits),
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


from transferlimits.data.datasets import pretrain_dataset, task_dataset  # noqa: E402  (re-export)
from transferlimits.data.cache import sha256_file
from transferlimits.data.geometry import load_geometry_pack
from transferlimits.data.phantom import synthesize
from transferlimits.data.picai import PicaiDataset
from transferlimits.data.regrid import case_to_grid
