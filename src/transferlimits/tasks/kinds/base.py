"""The task-kind strategy: what every task of one kind shares, and the registry of kinds.

A kind owns the target tensor and its loss, the evaluation (per-batch accumulation and the final scores,
with metric directions), the head choice (``"classifier"``, ``"scalar"`` or ``"dense"``; the model supplies
the head factories), the per-case LogME/transferability target and its type, the example figure and the
trivial baselines (:meth:`TaskKind.baseline`, scored on the test split with :mod:`transferlimits.metrics.baselines`;
:func:`strongest_baseline` picks the one a run must beat). :class:`DenseKind` holds what the voxel-wise kinds (segmentation, dense regression) share.
A new kind is one module that subclasses :class:`TaskKind` and calls :func:`register_kind`.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from torch import Tensor

from transferlimits.metrics import tasks as mt
from transferlimits.metrics.tasks import METRIC_DIRECTION

__all__ = ["AUX_WEIGHT", "TaskKind", "DenseKind", "KIND_REGISTRY", "register_kind", "get_kind", "add_entry",
           "find_entry", "strongest_baseline", "item_values", "metric_scores",
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
        target_description: what the transferability target is (written to ``metrics.json``).
    """

    name: str = ""
    dense: bool = False
    head: str = "dense"
    regression: bool = False
    target_type: str = "class"
    target_description: str = ""

    def validate(self, spec: Any) -> None:
        """Raise ValueError when ``spec`` does not fit this kind (default: nothing to check)."""

    def require_one_channel(self, spec: Any) -> None:
        """ValueError unless ``spec.out_channels == 1`` (the regression kinds)."""
        if int(spec.out_channels) != 1:
            raise ValueError(f"task {spec.name!r}: {self.name} needs out_channels=1, got {spec.out_channels}")

    def head_channels(self, spec: Any) -> int:
        """Output channels of the head (default ``spec.out_channels``)."""
        return int(spec.out_channels)

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


def strongest_baseline(spec: Any, baselines: dict[str, dict[str, float]]) -> tuple[str, float] | None:
    """The baseline with the best finite value of ``spec.primary_metric`` (the one a run must beat).

    Returns:
        ``(name, value)``, or None when no baseline has a finite primary value.
    """
    sign = 1.0 if spec.higher_is_better else -1.0
    finite = [(n, float(s[spec.primary_metric])) for n, s in baselines.items()
              if s.get(spec.primary_metric) is not None and np.isfinite(s[spec.primary_metric])]
    return max(finite, key=lambda nv: sign * nv[1]) if finite else None


def _wanted(metric: str, spec: Any, fast: bool) -> bool:
    """Compute an expensive secondary metric (SSIM, HD95)? Not in fast per-epoch validation, unless primary."""
    return not fast or spec.primary_metric == metric


