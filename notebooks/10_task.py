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
# One (task, model, seed) point of the study: fine-tune the pre-trained encoder, the same encoder from a
# random initialisation (scratch) and a linear probe on the frozen features with one recipe, then measure
# transfer: relative performance gain (RPG), convergence, and how far fine-tuning moved the features
# (MMD² and CKA per layer). All the work happens in `transferlimits.study.run_point`, which writes
# `metrics.json`; this notebook shows it. It is the one template of every task: the workflow executes it
# once per (task, model, seed, objective), so a task registered with `register_task` needs no notebook of
# its own (see the appendix).

# %%
import importlib
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import HTML
from myst_nb import glue

from transferlimits.config import get_profile
from transferlimits.figures import training as fig_training
from transferlimits.runner.provenance import glue_provenance
from transferlimits.runtime import resolve_device
from transferlimits.study import point_dir, run_point

t0 = time.time()

# %% tags=["parameters"]
task = "classification"  # a registered task name
model = "profound"  # a registered model (transferlimits.models): profound, provicnet, ...
objective = "native"  # "native" or "swapped" (the objective x architecture control)
profile = "smoke"  # smoke | reference | picai
seed = 0  # fine-tuning seed
out_dir = ""  # folder of metrics.json (empty: transferlimits.study.point_dir)
pretrained = ""  # encoder.pt of the pre-training run (empty: the profile's default)
reuse_scratch_from = ""  # swapped control: the native run whose scratch baseline is reused
task_modules = ""  # comma-separated modules that register extra tasks (the extension point)
model_modules = ""  # comma-separated modules that register extra foundation models (the extension point)
finetune_epochs = 0  # > 0 overrides the profile's fine-tuning epochs for this task
device = "auto"  # torch device spec

# %%
for name in filter(None, task_modules.split(",") + model_modules.split(",")):
    importlib.import_module(name)
prof = get_profile(profile, finetune={"epochs": finetune_epochs}) if finetune_epochs > 0 else get_profile(profile)
dev = resolve_device(device if device != "auto" else prof.device)
metrics = run_point(
    task, model, prof, seed=seed, out_dir=out_dir or None, pretrained=pretrained or None,
    objective=objective, device=dev, reuse_scratch_from=reuse_scratch_from or None,
)
spec = metrics["task_spec"]
primary = spec["primary_metric"]

# %% [markdown]
# ## Test scores
# Scores on the held-out test split for the three initialisations (pretrained fine-tuned, scratch
# fine-tuned, linear probe on frozen pretrained features).

# %%
scores = pd.DataFrame({init: run["test"] for init, run in metrics["runs"].items()}).T
glue("primary_metric", HTML(f"<code>{primary}</code>"), display=False)
for init in scores.index:
    glue(f"test_{init}", float(scores.loc[init, primary]), display=False)
scores

# %% [markdown]
# ## Learning curves, RPG and convergence
# RPG is the relative gain of the pretrained run over scratch on the primary metric (percent; positive =
# pre-training helped). Convergence compares the epochs to reach 90 % of the final validation score.

# %%
glue("rpg_primary", float(metrics["rpg_primary"]))
conv = metrics["convergence"].get("0.9", next(iter(metrics["convergence"].values()), {}))
glue("epochs_ratio", float(conv.get("epochs_ratio", float("nan"))))
fig = fig_training.plot_learning_curves(metrics)
glue("fig_curves", fig)
plt.close(fig)

# %% [markdown]
# ## Feature shift per layer (MMD² and CKA)
# How far fine-tuning moved each layer's features away from the pretrained encoder: MMD² (RBF kernel,
# median bandwidth, with a permutation p-value) and linear CKA between the features before and after.

# %%
emb = metrics["alignment"]["pretrained"]["pooled"].get("embedding", {})
glue("mmd2_embedding", float(emb.get("mmd2", float("nan"))))
glue("cka_embedding", float(emb.get("cka", float("nan"))))
fig = fig_training.plot_layer_alignment(metrics)
glue("fig_alignment", fig)
plt.close(fig)

# %% [markdown]
# ## Example predictions

# %%
run_folder = Path(out_dir) if out_dir else point_dir(profile, task, model, seed, objective)
fig = fig_training.plot_examples(run_folder / metrics["examples"], spec)
glue("fig_examples", fig)
plt.close(fig)

# %%
glue_provenance(profile, t0, dev);
