"""A pair's index: the list of its finished points, each with the SHA-256 of its ``metrics.json``.

``results/<profile>/pairs/<task>__<model>.json`` is what a (task, model) job of the grid declares as its output
(beside its executed notebook), and what the analysis notebooks declare as their inputs: they read exactly the
``metrics.json`` files an index names, and only when each file still has the hash the index recorded
(:func:`load_indexed_points`). The points themselves live in ``results/<profile>/runs/<point>/``, outside the
workflow engine's reach, so that a killed job keeps every point it finished.

An index is *current* when every point it lists still exists with its recorded hash (:func:`index_problem`);
paths in it are relative to the profile's results folder that holds it (a copied tree stays readable); the
runner re-runs a pair whose index is not, which resumes its unchanged points and re-writes the index, so an
edited or deleted point re-executes everything downstream of it.

The index also holds the pair's calibrated alignment (``calibration``: :func:`~.calibration.calibrate_pair`,
computed from the points' ``features.npz`` when the index is written); each entry whose point has
a ``features.npz`` declares it with its hash (``features``, ``features_sha256``), checked like the metrics. An
index written before the calibration existed has neither: it stays current, and :func:`load_indexed_calibration`
gives it no records.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable, Sequence


from transferlimits import paths
from transferlimits.jsonsafe import dumps_strict
from transferlimits.runtime import atomic_write_bytes
from transferlimits.study.calibration import calibrate_pair, calibration_key
from transferlimits.study.calibration_point import FEATURES_FILE
from transferlimits.study.schema import load_metrics

__all__ = ["file_sha256", "write_index", "read_index", "index_problem", "declared_indexes", "load_indexed_points",
           "load_indexed_calibration", "published_calibration"]

INDEX_VERSION = 1


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_index(path: str | Path, profile: str, task: str, model: str, point_names: Sequence[str]) -> Path:
    """Write the index of one pair: every named point's ``metrics.json`` (relative to ``results/<profile>``) and
    its hash, its ``features.npz`` and hash where it has one, and the pair's calibration, atomically.

    Raises:
        FileNotFoundError: a named point has no ``metrics.json`` (the message names it).
    """
    root = paths.results_dir(profile)
    entries = []
    for name in point_names:
        metrics = root / "runs" / name / "metrics.json"
        if not metrics.is_file():
            raise FileNotFoundError(f"pair {task}/{model}: point {name} has no metrics.json at {metrics}")
        entry = {"point": name, "metrics": f"runs/{name}/metrics.json", "sha256": file_sha256(metrics)}
        features = metrics.parent / FEATURES_FILE
        if features.is_file():
            entry.update(features=f"runs/{name}/{FEATURES_FILE}", features_sha256=file_sha256(features))
        entries.append(entry)
    calibration = calibrate_pair([root / "runs" / name for name in point_names])
    doc = {"index_version": INDEX_VERSION, "profile": profile, "task": task, "model": model, "points": entries,
           "calibration": calibration}
    return atomic_write_bytes(Path(path), (dumps_strict(doc, indent=2) + "\n").encode())


def read_index(path: str | Path) -> dict:
    """The index document (ValueError naming the file when it is unreadable or of another version)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"pair index {path}: unreadable ({exc})") from None
    if not isinstance(doc, dict) or doc.get("index_version") != INDEX_VERSION or not isinstance(doc.get("points"), list):
        raise ValueError(f"pair index {path}: not a version-{INDEX_VERSION} pair index")
    return doc


