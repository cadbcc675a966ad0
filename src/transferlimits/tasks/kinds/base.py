"""The task-kind strategy: what every task of one kind shares, and the registry of kinds.

A kind owns the target tensor and its loss, the evaluation (per-batch accumulation and the final scores,
with metric directions), the head choice (``"classifier"``, ``"scalar"`` or ``"dense"``; the model supplies
the head factories), the LogME/transferability target (per case, or per patch for dense kinds:
:attr:`TaskKind.transfer_unit`, :meth:`TaskKind.patch_targets`) and its type, the example figure and the
trivial baselines (:meth:`TaskKind.baseline`, scored on the test split with :mod:`transferlimits.metrics.baselines`;
:func:`strongest_baseline` picks the one a run must beat). :class:`~.dense.DenseKind` holds what the voxel-wise
kinds (segmentation, dense regression) share.
A kind also owns the target ``y`` of the model views (:meth:`TaskKind.target_tensor`, in the units of
:meth:`TaskKind.target_units`; ``data.views`` asks the kind). A new kind is one module that subclasses
:class:`TaskKind` and calls :func:`register_kind` (a module in this package is imported by the package itself).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from torch import Tensor

from transferlimits.metrics.tasks import METRIC_DIRECTION

__all__ = ["AUX_WEIGHT", "TaskKind", "KIND_REGISTRY", "register_kind", "get_kind", "add_entry",
           "find_entry", "strongest_baseline", "item_values", "metric_scores", "sample_input", "body_mask",
           "SCORE_EXTRAS"]

#: keys of the ``metrics.baselines`` results that are bookkeeping, not metrics (left out of ``baselines``).
SCORE_EXTRAS = ("n_cases", "n_cases_with_lesion", "constant", "prior")

#: Weight of the UperNet auxiliary head's loss (ProFound: main + 0.4 x aux).
AUX_WEIGHT = 0.4


class TaskKind:
    """Strategy of one task kind. Subclasses set the class attributes and implement the hooks.

    Attributes:
        name: the kind name recorded in ``metrics.json`` (``task_spec.kind``).
        dense: True for a voxel-wise target [D, H, W] (flipped with the input by augmentation).
        head: ``"classifier"``, ``"scalar"`` or ``"dense"``: which head factory of the model is used.
        regression: True when the transferability target is continuous.
        target_type: ``"class"``, ``"binary"`` or ``"continuous"`` (continuous targets are z-scored for LogME).
        target_description: what the per-case transferability target is (written to ``metrics.json``).
        transfer_unit: ``"case"`` (one transferability row per image: pooled features, :meth:`case_target`) or
            ``"patch"`` (token/voxel rows of the encoder's deepest map, :meth:`patch_targets` of each row's cell).
        patch_enrich: draw up to half of each image's patch rows from cells whose target is non-zero (a rare
            target, e.g. lesions: drawn uniformly, 64 of 1024 ProViCNet cells per image left LogME at its
            constant-target value); False draws uniformly.
    """

    name: str = ""
    dense: bool = False
    head: str = "dense"
    regression: bool = False
    target_type: str = "class"
    target_description: str = ""
    transfer_unit: str = "case"
    patch_enrich: bool = False
    #: the values of ``TaskSpec.dense_output`` this kind accepts (the first is the default output of its head).
    outputs: tuple[str, ...] = ("default",)

    def validate(self, spec: Any) -> None:
        """Raise ValueError when ``spec`` does not fit this kind (default: nothing to check)."""

    def check_output(self, spec: Any) -> None:
        """ValueError unless ``spec.dense_output`` (default ``"default"``) is one of :attr:`outputs`."""
        output = getattr(spec, "dense_output", "default")
        if output not in self.outputs:
            raise ValueError(f"task {spec.name!r}: dense_output {output!r} is not an output of kind {self.name!r}; "
                             f"valid: {list(self.outputs)}")

    def warp_output(self, spec: Any) -> tuple[int, bool, bool] | None:
        """``(axis, jacobian, blur)`` when the task's dense head outputs its input warped by a predicted
        displacement along volume axis ``axis`` of (D, H, W), with (``jacobian``) or without the Jacobian intensity
        factor, and (``blur``) averaged over a predicted displacement SD (:mod:`transferlimits.models.warp`); None
        (the default) for any other output."""
        return None

    def require_one_channel(self, spec: Any) -> None:
        """ValueError unless ``spec.out_channels == 1`` (the regression kinds)."""
        if int(spec.out_channels) != 1:
            raise ValueError(f"task {spec.name!r}: {self.name} needs out_channels=1, got {spec.out_channels}")

    def head_channels(self, spec: Any) -> int:
        """Output channels of the head (default ``spec.out_channels``)."""
        return int(spec.out_channels)

    # --- the target of the model views (data.views) -------------------------------------------------------
    def in_input_units(self, spec: Any) -> bool:
        """True when the target is expressed in its input's z-score over the body mask, so the views z-score
        that input over the body too (default False)."""
        return False

    def target_units(self, sample: Any, spec: Any) -> tuple[float, float]:
        """``(offset, scale)`` of the target, ``y = (target - offset) / scale`` (default ``(0, 1)``)."""
        return 0.0, 1.0

    def target_tensor(self, sample: Any, spec: Any, units: tuple[float, float] = (0.0, 1.0)) -> Tensor:
        """``y`` of both views from ``sample.target`` in ``units`` (:meth:`target_units`).

        Raises:
            NotImplementedError: the kind does not define its target (the message names the kind).
        """
        raise NotImplementedError(f"task kind {self.name!r} does not define target_tensor(sample, spec, units)")

    def directions(self) -> dict[str, bool]:
        """metric -> higher is better, for RPG signs."""
        return dict(METRIC_DIRECTION)

    def loss(self, spec: Any, out: Tensor | tuple[Tensor, Tensor], batch: dict) -> Tensor:
        """Training loss of one batch (model output ``out``, collated ``batch`` with ``y``)."""
        raise NotImplementedError

    def train_weights(self, ds: Any) -> np.ndarray | None:
        """Sampling weight per training case (drawn with replacement, one epoch = ``len(ds)`` draws); None
        (the default) = every case once per epoch in a shuffled order."""
        return None

    def new_state(self) -> dict[str, list]:
        """Empty accumulator of :meth:`add_batch`."""
        return {"a": [], "b": []}

    def add_batch(self, state: dict, spec: Any, out: Tensor, batch: dict, case_ids: Sequence[str],
                  spacing: Sequence[float] | None, fast: bool, n_examples: int) -> None:
        """Accumulate one evaluated batch (``out`` float32 model output) into ``state``."""
        raise NotImplementedError

    def finish(self, state: dict, spec: Any, ids: list[str], n_examples: int
               ) -> tuple[dict[str, float], list[dict[str, Any]], dict[str, np.ndarray]]:
        """``(aggregated scores, per-case dicts, examples)`` from the accumulated state."""
        raise NotImplementedError

    def case_target(self, item: dict) -> float | int:
        """Per-case transferability (LogME / linear-probe) target of one dataset item."""
        raise NotImplementedError

    def patch_target_info(self, spec: Any, ds: Any) -> tuple[str, str]:
        """``(description, target_type)`` of the per-patch target (:meth:`patch_targets`) on dataset ``ds``.

        Raises:
            NotImplementedError: the kind has no per-patch target (``transfer_unit`` ``"case"``).
        """
        raise NotImplementedError(f"task kind {self.name!r} has no per-patch transferability target")

    def linear_reference(self, spec: Any, train: Any, test: Any) -> dict[str, Any] | None:
        """The task's closed-form linear reference (:mod:`transferlimits.metrics.linear_reference`), fitted on
        ``train`` and scored on ``test``: ``{"metric", <scores>, "n_test", "model"}``, or None where the kind (or
        this task) has none (the default)."""
        return None

    def patch_targets(self, ds: Any, i: int, boxes: np.ndarray, spec: Any) -> np.ndarray:
        """Per-patch transferability targets of item ``i`` of ``ds``, one per cell.

        Args:
            ds: map-style task dataset (items with ``y`` [D, H, W]; it may offer ``identity_input(i)``).
            i: the item. boxes: int ``[k, 6]`` cells ``(z0, z1, y0, y1, x0, x1)``, half-open, on ``y``'s grid.
            spec: the TaskSpec.

        Returns:
            float ``[k]``.

        Raises:
            NotImplementedError: the kind has no per-patch target (``transfer_unit`` ``"case"``).
        """
        raise NotImplementedError(f"task kind {self.name!r} has no per-patch transferability target")

    def plot_examples(self, ex: dict[str, np.ndarray], inits: dict[str, tuple[str, str]], max_cases: int,
                      subplots: Callable):
        """The example figure from ``examples.npz``; ``inits`` maps init -> (colour, label), ``subplots``
        is ``matplotlib.pyplot.subplots`` (passed in, so the kinds do not import pyplot)."""
        raise NotImplementedError

    def baseline(self, spec: Any, data: dict[str, Any], spacing: Sequence[float] | None = None
                 ) -> dict[str, dict[str, float]]:
        """Test-split scores of the kind's trivial baselines (STUDY §5); ``{}`` when the kind has none.

        Args:
            spec: the TaskSpec. data: ``{"train", "test", ...: dataset}`` (items ``y``, ``masks``; a dataset may
                offer ``identity_input(i)``, the degraded input on the target grid and scale).
            spacing: (z, y, x) mm of the grid (distance metrics); default the item's ``spacing`` or 1 mm.

        Returns:
            ``{baseline name: {metric: value}}`` scored like the fine-tuned models.
        """
        return {}


def sample_input(sample: Any, name: str) -> np.ndarray:
    """``sample.inputs[name]`` of a task sample.

    Raises:
        ValueError: the sample has no input ``name`` (the message names the case and the available inputs).
    """
    if name not in sample.inputs:
        raise ValueError(f"case {sample.case_id}: input {name!r} missing; available: {sorted(sample.inputs)}")
    return sample.inputs[name]


def body_mask(sample: Any) -> np.ndarray | None:
    """The sample's ``body`` mask when it has one with at least one voxel, else None."""
    body = sample.masks.get("body")
    return body if body is not None and (np.asarray(body) > 0).any() else None


