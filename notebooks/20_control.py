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
# # The objective × architecture control
# Is it the pre-training objective or the architecture that decides where transfer helps (H6)? Each
# encoder is also pre-trained with the *other* model's objective (ProFound + contrastive, ProViCNet + MAE)
# and fine-tuned on the control tasks with the same recipe. This notebook only reads `metrics.json` files.

# %%
import time

import matplotlib.pyplot as plt
from myst_nb import glue

from transferlimits import paths
from transferlimits.figures.alignment import control_table, plot_control
from transferlimits.runner.provenance import glue_provenance

t0 = time.time()

# %% tags=["parameters"]
profile = "smoke"  # smoke | reference | picai

# %%
from transferlimits.figures.alignment import load_points

root = paths.results_dir(profile)
table = control_table(load_points(root, "native"), load_points(root, "swapped"))
glue("n_control_points", len(table), display=False)
table[["task", "model", "objective", "kind", "seed", "rpg", "mmd2", "cka"]]

# %% [markdown]
# ## RPG of the four (architecture, objective) pairs

# %%
fig = plot_control(table)
glue("fig_control", fig)
plt.close(fig)
mean = table.groupby("kind")["rpg"].mean()
glue("rpg_native_mean", float(mean.get("native", float("nan"))))
glue("rpg_swapped_mean", float(mean.get("swapped", float("nan"))))

# %%
glue_provenance(profile, t0);