class DenseKind(TaskKind):
    """Voxel-wise kinds: target [D, H, W], prediction [B, 1, D, H, W] (+ an auxiliary output in training)."""

    dense = True
    head = "dense"

    def voxel_loss(self, pred: Tensor, y: Tensor, batch: dict, spec: Any = None) -> Tensor:
        """Loss of one dense output ``pred`` [B, 1, D, H, W] against ``y`` [B, 1, D, H, W] (``spec``: the task)."""
        raise NotImplementedError

    def prediction(self, out: Tensor) -> Tensor:
        """Model output -> the volume that is scored (default: as is)."""
        return out

    def case_scores(self, spec: Any, pred: np.ndarray, y: np.ndarray, masks: dict[str, np.ndarray],
                    spacing: Sequence[float], fast: bool) -> dict[str, float]:
        """Scores of one case (``pred``, ``y`` [D, H, W])."""
        raise NotImplementedError

    def example_slice(self, y: np.ndarray) -> int:
        """Axial slice shown in the example figure (default: the mid slice)."""
        return y.shape[0] // 2

    def example_wanted(self, y: np.ndarray) -> bool:
        """Whether a test case with target ``y`` [D, H, W] is a good example (default: every case); the
        first cases that are wanted are shown, other cases only fill up when too few are wanted."""
        return True

    def display_range(self, target: np.ndarray) -> tuple[float | None, float | None]:
        """Grey-value range of target and prediction panels."""
        lo, hi = np.percentile(target, [1, 99])
        return float(lo), float(hi)

    def _one_loss(self, pred: Tensor, batch: dict, spec: Any = None) -> Tensor:
        return self.voxel_loss(pred, batch["y"].float().unsqueeze(1), batch, spec)

    def loss(self, spec: Any, out: Tensor | tuple[Tensor, Tensor], batch: dict) -> Tensor:
        if isinstance(out, tuple):
            main, aux = out
            return self._one_loss(main, batch, spec) + AUX_WEIGHT * self._one_loss(aux, batch, spec)
        return self._one_loss(out, batch, spec)

    def new_state(self) -> dict[str, list]:
        return {"per_case": [], "input": [], "target": [], "pred": [], "example_ids": [], "spare": []}

    def add_batch(self, state, spec, out, batch, case_ids, spacing, fast, n_examples) -> None:
        vol = self.prediction(out)[:, 0].cpu().numpy()
        y = batch["y"].cpu().numpy()
        masks = {k: v.cpu().numpy() for k, v in batch.get("masks", {}).items()}
        for i, cid in enumerate(case_ids):
            sp = spacing or (batch["spacing"][i].tolist() if "spacing" in batch else (1.0, 1.0, 1.0))
            s = self.case_scores(spec, vol[i], y[i], {k: m[i] for k, m in masks.items()}, tuple(sp), fast)
            state["per_case"].append({"case_id": str(cid), **{k: float(v) for k, v in s.items()}})
            wanted = self.example_wanted(y[i])
            if len(state["pred"]) < n_examples and (wanted or len(state["spare"]) < n_examples):
                k = self.example_slice(y[i])
                x = batch["x"][i].float().cpu().numpy()
                # the task's input: volume [3,D,H,W] -> its first non-empty channel (a zeroed one is black);
                # stack [D,3,S,S] -> the centre slice of the triplet
                ch = next((c for c, name in enumerate(getattr(spec, "channel_inputs", ("x",))) if name), 0)
                shown = (x[ch, k] if x.shape[0] == 3 else x[k, 1], y[i][k].astype(np.float32),
                         vol[i][k].astype(np.float32), str(cid))
                if wanted:
                    for key, value in zip(("input", "target", "pred", "example_ids"), shown):
                        state[key].append(value)
                else:
                    state["spare"].append(shown)

    def finish(self, state, spec, ids, n_examples):
        per_case = state["per_case"]
        agg = mt.aggregate([{k: v for k, v in d.items() if k != "case_id"} for d in per_case])
        for shown in state["spare"][: max(0, n_examples - len(state["pred"]))]:  # too few wanted cases
            for key, value in zip(("input", "target", "pred", "example_ids"), shown):
                state[key].append(value)
        examples = {k: np.stack(state[k]) for k in ("input", "target", "pred") if state[k]}
        if examples:
            examples["case_ids"] = np.asarray(state["example_ids"])
        return {k: float(v) for k, v in agg.items()}, per_case, examples

    def case_target(self, item: dict) -> float:
        y = np.asarray(item["y"])
        body = np.asarray(item["masks"]["body"]) > 0 if "body" in item.get("masks", {}) else np.ones(y.shape, bool)
        return float(y[body].mean()) if body.any() else float(y.mean())

    def plot_examples(self, ex, inits, max_cases, subplots):
        cols = ["input", "target"] + [f"pred_{i}" for i in inits]
        n = min(max_cases, len(ex["target"]))
        fig, axes = subplots(n, len(cols), figsize=(2.3 * len(cols), 2.4 * n), constrained_layout=True,
                             squeeze=False)
        for r in range(n):  # one grey scale per row for target and predictions (colourbar), the input its own
            lo, hi = self.display_range(ex["target"][r])
            ilo, ihi = (float(v) for v in np.percentile(ex["input"][r], [1, 99]))
            for c, key in enumerate(cols):
                rng = (ilo, ihi) if key == "input" else (lo, hi)
                im = axes[r, c].imshow(ex[key][r], cmap="gray", vmin=rng[0], vmax=rng[1])
                axes[r, c].set_axis_off()
                if r == 0:
                    axes[r, c].set_title(key.replace("pred_", "").replace("_", " "), fontsize=9)
                if key == "input" or c == len(cols) - 1:
                    fig.colorbar(im, ax=axes[r, c], fraction=0.046, pad=0.02).ax.tick_params(labelsize=7)
        return fig


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
