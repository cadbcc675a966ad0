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
# One (task, model) pair of the study, every seed and objective of it: for each seed, the pre-trained encoder,
# the same encoder from a random initialisation (scratch) and a linear probe on the frozen features are
# fine-tuned with one recipe; where the profile runs the objective × architecture control, the same is done
# from the encoder pre-trained with the other model's objective (it reuses the seed's scratch run). Each point
# is one `metrics.json` written by `transferlimits.study.run_pair`, which resumes point by point; this page
# shows them all. It is the one template of every task: the workflow executes it once per (task, model), so
# a task registered with `register_task` needs no notebook of its own (see the appendix).

# %%
import importlib
import math
import time

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import HTML, display
from myst_nb import glue

from transferlimits import paths
from transferlimits.figures import training as fig_training
from transferlimits.figures.pair import plot_seed_scores
from transferlimits.models.registry import get_model
from transferlimits.resolved import load_resolved
from transferlimits.runner.provenance import glue_provenance
from transferlimits.runtime import resolve_device
from transferlimits.study import pair_cases, pair_summary, run_pair
from transferlimits.study.pair import PairRequest, parse_objectives, parse_seeds

t0 = time.time()

# %% tags=["parameters"]
task = "classification"  # a registered task name
model = "profound"  # a registered model (transferlimits.models): profound, provicnet, ...
profile = "smoke"  # smoke | cpu | reference | picai (resolved from results/<profile>/profile.json when present)
seeds = ""  # "" = the profile's seeds; one seed (1) or several ("0,2")
objectives = ""  # "" = native, plus swapped where the profile runs the control; or "native" / "native,swapped"
pretrained = ""  # encoder.pt of the native pre-training (empty: the profile's default)
pretrained_swapped = ""  # encoder.pt of the swapped-objective pre-training (empty: the profile's default)
released = False  # True: `pretrained` holds released weights (the pair then runs no control)
task_modules = ""  # comma-separated modules that register extra tasks (the extension point)
model_modules = ""  # comma-separated modules that register extra foundation models (the extension point)
device = "auto"  # torch device spec
index = ""  # where to write the pair's index of finished points (the workflow's output; empty: none)
render_only = False  # True: show the finished points as they are, compute nothing (results made elsewhere)

# %%
for name in filter(None, task_modules.split(",") + model_modules.split(",")):
    importlib.import_module(name)
prof = load_resolved(profile)
dev = resolve_device(device if device != "auto" else prof.device)
encoders = {k: paths.ROOT / v for k, v in (("native", pretrained), ("swapped", pretrained_swapped)) if v}
request = PairRequest(parse_seeds(seeds, prof.seeds), parse_objectives(objectives), encoders, bool(released),
                      paths.ROOT / index if index else None, bool(render_only))
points = run_pair(task, model, prof, request, device=dev)
spec = points[0]["task_spec"]
primary = spec["primary_metric"]
first = points[0]  # the first seed's native point: the detailed figures below
adapter = get_model(model)

# %% [markdown]
# ## Every seed
# Test-split primary metric of every point (one row per seed and objective): the three initialisations, the
# trivial baseline a run must beat to count as learned, the paired difference pretrained − scratch (positive =
# pre-training helped; the sign is flipped where lower is better) and RPG (percent; "—" where undefined: the
# scratch run did not beat the baseline).

# %%
table = pair_summary.seed_scores(points)
gain = pair_summary.paired_gain(table)
cases = pair_cases.case_differences(points)  # paired by seed and test case; the seeds are the clusters
glue("primary_metric", HTML(f"<code>{primary}</code>"), display=False)
glue("n_points", len(points), display=False)
shown = table.drop(columns=["objective_name", "sign"]).round(4)
shown.astype(object).where(shown.notna(), "—")

# %% [markdown]
# ## Spread over seeds
# The paired difference pretrained − scratch per objective: mean over seeds, seed SD and a 95 % t-interval over
# seeds (seeds are the replicates; with one seed there is no interval). The figure shows every seed (dots)
# and the mean (bar) of every initialisation with runs of its own (open markers: the swapped objective and the
# encoder controls), the trivial baseline (dashed) and the closed-form linear reference (dotted, where
# `linear_references.json` has the task); its right panel pairs the runs by seed AND test case: per seed the
# mean case-level difference (an AUROC: the AUROC difference on the same cases), a t-interval over seeds
# (thick) and a two-stage seed + case bootstrap (thin) beside it.

