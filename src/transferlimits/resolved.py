"""A run's profile, resolved once: ``results/<profile>/profile.json`` (defaults + overrides, validated).

The runner resolves the profile a single time from its name and the ``run --set`` overrides
(:func:`write_resolved`) and writes it beside the results; every Snakemake rule declares the file as an input
and every notebook and library call reads it back with :func:`load_resolved` instead of re-parsing overrides.
The file holds the profile's name, the overrides as given (so the same :class:`~transferlimits.config.Profile`
object is rebuilt, validated again) and the resolved values (``profile``, for the reader). It is rewritten only
when its content changes, so an unchanged re-run leaves every job up to date, and a changed override re-runs
every job that reads it.

Without the file (a notebook re-executed with plain papermill before any run), :func:`load_resolved` returns
the profile's defaults.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from transferlimits import paths
from transferlimits.config import Profile, get_profile, profile_to_dict
from transferlimits.jsonsafe import dumps_strict
from transferlimits.runtime import atomic_write_bytes

__all__ = ["write_resolved", "load_resolved", "resolved_document"]


def resolved_document(name: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The content of ``profile.json``: ``{"name", "overrides", "profile"}`` (validated by ``get_profile``).

    Raises:
        ValueError: an unknown profile or an invalid override (the message names the field).
    """
    overrides = json.loads(json.dumps(dict(overrides or {})))  # plain JSON types, as read back
    prof = get_profile(name, **overrides)
    return {"name": name, "overrides": overrides, "profile": json.loads(dumps_strict(profile_to_dict(prof)))}


def write_resolved(name: str, overrides: Mapping[str, Any] | None = None, path: str | Path | None = None) -> Path:
    """Write ``profile.json`` of profile ``name`` (default :func:`transferlimits.paths.profile_json`) unless it
    already holds the same content; returns its path."""
    path = Path(path) if path is not None else paths.profile_json(name)
    data = (dumps_strict(resolved_document(name, overrides), indent=2, sort_keys=True) + "\n").encode()
    if path.is_file() and path.read_bytes() == data:
        return path
    return atomic_write_bytes(path, data)


def load_resolved(name: str, path: str | Path | None = None) -> Profile:
    """The resolved profile of a run: from ``profile.json`` when it exists, else the profile's defaults.

    Args:
        name: the profile name (``smoke``, ``cpu`` ...).
        path: the file (default :func:`transferlimits.paths.profile_json`).

    Raises:
        ValueError: the file is unreadable, names another profile, or holds an override the code refuses
            (the message names the file).
    """
    path = Path(path) if path is not None else paths.profile_json(name)
    if not path.is_file():
        return get_profile(name)
    try:
        doc = json.loads(path.read_text())
        if doc.get("name") != name:
            raise ValueError(f"it holds profile {doc.get('name')!r}, not {name!r}")
        return get_profile(name, **dict(doc.get("overrides") or {}))
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"resolved profile {path}: {exc}; re-run `python -m transferlimits run --profile {name}` "
                         "to rewrite it") from None