def item_values(ds: Any, key: str) -> list[Any]:
    """``[ds[i][key] for i]`` as NumPy arrays (tensors converted; nested dicts kept as dicts of arrays)."""
    def conv(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: conv(w) for k, w in v.items()}
        return v.numpy() if isinstance(v, Tensor) else np.asarray(v)
    return [conv(ds[i][key]) for i in range(len(ds))]


def metric_scores(scores: dict[str, Any]) -> dict[str, float]:
    """The metric entries of a ``metrics.baselines`` result as floats (bookkeeping keys left out)."""
    return {k: float(v) for k, v in scores.items()
            if k not in SCORE_EXTRAS and isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}


def wanted(metric: str, spec: Any, fast: bool) -> bool:
    """Compute an expensive secondary metric (SSIM, HD95)? Not in fast per-epoch validation, unless primary."""
    return not fast or spec.primary_metric == metric


def strongest_baseline(spec: Any, baselines: dict[str, dict[str, float]]) -> tuple[str, float] | None:
    """The baseline with the best finite value of ``spec.primary_metric`` (the one a run must beat).

    Returns:
        ``(name, value)``, or None when no baseline has a finite primary value.
    """
    sign = 1.0 if spec.higher_is_better else -1.0
    finite = [(n, float(s[spec.primary_metric])) for n, s in baselines.items()
              if s.get(spec.primary_metric) is not None and np.isfinite(s[spec.primary_metric])]
    return max(finite, key=lambda nv: sign * nv[1]) if finite else None


