"""The pre-training loss curve, labelled with what the loss is (not only the objective's name)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from transferlimits.figures.palette import model_colour, model_label, objective_style

__all__ = ["LOSS_LABELS", "plot_pretrain_loss"]

#: y-axis label per objective: the loss the curve records (ProViCNet's "contrastive" objective is a total
#: loss, (1 − α)·DiceCE + α·pair loss with α = 0.05, so about 95 % of its weight is the DiceCE term).
LOSS_LABELS = {
    "fcmae": "FCMAE loss (norm-pixel MSE, masked patches)",
    "mae": "MAE loss (norm-pixel MSE, masked patches)",
    "contrastive": "total loss: (1 − α)·DiceCE + α·pair loss",
}


def plot_pretrain_loss(curve: pd.DataFrame, model: str, objective: str) -> Figure:
    """Loss per step of one pre-training (``curve`` with columns step, loss), coloured by model, line style by
    the objective's family, y label from :data:`LOSS_LABELS`."""
    fig, ax = plt.subplots(figsize=(6, 3.2), constrained_layout=True)
    if len(curve):
        ax.plot(curve["step"], curve["loss"], lw=1.2, color=model_colour(model),
                linestyle=objective_style(objective)["linestyle"])
    ax.set_xlabel("step")
    ax.set_ylabel(LOSS_LABELS.get(objective, f"{objective} loss"), fontsize=8)
    ax.set_title(f"{model_label(model)} pre-trained with {objective}", fontsize=10)
    return fig
