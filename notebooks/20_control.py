# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The objective × architecture control: the analysis
# Is it the pre-training objective or the architecture that decides where transfer helps (H6)? Each
# encoder is also pre-trained with the *other* model's objective (ProFound + contrastive, ProViCNet + MAE)
# and fine-tuned on the control tasks with the same recipe. This notebook only reads `metrics.json` files.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import HTML
from myst_nb import glue

from transferlimits.figures.alignment import control_table, plot_control
from transferlimits.runner.provenance import glue_provenance
from transferlimits.study.pair_index import declared_indexes, load_indexed_points

t0 = time.time()

# %% tags=["parameters"]
profile = "smoke"  # smoke | reference | picai
indexes = ""  # comma-separated pair indexes the workflow rule declares (empty: every pair index of the profile)

# %%
points = load_indexed_points(declared_indexes(profile, indexes))
table = control_table([m for m in points if m["objective"] == "native"],
                      [m for m in points if m["objective"] == "swapped"])
glue("n_control_points", len(table), display=False)
shown = table[["task", "model", "objective", "kind", "seed", "rpg", "mmd2", "cka"]]
HTML(shown.round(4).astype(object).where(shown.notna(), "— (RPG undefined: scratch run below its baseline)")
     .to_html(classes="compact-table"))  # small type: the table fits the main column

# %% [markdown]
# ## RPG of the four (architecture, objective) pairs

# %%
fig = plot_control(table)
glue("fig_control", fig)  # displayed: myst-nb writes the image file other pages link to
plt.close(fig)
mean = table.groupby("kind")["rpg"].mean()
means = {kind: (f"{mean[kind]:.2f} %" if kind in mean and np.isfinite(mean[kind]) else "— (no defined RPG)")
         for kind in ("native", "swapped")}
for kind in ("native", "swapped"):
    glue(f"rpg_{kind}_mean", HTML(f"<span>{means[kind]}</span>"), display=False)  # inline across pages
pd.Series(means, name="mean RPG vs scratch").to_frame()

# %%
glue_provenance(profile, t0);