def index_problem(path: str | Path, expected: Iterable[str] | None = None) -> str | None:
    """Why the index at ``path`` is not current (None when it is): unreadable, a listed point missing or changed
    since it was indexed, or (with ``expected``) not exactly the expected point names."""
    try:
        doc = read_index(path)
    except ValueError as exc:
        return str(exc).split(": ", 1)[-1]
    root = Path(path).resolve().parent.parent  # results/<profile>/pairs/<pair>.json: the tree it indexes
    names = [e.get("point") for e in doc["points"]]
    if expected is not None and sorted(names) != sorted(expected):
        return f"lists points {sorted(names)}, the grid expects {sorted(expected)}"
    for entry in doc["points"]:
        metrics = root / entry["metrics"]
        if not metrics.is_file():
            return f"point {entry['point']}: metrics.json is missing"
        if file_sha256(metrics) != entry["sha256"]:
            try:
                load_metrics(metrics)
            except (ValueError, KeyError, TypeError) as exc:
                return f"point {entry['point']}: metrics.json is unparseable ({str(exc).splitlines()[0][:120]})"
            return f"point {entry['point']}: metrics.json changed since the pair was indexed"
        if "features" in entry:
            features = root / entry["features"]
            if not features.is_file():
                return f"point {entry['point']}: {FEATURES_FILE} is missing"
            if file_sha256(features) != entry.get("features_sha256"):
                return f"point {entry['point']}: {FEATURES_FILE} changed since the pair was indexed"
    return None


def load_indexed_points(indexes: Iterable[str | Path]) -> list[dict]:
    """The metrics of every point the given pair indexes list, sorted by point folder, each validated.

    Raises:
        ValueError: an index is unreadable, or a listed file is missing or no longer has its indexed hash
            (the message names the index and the point: re-run the grid).
    """
    files = []
    for index in indexes:
        problem = index_problem(index)
        if problem:
            raise ValueError(f"pair index {index}: {problem}; re-run `python -m transferlimits run` for this profile")
        doc = read_index(index)
        root = Path(index).resolve().parent.parent
        files += [root / e["metrics"] for e in doc["points"]]
    return [load_metrics(f) for f in sorted(set(files))]


def load_indexed_calibration(indexes: Iterable[str | Path]) -> dict[tuple[str, str, int, str], dict]:
    """The calibration records of every point the given pair indexes list, keyed by
    :func:`~transferlimits.study.calibration.calibration_key` (task, model, seed, objective kind); an index written
    before the calibration existed contributes nothing. Pass the result to
    :func:`transferlimits.study.analysis.point_rows` (``calibration=``).

    Raises:
        ValueError: an index is unreadable or no longer current (as :func:`load_indexed_points`).
    """
    indexes = list(indexes)  # iterated twice: checked, then read
    for index in indexes:
        problem = index_problem(index)
        if problem:
            raise ValueError(f"pair index {index}: {problem}; re-run `python -m transferlimits run` for this profile")
    return _calibration_records(indexes)


def published_calibration(results_root: str | Path) -> dict[tuple[str, str, int, str], dict]:
    """The calibration records of every pair index under ``results_root/pairs/`` (as
    :func:`load_indexed_calibration`), without the check that each point's feature files are still there: a
    published results tree (``book/generated/<profile>/results``) keeps the indexes and metrics, not the features.
    Empty when the tree has no pair index."""
    return _calibration_records(sorted(Path(results_root).glob("pairs/*.json")))


def _calibration_records(indexes: Iterable[str | Path]) -> dict[tuple[str, str, int, str], dict]:
    out: dict[tuple[str, str, int, str], dict] = {}
    for index in indexes:
        for rec in (read_index(index).get("calibration") or {}).get("points", {}).values():
            out[calibration_key(rec["task"], rec["model"], rec["seed"], rec["objective"])] = rec
    return out


def declared_indexes(profile: str, indexes: str | Sequence[str] = "") -> list[Path]:
    """The pair indexes a notebook may read: those its rule declares (``indexes``: comma-separated or a list,
    repository-relative or absolute), or, when none are given (a plain papermill re-execution), every pair index
    of the profile.

    Raises:
        ValueError: none given and the profile has no pair index yet (run the grid first).
    """
    items = [i.strip() for i in indexes.split(",")] if isinstance(indexes, str) else list(indexes)
    items = [i for i in items if i]
    if items:
        return [Path(i) if Path(i).is_absolute() else paths.ROOT / i for i in items]
    found = sorted((paths.results_dir(profile) / "pairs").glob("*.json"))
    if not found:
        raise ValueError(f"profile {profile!r} has no finished (task, model) pair under "
                         f"{paths.results_dir(profile) / 'pairs'}: run `python -m transferlimits run --profile {profile}`")
    return found
