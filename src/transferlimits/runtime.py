"""Run-time helpers shared by every layer: device choice, seeding, atomic writes, checked torch loads,
provenance.

A leaf of the package (layer ``base``, ARCHITECTURE.md): it imports only :mod:`transferlimits.paths` and
:mod:`transferlimits.jsonsafe`. torch is imported inside the functions that use it, so that the CLI and the
runner's provenance helpers start without loading it.

Library code never calls ``.cuda()``: callers pass a :class:`torch.device`, usually from
:func:`resolve_device`. Files written here get the mode the user's umask gives a new file (not the
0600 of a temp file), and :func:`load_torch_file` turns a zero-byte, truncated or pickled checkpoint
into one :class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import platform
import random
import re
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

import transferlimits
from transferlimits import paths
from transferlimits.jsonsafe import to_strict_json

__all__ = [
    "resolve_device",
    "seed_everything",
    "atomic_write_json",
    "atomic_write_bytes",
    "atomic_save_torch",
    "load_torch_file",
    "CheckpointError",
    "PICKLE_HINT_API",
    "PICKLE_HINT_ENV",
    "software_versions",
    "hardware_info",
    "git_commit",
    "set_threads",
]


#: How to opt in to pickled globals, worded for where the user is (pass as ``hint``).
PICKLE_HINT_API = "pass allow_pickle=True (only for files you trust)"
PICKLE_HINT_ENV = "set the environment variable TRANSFERLIMITS_ALLOW_PICKLE=1 (only for files you trust)"


class CheckpointError(ValueError):
    """A checkpoint cannot be read (empty, truncated, corrupt, pickled) or does not match the model."""


def resolve_device(spec: str | None = "auto"):
    """``"auto"`` -> cuda if available else cpu; otherwise ``torch.device(spec)``."""
    import torch

    if spec in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def set_threads(n: int) -> None:
    """Set torch intra-op threads (0 leaves torch's default)."""
    import torch

    if n and n > 0:
        torch.set_num_threads(int(n))


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) for deterministic CPU runs."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _umask() -> int:
    """The process umask, read without changing it where ``/proc`` allows (thread-safe on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temp file in the same folder, fsync, then rename.

    The file gets mode ``0o666 & ~umask`` like one made by ``open(path, "w")`` (``mkstemp`` alone
    would leave 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:  # a failed write names no file: name the one being written (disk full)
            exc.filename = str(path)
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def atomic_write_json(path: str | os.PathLike, obj: Any, reasons: dict[str, str] | None = None) -> Path:
    """Serialise ``obj`` as strict JSON and write it atomically (STUDY §5: no NaN or Infinity).

    Args:
        path: the file. obj: the tree (NumPy scalars/arrays, tuples, sets, paths, dataclasses are converted;
            see :func:`transferlimits.jsonsafe.to_strict_json`); every NaN/±Inf is written as ``null``.
        reasons: optional dict filled with ``{"a/b/0": "nan" | "inf" | "-inf"}`` for each replaced value.
    """
    text = json.dumps(to_strict_json(obj, reasons), indent=2, sort_keys=False, default=_json_default,
                      allow_nan=False)
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_torch(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save`` to a temp file, then rename: an interrupted save never leaves a torn checkpoint."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_torch_file(
    path: str | os.PathLike, map_location: Any = "cpu", safe_globals: tuple = (), hint: str = PICKLE_HINT_API,
    what: str = "checkpoint",
) -> Any:
    """``torch.load(weights_only=True)`` with one clear error per failure, each naming the file.

    Args:
        path: the file.
        map_location: as ``torch.load`` (default ``"cpu"``).
        safe_globals: extra globals the weights-only unpickler may build (e.g. ``argparse.Namespace``).
        hint: how the user opts in to pickled objects where they are (:data:`PICKLE_HINT_API` from Python,
            :data:`PICKLE_HINT_ENV` through the CLI / runner); used in the refusal message.
        what: what the file is, for the messages (default ``"checkpoint"``).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: zero bytes, truncated/corrupt, or pickled objects beyond ``safe_globals``.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: empty {what} file (0 bytes): an interrupted copy or save? re-create it")
    try:
        with torch.serialization.safe_globals(list(safe_globals)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        if found:
            raise CheckpointError(
                f"{path}: the {what} holds a pickled Python object ({found.group(1)}), refused by "
                f"torch.load(weights_only=True); to read it anyway {hint}"
            ) from err
        raise CheckpointError(f"{path}: truncated or corrupt {what} ({size} bytes): not a torch file") from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError) as err:
        raise CheckpointError(f"{path}: truncated or corrupt {what} ({size} bytes): {_first_line(err)}") from err


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def software_versions() -> dict[str, str]:
    """Versions of python and the key packages (for provenance)."""
    out = {"python": platform.python_version()}
    for name in ("torch", "monai", "numpy", "scipy", "pandas", "sklearn", "SimpleITK", "nibabel"):
        try:
            mod = __import__(name)
            out[name] = str(getattr(mod, "__version__", getattr(mod, "Version", lambda: "?")))
        except Exception:  # pragma: no cover - optional package missing
            continue
    out["transferlimits"] = transferlimits.__version__
    return out


def hardware_info(device: Any = None) -> dict[str, Any]:
    """CPU model, core count, and the GPU name when ``device`` is a CUDA device."""
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "system": platform.system(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if device is not None and str(device).startswith("cuda") and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    except Exception:  # pragma: no cover
        pass
    info["device"] = str(device) if device is not None else "cpu"
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit(root: str | os.PathLike | None = None) -> str:
    """Short commit of the checkout (``"unknown"`` outside git); ``-dirty`` when tracked files changed.

    The run's own outputs (``book/generated/``, where a committed run's notebooks are tracked and a re-run
    rewrites them) do not count: only a change to the code or text that made the run does.
    """
    cwd = str(root or paths.ROOT)
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)book/generated"],
            cwd=cwd, capture_output=True, text=True
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except Exception:
        return "unknown"
