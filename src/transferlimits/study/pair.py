"""One (task, model) pair of the grid: every seed and objective of it, one point at a time (STUDY §6).

The grid executes one notebook per (task, model); the notebook makes one call, :func:`run_pair`, which runs
the pair's points in a fixed order — for each seed the native point, then its swapped-objective control (which
reuses the native point's scratch run) — through :func:`transferlimits.study.point.run_point`. Every point is
written atomically to its own folder as soon as it is finished and is skipped when it is already there with
the same settings, so a killed job loses only the unfinished point and a re-run resumes after the last one.

Which points a pair has is decided here once (:func:`pair_points`): the profile's seeds, the native
objective, the swapped objective only where the profile runs the 2x2 control on the task, the model has
a second objective and no released weights replace its pre-training, and the profile's encoder controls
(``Profile.control_inits``: negative ``random`` / ``transfusion``, ``positive``; :mod:`.encoder_sources`). Every
point but the native one reuses the native point's scratch and ablated runs (neither depends on the encoder).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from transferlimits import paths
from transferlimits.config import Profile
from transferlimits.models.registry import get_model
from transferlimits.study.pair_index import write_index
from transferlimits.study.point import PointFiles, pair_collaborators, run_point
from transferlimits.study.resume import PointKey
from transferlimits.study.schema import load_metrics

__all__ = ["PointKey", "PairRequest", "parse_seeds", "parse_objectives", "has_control", "pair_objectives",
           "pair_points", "run_pair"]


def parse_seeds(value: Any, default: Sequence[int]) -> tuple[int, ...]:
    """Seeds from a notebook parameter: ``""``/None = ``default``; an int; ``"0,2"``; a list of ints.

    Raises:
        ValueError: anything else, or a negative seed (the message shows the value).
    """
    if value is None or value == "" or value == []:
        return tuple(int(s) for s in default)
    items: Iterable[Any]
    if isinstance(value, bool):
        raise ValueError(f"seeds must be ints >= 0, got {value!r}")
    if isinstance(value, int):
        items = [value]
    elif isinstance(value, str):
        items = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise ValueError(f"seeds must be an int, a list of ints or a comma-separated string, got {value!r}")
    try:
        seeds = tuple(int(s) for s in items)
    except (TypeError, ValueError):
        raise ValueError(f"seeds must be ints >= 0, got {value!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise ValueError(f"seeds must be one or more ints >= 0, got {value!r}")
    return tuple(dict.fromkeys(seeds))


def parse_objectives(value: Any) -> tuple[str, ...] | None:
    """Objective kinds from a notebook parameter: ``""`` = the pair's plan (None); ``"native"``;
    ``"native,swapped"``; a list.

    Raises:
        ValueError: an unknown kind (the message lists the valid ones).
    """
    if value is None or value == "" or value == []:
        return None
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    bad = [v for v in items if v not in paths.OBJECTIVE_KINDS]
    if bad or not items:
        raise ValueError(f"objectives {value!r}: unknown kind {bad[:1]}; valid: {list(paths.OBJECTIVE_KINDS)}")
    return tuple(dict.fromkeys(items))


def has_control(prof: Profile, task: str, model: str, released: bool = False) -> bool:
    """Whether the pair runs the swapped-objective control: the profile runs it on ``task``, the model has a
    second objective, and no released weights replace its pre-training."""
    return task in prof.control_tasks and get_model(model).has_control and not released


def pair_objectives(prof: Profile, task: str, model: str, released: bool = False) -> tuple[str, ...]:
    """The objective kinds a pair runs by default: native, swapped where :func:`has_control`, then the profile's
    encoder controls (``prof.control_inits``; not with released weights, whose controls are not derived here)."""
    return (("native", "swapped") if has_control(prof, task, model, released) else ("native",)) + \
        (() if released else tuple(prof.control_inits))


def pair_points(task: str, model: str, prof: Profile, seeds: Sequence[int] | None = None,
                objectives: Sequence[str] | None = None, released: bool = False) -> tuple[PointKey, ...]:
    """The points of one pair, in the order they run: per seed, native, then swapped, then the encoder controls.

    Args:
        task, model: the pair. prof: the resolved profile.
        seeds: default ``prof.seeds``. objectives: default native, plus swapped where :func:`has_control`, plus
            ``prof.control_inits``.
        released: the model's encoder is released weights (no pre-training, no control).

    Raises:
        ValueError: ``swapped`` asked for a pair without the control (the message says why).
    """
    seeds = tuple(prof.seeds) if seeds is None else tuple(seeds)
    control = has_control(prof, task, model, released)
    if objectives is None:
        objectives = pair_objectives(prof, task, model, released)
    if "swapped" in objectives and not control:
        raise ValueError(f"pair {task}/{model} has no swapped-objective control in profile {prof.name!r} (the task "
                         f"is not in control_tasks, the model has one objective, or it uses released weights)")
    return tuple(PointKey(task, model, int(s), o) for s in seeds for o in paths.OBJECTIVE_KINDS if o in objectives)


@dataclass(frozen=True)
class PairRequest:
    """What to run of a pair (defaults: its whole plan, the profile's pre-trainings, no index).

    Attributes:
        seeds, objectives: see :func:`pair_points` (None = the plan's).
        encoders: objective kind -> ``encoder.pt`` (or released weights); default the profile's pre-trainings.
        released: ``encoders["native"]`` are released weights (the pair then has no control).
        index: where to write the pair's index of finished points (:mod:`.pair_index`; the grid job's output).
        render_only: read the finished points as they are, compute nothing (a results tree made elsewhere, e.g.
            on a GPU, rendered on the CPU); a missing point is an error naming it.
    """

    seeds: Sequence[int] | None = None
    objectives: Sequence[str] | None = None
    encoders: Mapping[str, str | Path] = field(default_factory=dict)
    released: bool = False
    index: str | Path | None = None
    render_only: bool = False


def run_pair(task: str, model: str, prof: Profile, request: PairRequest = PairRequest(), device: Any = None,
             progress: bool = True, point_runner: Callable[..., dict] | None = None) -> list[dict]:
    """Run (or resume) every point of one (task, model) pair; returns their metrics, in plan order.

    Args:
        task, model: the pair. prof: the resolved profile (:func:`transferlimits.resolved.load_resolved`).
        request: which seeds and objectives, their encoders, the index to write (:class:`PairRequest`).
        device: torch device or spec (default ``prof.device``). progress: tqdm bars.
        point_runner: runs one point (default :func:`transferlimits.study.point.run_point` with the job's
            :func:`~transferlimits.study.point.pair_collaborators`; tests pass one with stand-in collaborators).

    Raises:
        ValueError: an unknown model or an impossible objective (see :func:`pair_points`).
    """
    out = []
    keys = pair_points(task, model, prof, request.seeds, request.objectives, request.released)
    if request.render_only:
        out = [_finished(key, prof.name) for key in keys]
        if request.index is not None:
            write_index(request.index, prof.name, task, model, [k.name for k in keys])
        return out
    runner = point_runner if point_runner is not None else partial(run_point, collaborators=pair_collaborators())
    for key in keys:
        enc = request.encoders.get(key.objective)
        reuse = PointKey(task, model, key.seed).folder(prof.name) / "metrics.json" if key.objective != "native" \
            else None
        files = PointFiles(key.folder(prof.name), Path(enc) if enc else None, reuse)
        out.append(runner(key, prof, files, device=device, progress=progress))
    if request.index is not None:
        write_index(request.index, prof.name, task, model, [k.name for k in keys])
    return out


def _finished(key: PointKey, profile: str) -> dict:
    """A finished point's metrics, read without checking its settings (render-only).

    Raises:
        FileNotFoundError: the point has no metrics.json (the message names it).
    """
    path = key.folder(profile) / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"render-only: point {key.name} has no metrics.json at {path}; compute it first")
    return load_metrics(path)
