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
# # Alignment vs performance: the analysis
# Reads only the `metrics.json` files of the profile's finished runs (every task, model, seed and objective,
# including tasks added through the extension point), averages seeds into one point per (task, model),
# excludes the seeds whose RPG is undefined (scratch run not above its trivial baseline) and counts them,
# correlates per model first and pooled with the model as a fixed effect, and gives H1–H6 their verdicts by
# the rule in `transferlimits.study.verdicts`.

# %%
import math
import time
from html import escape

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import HTML, Markdown, display
from myst_nb import glue

from transferlimits.figures.alignment import PAPER_RPG, paper_beside, sensitivity_table
from transferlimits.figures.alignment_panels import plot_alignment_by_model
from transferlimits.figures.task_summary import task_summary
from transferlimits.figures.verdicts import plot_forest
from transferlimits.metrics.fixed_effects import entering_units
from transferlimits.runner.provenance import glue_provenance
from transferlimits.study import analysis as an
from transferlimits.study import verdicts as vd
from transferlimits.study.control_check import control_table, design_check
from transferlimits.study.pair_index import declared_indexes, load_indexed_calibration, load_indexed_points
from transferlimits.study.verdict_within import ACROSS, alignment_column, fixed_effect_estimate

t0 = time.time()

# %% tags=["parameters"]
profile = "smoke"  # smoke | cpu | reference | picai
indexes = ""  # comma-separated pair indexes the workflow rule declares (empty: every pair index of the profile)
n_permutations = 1000  # permutations of the correlation p-values
n_bootstrap = 1000  # bootstrap resamples of the correlation CIs


# %%
def num(x: float, fmt: str = ".2f", why: str = "undefined") -> str:
    """A number as the book prints it; "—" with the reason when it is not finite (never a bare NaN)."""
    return format(x, fmt) if isinstance(x, (int, float)) and math.isfinite(x) else f"— ({why})"


def text(key: str, value: str) -> None:
    """Glue a string as inline HTML (cross-document ``{glue}`` pastes text/html inline, without quotes)."""
    glue(key, HTML(f"<span>{escape(str(value))}</span>"), display=False)


declared = declared_indexes(profile, indexes)
points = load_indexed_points(declared)
calibration = load_indexed_calibration(declared)
rows = an.point_rows(points, calibration=calibration)
native = an.average_points(rows)
excluded = an.excluded_points(rows[rows["objective_kind"] == "native"])
seeds = sorted(rows["seed"].unique())
text("profile_name", profile)
text("n_points", str(len(native)))
text("n_runs", str(int((rows["objective_kind"] == "native").sum())))
text("n_tasks", str(native["task"].nunique()))
text("n_seeds", str(len(seeds)))
text("n_excluded", str(len(excluded)))
shown = native[["task", "model", "n_seeds", "n_excluded", "rpg", "rpg_sd", "mmd2", "mmd2_sd", "epochs_ratio",
                "logme", "target_type"]]
HTML(shown.round(4).astype(object).where(shown.notna(), "—").to_html(classes="compact-table"))  # fits the column

# %% [markdown]
# ## Can this design see transfer? (read this first)
# The encoder controls ({ref}`methods-controls`) run through the identical pipeline: a **positive control** (an encoder that
# already learned the task on the pre-training pool) must show a gain over scratch, the **negative controls** (a
# second random initialisation presented as pretrained; where the profile runs it, random weights with the native
# encoder's per-tensor mean and SD) must not.
# Paired difference pretrained − scratch over seeds, a one-sided one-sample t-test for a gain (with 3 seeds and Holm
# over 10 points the first detection needs t ≥ 9.9), Holm across the (task, model) points of each control;
# `encoder_share` = (P − P_ablated) / (P − P_baseline) of the pretrained run (median over seeds).
# Every verdict below is only as strong as this check.

# %%
controls = control_table(points)
check = design_check(controls)
text("design_check", check["text"])
display(Markdown(f"**Design check:** {check['text']}."))
shown_controls = controls[controls["role"] != "objective"][["task", "model", "kind", "n", "mean", "ci_low", "ci_high",
                                                            "p", "p_holm", "detected", "encoder_share"]]
HTML(shown_controls.round(4).astype(object).where(shown_controls.notna(), "—").to_html(classes="compact-table"))

# %% [markdown]
# `rpg` is the mean over the seeds whose RPG is defined (`rpg_sd`: their SD; "—" with one seed or none);
# `n_excluded` counts the seeds left out because their scratch run did not beat the trivial baseline.

# %%
excluded if len(excluded) else pd.DataFrame({"note": ["no run was excluded: every scratch run beat its baseline"]})

# %% [markdown]
# ## Verdicts on H1–H6

