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
import json
import math
import time

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import HTML
from myst_nb import glue

from transferlimits import paths
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
profile_overrides = ""  # JSON of get_profile overrides (`run --set`), e.g. {"seeds": [0]}

# %%
for name in filter(None, task_modules.split(",") + model_modules.split(",")):
    importlib.import_module(name)
overrides = json.loads(profile_overrides or "{}")
prof = get_profile(profile, **overrides)
if finetune_epochs > 0:
    prof = prof.with_task_finetune(task, epochs=finetune_epochs)
dev = resolve_device(device if device != "auto" else prof.device)
metrics = run_point(
    task, model, prof, seed=seed, out_dir=paths.ROOT / out_dir if out_dir else None,  # repo-relative paths
    pretrained=paths.ROOT / pretrained if pretrained else None, objective=objective, device=dev,
    reuse_scratch_from=paths.ROOT / reuse_scratch_from if reuse_scratch_from else None,
)
spec = metrics["task_spec"]
primary = spec["primary_metric"]

# %% [markdown]
# ## Test scores
# Scores on the held-out test split for the three initialisations (pretrained fine-tuned, scratch
# fine-tuned, linear probe on frozen pretrained features).

# %%
scores = pd.DataFrame({init: run["test"] for init, run in metrics["runs"].items()}).T.apply(pd.to_numeric)  # null -> NaN
glue("primary_metric", HTML(f"<code>{primary}</code>"), display=False)
for init in scores.index:
    glue(f"test_{init}", float(scores.loc[init, primary]), display=False)
scores.round(4).astype(object).where(scores.notna(), "— (undefined for this run)")

# %% [markdown]
# ## Learning curves, RPG and convergence
# RPG is the relative gain of the pretrained run over scratch on the primary metric (percent; positive =
# pre-training helped). Convergence compares the epochs to reach 90 % of the final validation score.

# %%
def shown(value, fmt: str, reason: str) -> str:
    """A number as the page prints it, or "—" with the reason it is undefined (never a bare NaN)."""
    ok = isinstance(value, (int, float)) and math.isfinite(value)
    return format(value, fmt) if ok else f"— ({reason})"


conv = metrics["convergence"].get("0.9", next(iter(metrics["convergence"].values()), {}))
summary = {
    "RPG vs scratch (%)": shown(metrics.get("rpg_primary"), ".2f",
                                metrics.get("rpg_undefined_reason") or "undefined: see the task chapter"),
    "epochs to 90 %, pretrained / scratch": shown(conv.get("epochs_ratio"), ".2f", "a run never reached 90 %"),
}
for key, label in (("rpg_text", "RPG vs scratch (%)"), ("epochs_ratio_text", "epochs to 90 %, pretrained / scratch")):
    glue(key, HTML(f"<span>{summary[label]}</span>"), display=False)  # inline across pages, no quotes
fig = fig_training.plot_learning_curves(metrics)
glue("fig_curves", fig)
plt.close(fig)

# %% [markdown]
# ## Feature shift per layer (MMD² and CKA)
# How far fine-tuning moved each layer's features away from the pretrained encoder: MMD² (RBF kernel,
# median bandwidth, with a permutation p-value) and linear CKA between the features before and after.

# %%
emb = metrics["alignment"]["pretrained"]["pooled"].get("embedding", {})
summary["MMD² of the embedding"] = shown(emb.get("mmd2"), ".4f", "not measured")
summary["linear CKA of the embedding"] = shown(emb.get("cka"), ".3f", "not measured")
for key, label in (("mmd2_text", "MMD² of the embedding"), ("cka_text", "linear CKA of the embedding")):
    glue(key, HTML(f"<span>{summary[label]}</span>"), display=False)
pd.Series(summary, name="this run").to_frame()
fig = fig_training.plot_layer_alignment(metrics)
glue("fig_alignment", fig)
plt.close(fig)

# %% [markdown]
# ## Example predictions

# %%
run_folder = paths.ROOT / out_dir if out_dir else point_dir(profile, task, model, seed, objective)
fig = fig_training.plot_examples(run_folder / metrics["examples"], spec)
glue("fig_examples", fig)
plt.close(fig)

# %%
glue_provenance(profile, t0, dev);
