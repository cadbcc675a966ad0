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
# Pre-training of one encoder with one self-supervised objective on the profile's pre-training pool
# (`transferlimits.training.pretrain.pretrain`): the native pairs are ProFound + FCMAE and
# ProViCNet + contrastive; the swapped pairs (ProFound + contrastive, ProViCNet + MAE) feed the
# objective x architecture control. The run resumes from its last checkpoint and is skipped when a
# finished run with the same settings exists.

# %%
import importlib
import time

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import HTML
from myst_nb import glue

from transferlimits.resolved import load_resolved
from transferlimits.runner.provenance import glue_provenance
from transferlimits.runtime import resolve_device
from transferlimits.training.pretrain import finished_pretrain, pretrain

t0 = time.time()

# %% tags=["parameters"]
model = "profound"  # a registered model (transferlimits.models): profound, provicnet, ...
objective = "fcmae"  # fcmae | contrastive (profound); contrastive | mae (provicnet)
profile = "smoke"  # smoke | reference | picai
seed = 0  # initialisation / sampling seed
out_dir = ""  # output folder (empty: paths.pretrain_dir(profile, model, objective))
device = "auto"  # torch device spec
model_modules = ""  # comma-separated modules that register extra foundation models (the extension point)
render_only = False  # True: show the finished pre-training as it is (computed elsewhere, weights not here)

# %%
for name in filter(None, model_modules.split(",")):
    importlib.import_module(name)
prof = load_resolved(profile)  # results/<profile>/profile.json (the run's overrides) or the defaults
dev = resolve_device(device if device != "auto" else prof.device)
if render_only:
    result = finished_pretrain(model, objective, prof, seed=seed, out_dir=out_dir or None)
    print(f"rendered from the record: computed on {result.summary.get('hardware')} "
          f"({result.summary.get('device')}), commit {result.summary.get('git_commit')}")
else:
    result = pretrain(model, objective, prof, device=dev, seed=seed, out_dir=out_dir or None)
curve = pd.DataFrame(result.curve)
print(f"encoder: {result.encoder_path or 'not here (the record only)'}")

# %% [markdown]
# ## Loss curve and throughput

# %%
fig, ax = plt.subplots(figsize=(6, 3.2))
if len(curve):
    ax.plot(curve["step"], curve["loss"], lw=1.2)
ax.set_xlabel("step")
ax.set_ylabel(f"{objective} loss")
ax.set_title(f"{model} pre-trained with {objective}")
fig.tight_layout()
glue("fig_pretrain_loss", fig)
plt.close(fig)
steps = int(len(curve))
wall = float(curve["wall_s"].iloc[-1]) if steps and "wall_s" in curve else float("nan")
glue("pretrain_steps", steps, display=False)
# one value per quantity: the summary's last_loss (mean over the last 10 % of steps) is what every page shows
glue("pretrain_final_loss", float(result.summary["last_loss"]), display=False)
change = result.summary.get("loss_change_last20")
glue("pretrain_loss_change_last20", HTML("<span>" + (f"{change:+.1%}" if change is not None and change == change
                                                    else "— (fewer than 20 steps)") + "</span>"), display=False)
glue("pretrain_steps_per_s", steps / wall if wall and wall > 0 else float("nan"), display=False)
pd.Series({k: v for k, v in result.summary.items() if isinstance(v, (int, float, str))}, dtype=object).to_frame("value")

# %% [markdown]
# ## Was the contrastive term active?
# The contrastive objective mines positive / negative patch pairs per step; where a step finds no positive
# pair its pair loss is zero and the step trains plain DiceCE. `contrastive_active_fraction` is the share of
# steps with at least one positive pair (undefined for objectives without pairs).

# %%
active = result.summary.get("contrastive_active_fraction")
active_text = (f"{active:.1%} of {steps} steps mined at least one positive pair" if active is not None else
               f"not applicable ({result.summary.get('contrastive_active_fraction_reason') or 'no pair statistics'})")
if active == 0:
    active_text += ": the contrastive term was zero in every step, so this pre-training was plain DiceCE"
glue("contrastive_active_text", HTML(f"<span>{active_text}</span>"), display=False)
print("contrastive term:", active_text)

# %%
glue_provenance(profile, t0, dev);
