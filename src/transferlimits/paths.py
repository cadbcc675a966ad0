"""Every path of the project in one place (showyourwork style).

The repository root is found from this file (an editable install keeps ``src/`` inside the checkout);
``TRANSFERLIMITS_ROOT`` overrides it, and ``TRANSFERLIMITS_RESULTS`` moves the results tree (e.g. to
scratch space on a cluster).

Layout of the outputs::

    results/<profile>/
        data/                 splits.json, manifest.json, cohort cache (phantom cases as .npz)
        pretrain/<model>__<objective>/   checkpoints, loss curve, pretrain.json
        runs/<task>__<model>__seed<k>/   metrics.json (+ checkpoints of the fine-tuned models)
    book/generated/<profile>/    executed notebooks the book includes
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "ROOT",
    "DATA",
    "REAL_CASES",
    "PICAI_LABELS",
    "DICOM_0218",
    "GEOMETRY_PACK",
    "NOTEBOOKS",
    "BOOK",
    "results_dir",
    "data_dir",
    "pretrain_dir",
    "run_dir",
    "generated_dir",
]

ROOT: Path = Path(os.environ.get("TRANSFERLIMITS_ROOT", Path(__file__).resolve().parents[2])).resolve()

#: Shipped data (licences and citations in data/README.md and data/LICENSE).
DATA: Path = ROOT / "data"
#: The two real PI-CAI cases in the PI-CAI public-image layout: <patient>/<patient>_<study>_<seq>.mha
REAL_CASES: Path = DATA / "pi-cai-images"
#: picai_labels subset for the two real cases, same relative layout as the upstream repository.
PICAI_LABELS: Path = DATA / "picai_labels"
#: The unlabelled ProstateX-0218 DICOM series (one folder per series).
DICOM_0218: Path = DATA / "prostatex-0218-dicom"
#: The compact label-geometry pack of all 1500 PI-CAI cases (built by scripts/build_geometry_pack.py).
GEOMETRY_PACK: Path = DATA / "geometry" / "picai_geometry.npz"

NOTEBOOKS: Path = ROOT / "notebooks"
BOOK: Path = ROOT / "book"
WORKFLOW: Path = ROOT / "workflow"


def results_dir(profile: str) -> Path:
    """Root of one profile's outputs."""
    base = Path(os.environ.get("TRANSFERLIMITS_RESULTS", ROOT / "results"))
    return base / profile


def data_dir(profile: str) -> Path:
    """Splits, manifest and phantom cache of one profile."""
    return results_dir(profile) / "data"


def pretrain_dir(profile: str, model: str, objective: str) -> Path:
    """Outputs of one pre-training run (checkpoint, curve)."""
    return results_dir(profile) / "pretrain" / f"{model}__{objective}"


def run_dir(profile: str, task: str, model: str, seed: int) -> Path:
    """Outputs of one (task, model, seed) point: metrics.json and friends."""
    return results_dir(profile) / "runs" / f"{task}__{model}__seed{seed}"


def generated_dir(profile: str) -> Path:
    """Executed notebooks of one profile that the book includes."""
    return BOOK / "generated" / profile