# %%
swapped_tasks = set(rows.loc[rows["objective_kind"] == "swapped", "task"])
control = an.average_points(rows[rows["task"].isin(swapped_tasks)], by_objective=True)
control = control[control["objective_kind"].isin(vd.CONTROL_KINDS)] if len(control) else control
encoders = an.encoder_points(rows)  # every encoder (objective kind) of each task × model: H2 / H3 within task
verdicts = vd.all_verdicts(native, control if len(control) else None, encoders=encoders, n_perm=n_permutations)
verdicts = vd.gate_on_design(verdicts, check["passes"])  # a verdict is only as strong as the design check
table = vd.verdict_table(verdicts)
pd.set_option("display.max_colwidth", None)  # the book shows whole claims and statistics, never "..."
glue("verdict_table", vd.verdict_table(verdicts, compact=True), display=False)  # the intro's
glue("verdict_table_full", table, display=False)  # the final chapter's
text("verdict_rule", vd.VERDICT_RULE.replace("**", ""))
for v in verdicts:
    text(f"verdict_{v.hypothesis}", v.verdict)
counts = {w: sum(v.verdict == w for v in verdicts) for w in vd.VERDICTS}
h2 = verdicts[1]
headline = (f"On the {profile} profile ({len(native)} task × model points, {len(seeds)} fine-tuning "
            f"seed{'s' if len(seeds) != 1 else ''}) the six hypotheses get these verdicts by the rule below: "
            f"{counts['supported']} supported, {counts['contradicted']} contradicted, "
            f"{counts['inconclusive']} inconclusive. "
            f"The paper's central claim H2 (lower MMD² goes with larger RPG) is {h2.verdict}: {h2.statistic} is "
            f"r = {num(h2.estimate, '+.2f')} over n = {h2.n} {h2.units_name or 'points'} in {h2.n_groups} groups "
            f"(95 % CI {num(h2.ci_lo, '+.2f')} to {num(h2.ci_hi, '+.2f')}; p = {num(h2.p, '.3f')}, Holm-adjusted "
            f"{num(h2.p_rule, '.3f')}), where H2 predicts a negative value.")
text("headline", headline)
for v in verdicts:  # the numbers' own reading (study.verdicts.verdict_paragraph), for the chapters
    glue(f"verdict_paragraph_{v.hypothesis}", Markdown(vd.verdict_paragraph(v)), display=False)
    text(f"mde_{v.hypothesis}", vd.minimum_detectable_effect(v)[1])
HTML(table.drop(columns=["note"]).to_html(classes="verdict-table"))  # the book's table style: fits at 1280 px

# %% [markdown]
# Each row's statistic, unit and test are defined in the book's methods chapter; MDE is the smallest effect the
# test detects with 80 % power at α = 0.05 on its n. The forest plot shows the same estimates with their CIs
# (shaded: the side each hypothesis predicts); below it, what the numbers of each row show.

# %%
fig = plot_forest(verdicts)
glue("fig_forest", fig)
plt.close(fig)
display(Markdown("\n\n".join(vd.verdict_paragraph(v) for v in verdicts)))

# %% [markdown]
# ## The encoders of the within-task tests
# Every encoder (task × model × objective kind), its seeds averaged: the calibrated alignment *A* where more than
# half of its seeds have one (`A seeds`: how many do; *A* is undefined on a seed whose ceiling − floor ≤ floor,
# {ref}`its definition <methods-calibrated>`), RPG over the seeds where it is defined, and the uncalibrated
# embedding MMD² (every encoder has one). An encoder enters H2 where its alignment and RPG are both defined and its
# task × model group holds another such encoder (a group of one has no within-group variation).

# %%
x_h2 = alignment_column(encoders)
group = encoders["task"].astype(str) + " × " + encoders["model"].astype(str)
enters = pd.Series(entering_units(encoders[x_h2], encoders["rpg"], group), index=encoders.index)
text("n_encoders", str(len(encoders)))
text("n_encoders_h2", str(int(enters.sum())))
text("n_groups_h2", str(group[enters].nunique()))
enc_table = pd.DataFrame({
    "task": encoders["task"], "model": encoders["model"], "encoder": encoders["objective_kind"],
    "A (seed mean)": encoders["mmd2_calibrated"], "A seeds": encoders["mmd2_calibrated_n"].astype(int),
    "seeds": encoders["n_seeds"].astype(int), "RPG (%)": encoders["rpg"], "MMD²": encoders["mmd2"],
    f"enters H2 ({x_h2})": enters.map({True: "yes", False: "no"})})
display(Markdown(f"{int(enters.sum())} of {len(encoders)} encoders, in {group[enters].nunique()} task × model groups, "
                 f"enter H2's within-task statistic."))
HTML(enc_table.round(3).astype(object).where(enc_table.notna(), "—").to_html(classes="compact-table", index=False))

# %% [markdown]
# ## MMD² vs RPG and vs convergence, per model
# One panel per model; each point is a (task, model) pair averaged over seeds with the seed SD as error
# bars. A point whose RPG is undefined for every seed is marked on the lower edge and excluded.

# %%
corr = {}
for y in ("rpg", "epochs_ratio"):
    c = an.model_correlation(native, "mmd2", y, n_bootstrap, n_permutations)  # per-model panels
    corr[y] = c
    fe = fixed_effect_estimate(native, "mmd2", y, ACROSS, n_permutations)  # the across-task view: one definition
    text(f"{y}_fe_r", num(fe.estimate, "+.2f", "fewer than 3 points per model"))
    text(f"{y}_fe_ci", f"{num(fe.ci[0], '+.2f')} to {num(fe.ci[1], '+.2f')}")
    text(f"{y}_fe_p", num(fe.p, ".3f"))
    text(f"{y}_n", str(fe.n))
