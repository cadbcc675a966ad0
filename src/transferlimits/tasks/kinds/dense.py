"""What the voxel-wise kinds (segmentation, dense regression) share: :class:`DenseKind`.

Target [D, H, W], prediction [B, 1, D, H, W] (+ an auxiliary output in training, weighted by
:data:`~.base.AUX_WEIGHT`); per-case scores, the example slices and the example figure. Their transferability
target is per patch (``transfer_unit`` ``"patch"``): one value per cell of the encoder's feature map, made from
the target inside the cell (:func:`box_means`), because a per-case summary of a dense target hardly varies (the
mean of a per-case z-score is 0 for every case).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from torch import Tensor

from transferlimits.metrics import tasks as mt
from transferlimits.tasks.kinds.base import AUX_WEIGHT, TaskKind

__all__ = ["DenseKind", "box_means"]


def box_means(volume: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Mean of ``volume`` inside each box, from its summed-volume table (one pass, any number of boxes).

    Args:
        volume: ``[D, H, W]`` numbers. boxes: int ``[k, 6]`` ``(z0, z1, y0, y1, x0, x1)``, half-open, non-empty,
            inside the volume.

    Returns:
        float64 ``[k]``.

    Raises:
        ValueError: ``volume`` not 3-D, ``boxes`` not ``[k, 6]``, or a box empty or outside the volume.
    """
    v = np.asarray(volume, np.float64)
    b = np.asarray(boxes)
    if v.ndim != 3:
        raise ValueError(f"volume must be [D, H, W], got shape {v.shape}")
    if b.ndim != 2 or b.shape[1] != 6:
        raise ValueError(f"boxes must be [k, 6] (z0, z1, y0, y1, x0, x1), got shape {b.shape}")
    b = b.astype(np.int64)
    lo, hi, size = b[:, 0::2], b[:, 1::2], np.array(v.shape)
    if (lo < 0).any() or (hi > size).any() or (hi <= lo).any():
        raise ValueError(f"boxes must be non-empty and inside the volume {v.shape}")
    s = np.zeros(tuple(size + 1))
    s[1:, 1:, 1:] = v.cumsum(0).cumsum(1).cumsum(2)
    z0, z1, y0, y1, x0, x1 = b.T
    total = (s[z1, y1, x1] - s[z0, y1, x1] - s[z1, y0, x1] - s[z1, y1, x0]
             + s[z0, y0, x1] + s[z0, y1, x0] + s[z1, y0, x0] - s[z0, y0, x0])
    return total / np.prod(hi - lo, axis=1)


class DenseKind(TaskKind):
    """Voxel-wise kinds: target [D, H, W], prediction [B, 1, D, H, W] (+ an auxiliary output in training)."""

    dense = True
    head = "dense"
    transfer_unit = "patch"

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

    def patch_target_info(self, spec: Any, ds: Any) -> tuple[str, str]:
        """Default: the cell mean of ``y`` (a new dense kind scores patches without code of its own)."""
        return "mean target over the feature-map cell", "continuous"

    def patch_targets(self, ds: Any, i: int, boxes: np.ndarray, spec: Any) -> np.ndarray:
        """Default: the mean of item ``i``'s ``y`` over each cell ``boxes`` [k, 6] (float [k])."""
        return box_means(np.asarray(ds[i]["y"], np.float64), boxes)

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
