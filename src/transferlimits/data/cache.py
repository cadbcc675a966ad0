"""On-disk cache of one :class:`~transferlimits.data.case.MRCase` as a compressed ``.npz``.

Images are stored as float16 (relative precision 5e-4, far below the phantom noise; halves the cohort
cache, which matters at the reference grid), masks as uint8, and the metadata (clinical fields, spacing,
generator version, seed, grid) as a JSON string. Files are written atomically (temp file + rename), so an
interrupted build never leaves a torn case; :func:`read_case` raises ``ValueError`` for an unreadable one.

A cached case is keyed by its content: :func:`inputs_digest` hashes every source file (SHA-256, cached
per process by path, size and mtime) and every label value the case was made from; the digest goes into
the case's ``meta``, so a changed mask, image or marksheet value rebuilds exactly that case.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from transferlimits.data.case import MRCase
from transferlimits.runtime import atomic_write_bytes

__all__ = ["write_case", "read_case", "read_case_meta", "sha256_file", "sha256_file_cached", "inputs_digest"]

_IMAGES = ("t2w", "hbv", "adc")
_MASKS = ("zones", "lesion", "body")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def write_case(case: MRCase, path: str | os.PathLike, meta: dict[str, Any] | None = None) -> str:
    """Write ``case`` to ``path`` atomically; returns the file's SHA-256 (hex)."""
    arrays = {n: np.asarray(getattr(case, n), np.float16) for n in _IMAGES}
    arrays.update({n: np.asarray(getattr(case, n), np.uint8) for n in _MASKS})
    isup = case.extra.get("lesion_isup")
    if isinstance(isup, np.ndarray):
        arrays["lesion_isup"] = isup.astype(np.uint8)
    extra = {k: v for k, v in case.extra.items() if not isinstance(v, np.ndarray)}
    info = {"case_id": case.case_id, "spacing": list(case.spacing), "clinical": case.clinical,
            "source": case.source, "extra": extra, "meta": meta or {}}
    arrays["info"] = np.array(json.dumps(_jsonable(info)))
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def read_case_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The ``meta`` dict stored with a cached case (ValueError if unreadable)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return json.loads(str(z["info"]))["meta"]
    except Exception as exc:
        raise ValueError(f"{path}: unreadable cached case ({type(exc).__name__}: {exc})") from exc


def read_case(path: str | os.PathLike) -> MRCase:
    """Load a case written by :func:`write_case` (images as float32)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            info = json.loads(str(z["info"]))
            arrays = {n: z[n].astype(np.float32) for n in _IMAGES}
            arrays.update({n: z[n] for n in _MASKS})
            extra = dict(info.get("extra", {}))
            if "lesion_isup" in z.files:
                extra["lesion_isup"] = z["lesion_isup"]
    except Exception as exc:
        raise ValueError(f"{path}: unreadable cached case ({type(exc).__name__}: {exc})") from exc
    return MRCase(case_id=info["case_id"], spacing=tuple(info["spacing"]), clinical=info["clinical"],
                  source=info["source"], extra=extra, **arrays)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_file_cached(path: str | os.PathLike) -> str:
    """:func:`sha256_file`, remembered for this process by (resolved path, size, mtime_ns)."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_file(path)
    return _SHA_CACHE[key]


def inputs_digest(files: Mapping[str, str | os.PathLike] | None = None, values: Any = None,
                  arrays: Mapping[str, np.ndarray] | None = None) -> str:
    """SHA-256 (hex) of what a cached case was made from.

    Args:
        files: ``{role: path}`` of source files (hashed by content; the path itself does not count).
        values: JSON-able label values (e.g. the case's marksheet row, clinical fields).
        arrays: ``{name: array}`` hashed by dtype, shape and bytes (e.g. a geometry-pack entry).

    Raises:
        FileNotFoundError: a listed file is missing.
    """
    h = hashlib.sha256()
    for role, path in sorted((files or {}).items()):
        h.update(f"file:{role}:{sha256_file_cached(path)}\n".encode())
    h.update(("values:" + json.dumps(_jsonable(values), sort_keys=True) + "\n").encode())
    for name, arr in sorted((arrays or {}).items()):
        arr = np.ascontiguousarray(arr)
        h.update(f"array:{name}:{arr.dtype.str}:{arr.shape}:".encode())
        h.update(arr.tobytes())
    return h.hexdigest()
