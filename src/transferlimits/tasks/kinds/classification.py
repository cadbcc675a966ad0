"""The classification kind: one class per case (``y`` int [B]), logits [B, n_classes], cross-entropy.

Scores: :func:`transferlimits.metrics.tasks.classification_scores` of the softmax probabilities. The
transferability target is the class label; the example figure shows the predicted probabilities per test
case against the label.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from transferlimits.metrics import tasks as mt
from transferlimits.metrics.baselines import class_prior_scores
from transferlimits.tasks.kinds.base import TaskKind, item_values, metric_scores, register_kind

__all__ = ["ClassificationKind"]


class ClassificationKind(TaskKind):
    """Case-level classes; the head is the model's classifier over the pooled embedding."""

    name = "classification"
    dense = False
    head = "classifier"
    regression = False
    target_type = "class"
    target_description = "case class label (PI-RADS class)"

    def target_tensor(self, sample, spec, units=(0.0, 1.0)):
        """The case's class: int64 scalar."""
        return torch.tensor(int(sample.target), dtype=torch.int64)

    def loss(self, spec, out, batch):
        return F.cross_entropy(out.float(), batch["y"].long())

    def new_state(self):
        return {"probs": [], "labels": []}

    def add_batch(self, state, spec, out, batch, case_ids, spacing, fast, n_examples) -> None:
        state["probs"].append(out.softmax(1).cpu().numpy())
        state["labels"].append(batch["y"].cpu().numpy())

    def finish(self, state, spec, ids, n_examples):
        p, lab = np.concatenate(state["probs"]), np.concatenate(state["labels"])
        scores = {k: float(v) for k, v in mt.classification_scores(p, lab).items()}
        per_case = [{"case_id": str(c), "label": int(l), "probs": [float(v) for v in pr]}
                    for c, l, pr in zip(ids, lab, p)]
        examples = {"probs": p, "labels": lab, "case_ids": np.asarray(ids)}
        return scores, per_case, (examples if n_examples else {})

    def case_target(self, item) -> int:
        return int(np.asarray(item["y"]))

    def baseline(self, spec, data, spacing=None):
        train, test = (np.asarray(item_values(data[k], "y")).ravel() for k in ("train", "test"))
        return {"class_prior": metric_scores(class_prior_scores(train, test))}

    def plot_examples(self, ex, inits, max_cases, subplots):
        fig, axes = subplots(1, len(inits), figsize=(3.2 * len(inits), 3), constrained_layout=True, squeeze=False)
        labels = ex["labels"]
        for ax, (init, (_, label)) in zip(axes[0], inits.items()):
            im = ax.imshow(ex[f"probs_{init}"], aspect="auto", cmap="viridis", vmin=0, vmax=1)
            ax.scatter(labels, np.arange(len(labels)), marker="x", color="r", s=12, label="label")
            ax.set(title=label, xlabel="class", ylabel="test case")
        fig.colorbar(im, ax=axes[0].tolist(), label="probability")
        return fig


register_kind(ClassificationKind())