# %%
def shown_num(value, fmt: str, reason: str) -> str:
    """A number as the page prints it, or "—" with the reason it is undefined (never a bare NaN)."""
    ok = isinstance(value, (int, float)) and math.isfinite(value)
    return format(value, fmt) if ok else f"— ({reason})"


native = gain[gain["objective"] == "native"].iloc[0]
sd = shown_num(native["sd"], ".2f", "one seed")
rpg_text = shown_num(native["rpg_mean"], ".2f", "undefined in every seed: scratch below its baseline")
if math.isfinite(native["rpg_mean"]) and native["rpg_n"] > 1:
    rpg_sd = table[table["objective"] == "native"]["rpg"].std(ddof=1)
    rpg_text += f" ± {rpg_sd:.2f} (mean ± SD over {int(native['rpg_n'])} seeds)"
glue("rpg_text", HTML(f"<span>{rpg_text}</span>"), display=False)
gain_text = (f"{native['mean']:.4f} [{native['ci_low']:.4f}, {native['ci_high']:.4f}]" if native["n"] > 1
             else shown_num(native["mean"], ".4f", "no finite score"))
glue("gain_text", HTML(f"<span>{gain_text}</span>"), display=False)
glue("findings", HTML(f"<span>{pair_summary.findings_text(table, gain, adapter.display_name, primary, cases)}</span>"),
     display=False)
lin_ref = pair_cases.linear_reference(paths.results_dir(profile), task)
glue("case_gain_text", HTML(f"<span>{pair_summary.case_gain_text(cases)}</span>"), display=False)
display_gain = gain.round(4)
fig = plot_seed_scores(table, primary, model, lin_ref["value"] if lin_ref else None, cases)
glue("fig_seeds", fig)
plt.close(fig)
shown_cases = cases.round(4)
display(display_gain.astype(object).where(display_gain.notna(), "—"))
shown_cases.astype(object).where(shown_cases.notna(), "—")

# %% [markdown]
# ## Learning curves, convergence and feature shift (first seed, native objective)
# Convergence compares the epochs each run needs to cover 90 % of the way from the common starting score to its best
# validation score (pretrained / scratch; definition: {ref}`methods-convergence`); the feature
# shift is how far fine-tuning moved each layer's features away from the pretrained encoder: MMD² (RBF kernel,
# median bandwidth, with a permutation p-value) and linear CKA between the features before and after. The
# table gives the mean over seeds of the native objective.

# %%
native_points = [m for m in points if m["objective"] == "native"]


def mean_of(values: list) -> float:
    finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("nan")


ratios = [m["convergence"].get("0.9", next(iter(m["convergence"].values()), {})).get("epochs_ratio")
          for m in native_points]
embs = [m["alignment"]["pretrained"]["pooled"].get("embedding", {}) for m in native_points]
summary = {
    "RPG vs scratch (%)": rpg_text,
    "pretrained − scratch (95 % CI over seeds)": gain_text,
    "epochs to 90 %, pretrained / scratch": shown_num(mean_of(ratios), ".2f", "a run never reached 90 %"),
    "MMD² of the embedding": shown_num(mean_of([e.get("mmd2") for e in embs]), ".4f", "not measured"),
    "linear CKA of the embedding": shown_num(mean_of([e.get("cka") for e in embs]), ".3f", "not measured"),
}
for key, label in (("epochs_ratio_text", "epochs to 90 %, pretrained / scratch"),
                   ("mmd2_text", "MMD² of the embedding"), ("cka_text", "linear CKA of the embedding")):
    glue(key, HTML(f"<span>{summary[label]}</span>"), display=False)  # inline across pages, no quotes
glue("n_seeds", len(native_points), display=False)
fig = fig_training.plot_learning_curves(first)
glue("fig_curves", fig)
plt.close(fig)
fig = fig_training.plot_layer_alignment(first)
glue("fig_alignment", fig)
plt.close(fig)
pd.Series(summary, name=f"{len(native_points)} seed(s), native objective").to_frame()

# %% [markdown]
# ## Example predictions (first seed, native objective)

# %%
run_folder = paths.run_dir(profile, task, model, first["seed"], first["objective"])
fig = fig_training.plot_examples(run_folder / first["examples"], spec)
glue("fig_examples", fig)
plt.close(fig)

# %%
glue_provenance(profile, t0, dev);