fig = plot_alignment_by_model(native, "rpg", "RPG vs scratch (%)", corr["rpg"]["per_group"])
glue("fig_alignment_scatter", fig)  # displayed: myst-nb writes the image file the chapters link to
plt.close(fig)
fig = plot_alignment_by_model(native, "epochs_ratio", "epochs to 90 %, pretrained / scratch",
                              corr["epochs_ratio"]["per_group"])
glue("fig_convergence_scatter", fig)
plt.close(fig)
per_model = pd.DataFrame([
    {"y": y, "model": model, "n": g["n"], "Pearson r": num(g["pearson_r"], "+.2f", "n < 3"),
     "95 % CI": f"{num(g['pearson_ci'][0], '+.2f')} to {num(g['pearson_ci'][1], '+.2f')}",
     "permutation p": num(g["pearson_p_perm"], ".3f", "n < 3")}
    for y, c in corr.items() for model, g in c["per_group"].items()]
    + [{"y": y, "model": "pooled, model fixed effect (partial r, Fisher-z CI)", "n": fe.n,
        "Pearson r": num(fe.estimate, "+.2f"), "95 % CI": f"{num(fe.ci[0], '+.2f')} to {num(fe.ci[1], '+.2f')}",
        "permutation p": num(fe.p, ".3f")}
       for y in corr for fe in [fixed_effect_estimate(native, "mmd2", y, ACROSS, n_permutations)]])
per_model

# %% [markdown]
# ## Sensitivity to the analysis choices
# The headline H2 statistic itself — the fixed-effect correlation on seed-averaged units (within task: encoders
# with task × model fixed effects, where the encoders allow it; else across tasks with the model fixed effect),
# Fisher-z CI, within-group permutation p, on the calibrated alignment where the run has it — recomputed with the
# calibration at the median bandwidth alone, without calibration, then (uncalibrated: only the embedding has a
# noise floor) under each bandwidth multiplier, each layer, token-level instead of per-image pooling, and with the
# normalised gain instead of RPG. Rows with fewer units than the H2 minimum
# are flagged: their coefficients are indicative only.

# %%
sens = sensitivity_table(points, "rpg", n_permutations, calibration=calibration)
n_min = vd.N_MIN["H2"]
sens_shown = pd.DataFrame({
    "axis": sens["axis"], "choice": sens["choice"], "view": sens["view"], "n": sens["n"],
    "groups": sens["n_groups"], "r (fixed effect)": [num(r, "+.2f", "too few units") for r in sens["r"]],
    "95 % CI (Fisher z)": [f"{num(lo, '+.2f')} to {num(hi, '+.2f')}" for lo, hi in sens["ci"]],
    "p": [num(p, ".3f", "too few units") for p in sens["p"]],
    "flag": [f"small n (< {n_min}): indicative only" if n < n_min else "" for n in sens["n"]],
})
base_r = sens["r"].iloc[0] if len(sens) else float("nan")
big = sens[sens["n"] >= n_min]
text("sensitivity_rows", str(len(sens)))
text("sensitivity_small", str(int((sens["n"] < n_min).sum())))
text("sensitivity_sign_agreement",
     num(float((big["r"] * base_r > 0).mean()) if len(big) and math.isfinite(base_r) else float("nan"),
         ".2f", f"no row has n ≥ {n_min}"))
sens_shown

# %% [markdown]
# ## Our RPG beside the paper's
# The paper's four RPG numbers as recovered from a **secondary AI-written summary (ownyourai), not from the
# paper's own tables**. Ours: mean RPG (%) over the seeds whose RPG is defined, with the 95 % t interval over
# those seeds.

# %%
beside_ci = paper_beside(rows)
glue("paper_beside", beside_ci, display=False)
ours = native.set_index(["model", "task"])["rpg"]
beside = PAPER_RPG[["model", "task", "rpg_paper"]].copy()
beside["rpg_ours"] = [num(ours.get((m, t), float("nan")), ".2f", "RPG undefined or not run")
                      for m, t in zip(beside["model"], beside["task"])]
for _, row in beside.iterrows():
    text(f"ours_{row['model']}_{row['task']}", row["rpg_ours"])
beside_ci

# %% [markdown]
# ## Task summaries
# One table per task for its chapter: both models, the three initialisations and the trivial baseline, the
# primary and secondary metrics (mean ± seed SD), and the real-exam external test for restoration tasks.

# %%
for task in sorted(native["task"].unique()):
    summary, info = task_summary(points, task)
    glue(f"summary_{task}", summary, display=False)
    n = sorted(set(info["n_seeds"].values()))
    text(f"seeds_{task}", " / ".join(map(str, n)))
    text(f"primary_{task}", info["primary"])
summary

# %%
glue_provenance(profile, t0);
