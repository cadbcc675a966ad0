"""Figures of one study point, drawn from its ``metrics.json`` / ``examples.npz`` (schema in ``study.schema``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from transferlimits.figures.palette import INIT_LABELS, INIT_MARKERS, init_style
from transferlimits.tasks.kinds import get_kind

__all__ = ["plot_learning_curves", "plot_layer_alignment", "plot_examples", "INIT_STYLE"]

#: colour and label per fine-tuning init for the task kinds' example figures (one model per figure, so the
#: inits need distinct colours there); curves use the palette (model hue, marker per init).
INIT_STYLE: dict[str, tuple[str, str]] = {
    "pretrained": ("tab:blue", INIT_LABELS["pretrained"]),
    "scratch": ("tab:orange", INIT_LABELS["scratch"]),
    "linear_probe": ("tab:green", INIT_LABELS["linear_probe"]),
}


def _title(metrics: dict) -> str:
    return f"{metrics['task']} / {metrics['model']} (seed {metrics['seed']}, {metrics['profile']})"


def plot_learning_curves(metrics: dict):
    """Validation primary metric and train loss per (fractional) epoch for pretrained, scratch and linear probe;
    a run whose intermediate evaluations scored a validation subset also gets that series, dotted.

    Args:
        metrics: a metrics dict (``study.load_metrics``).

    Returns:
        The matplotlib ``Figure`` (two panels).
    """
    fig, (ax_val, ax_loss) = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    primary = metrics["task_spec"]["primary_metric"]
    for init, run in metrics["runs"].items():
        style = init_style(metrics["model"], init)
        colour, label = style["color"], style["label"]
        ep = [r["epoch"] for r in run["curve"]]
        full = [(r["epoch"], r["val_metric"]) for r in run["curve"] if r["val_metric"] is not None]
        ax_val.plot(*zip(*full), "-", marker=style["marker"], color=colour, label=label)
        if any(r.get("val_metric_subset") is not None for r in run["curve"]):  # intermediate: the val subset
            ax_val.plot(ep, [r.get("val_metric_subset") for r in run["curve"]], ":", color=colour, lw=0.9)
        ax_loss.plot(ep, [r["train_loss"] for r in run["curve"]], "-", marker=style["marker"], color=colour,
                     label=label)
        if run.get("best_epoch"):
            ax_val.axvline(run["best_epoch"], color=colour, lw=0.8, ls=":")
    ax_val.set(xlabel="epoch", ylabel=f"validation {primary}", title="validation (dotted: best epoch)")
    ax_loss.set(xlabel="epoch", ylabel="train loss", title="training loss")
    ax_val.legend(fontsize=8)
    fig.suptitle(_title(metrics), fontsize=10)
    return fig


def plot_layer_alignment(metrics: dict, kind: str = "pooled"):
    """MMD² (median bandwidth, with subset CI) and linear CKA per layer, pretrained vs fine-tuned encoder.

    Args:
        metrics: a metrics dict.
        kind: ``"pooled"`` (one row per image; default) or ``"tokens"`` (CKA is not defined there).

    Returns:
        The matplotlib ``Figure``.

    Raises:
        ValueError: ``kind`` not in ("pooled", "tokens").
    """
    if kind not in ("pooled", "tokens"):
        raise ValueError(f"kind must be 'pooled' or 'tokens', got {kind!r}")
    fig, (ax_m, ax_c) = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    for init, block in metrics["alignment"].items():
        style = init_style(metrics["model"], init)
        colour, label = style["color"], style["label"]
        layers = list(block[kind])
        x = np.arange(len(layers))
        mmd = np.array([block[kind][l]["mmd2"] for l in layers], float)
        ci = np.array([block[kind][l]["ci"] for l in layers], float).reshape(-1, 2)
        err = np.abs(np.stack([mmd - ci[:, 0], ci[:, 1] - mmd]))
        err = np.where(np.isfinite(err), err, 0.0)
        marker = INIT_MARKERS.get(init, "D")
        ax_m.errorbar(x, mmd, yerr=err, fmt="-", marker=marker, color=colour, capsize=3, label=f"{label} → fine-tuned")
        cka = [block[kind][l].get("cka", np.nan) for l in layers]
        ax_c.plot(x, cka, "-", marker=marker, color=colour, label=f"{label} → fine-tuned")
        for ax in (ax_m, ax_c):
            ax.set_xticks(x, layers, rotation=30, fontsize=8)
    ax_m.axhline(0, color="k", lw=0.5)
    ax_m.set(ylabel="MMD² (median bandwidth)", title=f"MMD² per layer ({kind})")
    ax_c.set(ylabel="linear CKA", ylim=(0, 1.05),
             title="CKA per layer" if kind == "pooled" else "CKA is computed on pooled features only")
    ax_m.legend(fontsize=8)
    fig.suptitle(_title(metrics), fontsize=10)
    return fig


def plot_examples(examples_npz: str | Path | dict[str, Any], spec: Any, max_cases: int = 2):
    """The task kind's example figure (:meth:`TaskKind.plot_examples`): input / target / predictions of each
    init on one axial slice for a few test cases (dense kinds), the predicted class probabilities against
    the label (classification), or prediction against target (scalar regression).

    Args:
        examples_npz: path of ``examples.npz`` (or its loaded dict).
        spec: the TaskSpec (or the metrics ``task_spec`` dict); uses ``kind``.
        max_cases: rows to draw (default 2).

    Returns:
        The matplotlib ``Figure``.
    """
    ex = dict(np.load(examples_npz)) if not isinstance(examples_npz, dict) else examples_npz
    kind = get_kind(spec["kind"] if isinstance(spec, dict) else spec.kind)
    inits = {i: style for i, style in INIT_STYLE.items() if f"pred_{i}" in ex or f"probs_{i}" in ex}
    return kind.plot_examples(ex, inits, max_cases, plt.subplots)