KIND_REGISTRY: dict[str, TaskKind] = {}


def register_kind(kind: TaskKind, overwrite: bool = False) -> TaskKind:
    """Add ``kind`` under ``kind.name`` (ValueError if the name exists and not ``overwrite``)."""
    if not isinstance(kind, TaskKind) or not kind.name:
        raise ValueError(f"register_kind needs a named TaskKind, got {kind!r}")
    if kind.head not in ("classifier", "scalar", "dense"):
        raise ValueError(f"kind {kind.name!r}: head must be 'classifier', 'scalar' or 'dense', got {kind.head!r}")
    return add_entry(KIND_REGISTRY, kind.name, kind, overwrite, "task kind")


def get_kind(name: str) -> TaskKind:
    """The registered kind ``name`` (ValueError listing the valid names otherwise)."""
    return find_entry(KIND_REGISTRY, name, "task kind")


def add_entry(table: dict, name: str, obj: Any, overwrite: bool, what: str) -> Any:
    """``table[name] = obj`` unless ``name`` exists and not ``overwrite`` (ValueError naming ``what``)."""
    if name in table and not overwrite:
        raise ValueError(f"{what} {name!r} is already registered; pass overwrite=True to replace it")
    table[name] = obj
    return obj


def find_entry(table: dict, name: str, what: str) -> Any:
    """``table[name]``, or a ValueError naming ``what`` and listing the valid names."""
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}; valid: {sorted(table)}")
    return table[name]
