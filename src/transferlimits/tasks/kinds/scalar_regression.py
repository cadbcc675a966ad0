"""The scalar-regression kind: one float per case (``y`` [B]), prediction [B], MSE loss.

Scores: :func:`transferlimits.metrics.regression.scalar_scores` (MAE, RMSE, Pearson r). The
transferability target is the target itself (``target_type`` "continuous", z-scored for LogME); the trivial
baseline is the train-median constant (``train_median``); the example figure plots prediction against target.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from transferlimits.metrics.regression import SCALAR_DIRECTION, scalar_scores
from transferlimits.metrics.tasks import METRIC_DIRECTION
from transferlimits.tasks.kinds.base import TaskKind, item_values, metric_scores, register_kind

__all__ = ["ScalarRegressionKind"]


class ScalarRegressionKind(TaskKind):
    """Case-level continuous targets; the head is the model's scalar regressor over the pooled embedding."""

    name = "scalar_regression"
    dense = False
    head = "scalar"
    regression = True
    target_type = "continuous"
    target_description = "the scalar target"

    def validate(self, spec) -> None:
        self.require_one_channel(spec)

    def directions(self) -> dict[str, bool]:
        return {**SCALAR_DIRECTION, **METRIC_DIRECTION}

    def target_tensor(self, sample, spec, units=(0.0, 1.0)):
        """The case's value: float32 scalar (not rescaled)."""
        return torch.tensor(float(sample.target), dtype=torch.float32)

    def loss(self, spec, out, batch):
        return F.mse_loss(out.float(), batch["y"].float())

    def new_state(self):
        return {"pred": [], "target": []}

    def add_batch(self, state, spec, out, batch, case_ids, spacing, fast, n_examples) -> None:
        state["pred"].append(out.cpu().numpy())
        state["target"].append(batch["y"].cpu().numpy())

    def finish(self, state, spec, ids, n_examples):
        p, t = np.concatenate(state["pred"]), np.concatenate(state["target"])
        per_case = [{"case_id": str(c), "pred": float(a), "target": float(b)} for c, a, b in zip(ids, p, t)]
        examples = {"pred": p.astype(np.float32), "target": t.astype(np.float32), "case_ids": np.asarray(ids)}
        return scalar_scores(p, t), per_case, (examples if n_examples else {})

    def baseline(self, spec, data, spacing=None):
        train, test = (np.asarray(item_values(data[k], "y"), float).ravel() for k in ("train", "test"))
        return {"train_median": metric_scores(scalar_scores(np.full(test.shape, np.median(train)), test))}

    def case_target(self, item) -> float:
        return float(np.asarray(item["y"]))

    def plot_examples(self, ex, inits, max_cases, subplots):
        fig, axes = subplots(1, len(inits), figsize=(3.2 * len(inits), 3), constrained_layout=True, squeeze=False)
        t = np.asarray(ex["target"], dtype=float)
        for ax, (init, (colour, label)) in zip(axes[0], inits.items()):
            ax.scatter(t, np.asarray(ex[f"pred_{init}"], dtype=float), s=12, color=colour)
            lo, hi = float(t.min()), float(t.max())
            ax.plot([lo, hi], [lo, hi], color="0.5", lw=1, ls="--")
            ax.set(title=label, xlabel="target", ylabel="prediction")
        return fig


register_kind(ScalarRegressionKind())
