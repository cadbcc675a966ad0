"""The cohort's real exams: the two shipped PI-CAI exams resampled onto the profile grid (``real/<id>.npz``).

Resampling them onto the T2W grid and then the profile grid uses SimpleITK's resampler. The compute path on an
accelerator may run without SimpleITK (a 50 MiB wheel the device cannot carry): there a current cache (made by a
CPU run, or carried with the results) is reused as it is, and without one the real exams are left out with the
reason recorded in the manifest (``real_skipped``); each restoration point then says so in its metrics
(``n_cases.real`` null, the reason in ``undefined``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transferlimits import paths
from transferlimits.data.cache import sha256_file, write_case
from transferlimits.data.cohort_inputs import is_current, picai_digest
from transferlimits.data.io_volume import have_simpleitk
from transferlimits.data.picai import PicaiDataset
from transferlimits.data.regrid import case_to_grid

__all__ = ["real_entries", "REAL_SKIPPED"]

#: the manifest's ``real_skipped`` reason when SimpleITK is missing and the real exams' cache is not current
REAL_SKIPPED = ("real exams not evaluated: SimpleITK is not installed here (the compute path without it) and no "
                "current cache of them on this grid exists under {root}; a run with SimpleITK (e.g. the CPU "
                "`run`) makes it")


def real_entries(prof: Any, root: Path, meta: dict[str, Any], rebuilt: list[str]) -> tuple[dict, str | None]:
    """Resample the shipped real exams onto the grid where their cache is not current; their manifest entries.

    Args:
        prof: the profile (its ``grid``). root: the cohort folder. meta: the metadata every cached case carries.
        rebuilt: the build's list of re-made case ids (appended to).

    Returns:
        ``({case id: {"file", "sha256", "inputs_sha256"}}, None)``, or ``({}, reason)`` when they had to be made
        and SimpleITK is missing (:data:`REAL_SKIPPED`).
    """
    real_ds = PicaiDataset(paths.REAL_CASES, paths.PICAI_LABELS)
    metas = {cid: dict(meta, source="real", inputs_sha256=picai_digest(real_ds, cid)) for cid in real_ds.case_ids}
    stale = [cid for cid, m in metas.items() if not is_current(root / "real" / f"{cid}.npz", m)]
    if stale and not have_simpleitk():
        return {}, REAL_SKIPPED.format(root=root / "real")
    real = {}
    for cid, rmeta in metas.items():
        f = Path("real") / f"{cid}.npz"
        if cid in stale:
            write_case(case_to_grid(real_ds.load_case(cid), prof.grid), root / f, rmeta)
            rebuilt.append(cid)
        real[cid] = {"file": str(f), "sha256": sha256_file(root / f), "inputs_sha256": rmeta["inputs_sha256"]}
    return real, None
