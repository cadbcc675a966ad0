"""Checks of the `run` options at the edge, before any job starts: data folders, released weights, writable
output folders. Each failure is one ``ValueError`` line naming the option, file or folder."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from transferlimits.models.registry import get_model, model_names

__all__ = ["check_data", "check_weights", "check_writable"]


def check_data(profile: str, data_source: str, data: str | None, labels: str | None) -> None:
    """``--data``/``--labels`` against the profile: picai needs --data; phantom profiles take neither.

    Raises:
        ValueError: a missing or misplaced option, or a folder that does not exist / has the wrong layout.
    """
    if data_source == "picai":
        if not data:
            raise ValueError(f"profile {profile!r} reads your PI-CAI images: pass --data DIR (the PI-CAI "
                             "public images, <DIR>/<patient>/<patient>_<study>_{t2w,adc,hbv}.mha) and, for your own "
                             "labels, --labels DIR (a picai_labels checkout)")
    elif data or labels:
        raise ValueError(f"--data/--labels apply to profile 'picai' only; profile {profile!r} uses phantoms")
    if data and not Path(data).is_dir():
        raise ValueError(f"--data {data}: folder does not exist")
    if labels and not (Path(labels) / "clinical_information" / "marksheet.csv").is_file():
        raise ValueError(f"--labels {labels}: not a picai_labels checkout (no clinical_information/marksheet.csv)")


def check_weights(weights: dict[str, str], profile: Any) -> None:
    """Every released-weights file must load into the profile's encoder.

    Raises:
        ValueError: an unknown model, a missing file, or one the model's loader refuses (one line naming the path).
    """
    bad = sorted(set(weights) - set(model_names()))
    if bad:
        raise ValueError(f"--weights model {bad[0]!r} is unknown; valid: {list(model_names())}")
    for model, path in weights.items():
        if not Path(path).exists():
            raise ValueError(f"--weights {model}={path}: file does not exist")
        try:  # a folder, a blocked pickle, non-finite or mismatched weights: the loader's line names what
            get_model(model).load_released_for_profile(profile, path)
        except (ValueError, RuntimeError, KeyError, EOFError) as exc:
            raise ValueError(f"--weights {model}={path}: {_first_line(exc, str(path))}") from None


def _first_line(exc: BaseException, path: str) -> str:
    """The first line of a loader's message, without the path it starts with (the option names it already)."""
    text = (exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)) or type(exc).__name__
    line = str(text).splitlines()[0] if str(text).strip() else type(exc).__name__
    return line[len(path) + 2:] if line.startswith(f"{path}: ") else line


def check_writable(*folders: Path) -> None:
    """Each folder (created when missing) must accept a new file.

    Raises:
        ValueError: a folder that is read-only or cannot be created (one line naming it).
    """
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            raise ValueError(f"{folder}: cannot write there ({exc.strerror or exc}); make it writable, or move "
                             "the results with TRANSFERLIMITS_RESULTS=<folder>") from None
