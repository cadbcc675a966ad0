"""Every path of the project in one place (showyourwork style).

The repository root is found from this file (an editable install keeps ``src/`` inside the checkout);
``TRANSFERLIMITS_ROOT`` overrides it, and ``TRANSFERLIMITS_RESULTS`` moves the results tree (e.g. to
scratch space on a cluster).

Layout of the outputs::

    results/<profile>/
        data/                 splits.json, manifest.json, cohort cache (phantom cases as .npz)
        pretrain/<model>__<objective>/   checkpoints, loss curve, pretrain.json
        runs/<task>__<model>__seed<k>[__swapped]/   metrics.json, examples.npz (one point)
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
    "results_base",
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


def results_base() -> Path:
    """The folder of every profile's outputs: ``$TRANSFERLIMITS_RESULTS``, else ``ROOT/results``.

    Raises:
        ValueError: ``TRANSFERLIMITS_RESULTS`` names a file, or a path below a file (one line naming the variable
            and the path), instead of failing later inside a job.
    """
    env = os.environ.get("TRANSFERLIMITS_RESULTS")
    if not env:
        return ROOT / "results"
    base = Path(env)
    for folder in (base, *base.parents):
        if folder.exists():
            if not folder.is_dir():
                what = "is a file" if folder == base else f"lies below the file {folder}"
                raise ValueError(f"TRANSFERLIMITS_RESULTS={env} {what}, not a folder: point it at a folder "
                                 f"(created when missing) or unset it to use {ROOT / 'results'}")
            break
    return base


def results_dir(profile: str) -> Path:
    """Root of one profile's outputs (under :func:`results_base`)."""
    return results_base() / profile


def data_dir(profile: str) -> Path:
    """Splits, manifest and phantom cache of one profile."""
    return results_dir(profile) / "data"


def pretrain_dir(profile: str, model: str, objective: str) -> Path:
    """Outputs of one pre-training run (checkpoint, curve)."""
    return results_dir(profile) / "pretrain" / f"{model}__{objective}"


#: the objective kinds of a point: the model's native pre-training objective, the swapped one (H6 control), and
#: the encoder controls (STUDY §5.1; ``study.encoder_sources``): two negative controls (``random``, ``transfusion``)
#: and a positive one (``positive``)
OBJECTIVE_KINDS: tuple[str, ...] = ("native", "swapped", "native_short", "random", "transfusion", "positive")
#: the kinds whose points also train the frozen linear probe (the paper's second reference, RPG vs linear probe):
#: the pre-training objectives. An encoder control's point fine-tunes its encoder only (its scratch and ablated
#: runs are the native point's): the controls ask whether fine-tuning gains, and the probe was a quarter of their
#: cost on the cpu profile (benchmarks/design_cost.py, cut "no_probe_on_controls")
PROBED_KINDS: tuple[str, ...] = ("native", "swapped", "native_short")


def point_name(task: str, model: str, seed: int, objective: str = "native") -> str:
    """The one name of a study point: ``<task>__<model>__seed<k>`` (+ ``__<kind>`` for every objective kind but
    native: ``__swapped`` for the H6 control, ``__random`` ... for the encoder controls).

    Raises:
        ValueError: an objective kind not in :data:`OBJECTIVE_KINDS`.
    """
    if objective not in OBJECTIVE_KINDS:
        raise ValueError(f"unknown objective kind {objective!r}; valid: {list(OBJECTIVE_KINDS)}")
    return f"{task}__{model}__seed{int(seed)}" + ("" if objective == "native" else f"__{objective}")


def pair_name(task: str, model: str) -> str:
    """The name of a (task, model) pair: its executed notebook is ``<task>__<model>.ipynb``."""
    return f"{task}__{model}"


def run_dir(profile: str, task: str, model: str, seed: int, objective: str = "native") -> Path:
    """Outputs of one (task, model, seed, objective) point: metrics.json and examples.npz."""
    return results_dir(profile) / "runs" / point_name(task, model, seed, objective)


def pair_index(profile: str, task: str, model: str) -> Path:
    """The index of a (task, model) pair's finished points (``study.pair_index``): the grid job's output."""
    return results_dir(profile) / "pairs" / f"{pair_name(task, model)}.json"


def linear_references(profile: str) -> Path:
    """``results/<profile>/linear_references.json``: the cohort's closed-form linear references
    (:mod:`transferlimits.study.linear_reference`, written with the cohort)."""
    return results_dir(profile) / "linear_references.json"


def profile_json(profile: str) -> Path:
    """The run's resolved profile (defaults + overrides), written once by the runner; every job reads it."""
    return results_dir(profile) / "profile.json"


def generated_dir(profile: str) -> Path:
    """Executed notebooks of one profile that the book includes."""
    return BOOK / "generated" / profile
