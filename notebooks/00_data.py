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
# # Data: the phantom cohort and the real exams
# The cohort of a profile: phantom exams synthesised on the PI-CAI label geometry (or the user's PI-CAI
# images for the `picai` profile), patient-level splits, and a manifest. The two shipped real PI-CAI exams
# calibrate and check the phantoms. `transferlimits.data.cohort.build_cohort` does the work and caches it; a render of
# results computed elsewhere (`render_only`) reads the cohort's manifest and linear references as that run wrote them.

# %%
import os
import time

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import HTML
from myst_nb import glue

from transferlimits import paths
from transferlimits.data.calibration import calibration_table, phantom_of_real
from transferlimits.data.cohort import build_cohort, recorded_cohort
from transferlimits.figures import data as fig_data
from transferlimits.resolved import load_resolved
from transferlimits.runner.provenance import glue_provenance, hardware_line
from transferlimits.study.linear_reference import read_linear_references, write_linear_references

t0 = time.time()

# %% tags=["parameters"]
profile = "smoke"  # smoke | reference | picai
data_path = ""  # picai profile: the PI-CAI public images folder (empty: the profile default)
labels_path = ""  # picai profile: a picai_labels checkout (empty: the shipped subset)
render_only = False  # True: results computed elsewhere (e.g. on a GPU): read their cohort manifest, build nothing

# %%
prof = load_resolved(profile)  # results/<profile>/profile.json (the run's overrides) or the defaults
workers = int(os.environ.get("TRANSFERLIMITS_THREADS", "1"))
if render_only:  # the cases stayed where they were made; the manifest lists them (and their sha256)
    cohort, real = recorded_cohort(prof)
else:
    cohort = build_cohort(prof, workers=workers, images_root=data_path or None, labels_root=labels_path or None)
    real = cohort.real_cases()
sizes = {split: len(cohort.case_ids(split)) for split in ("pretrain", "train", "val", "test")}
for split, n in sizes.items():
    glue(f"n_{split}", n, display=False)
glue("n_real", len(real), display=False)
glue("grid_shape", HTML(" × ".join(map(str, prof.grid.shape))), display=False)
pd.Series(sizes, name="cases").to_frame()

# %% [markdown]
# ## Phantom vs real
# Mid-gland slices of a real exam and of the phantom synthesised on that exam's own label geometry, on the
# profile's grid (T2W, ADC, high-b DWI, and the zone and lesion contours).

# %%
twins = [phantom_of_real(case, prof.grid) for case in real]  # phantoms on the real exams' own geometry
fig = fig_data.plot_phantom_vs_real(twins[0], real[0])
glue("fig_phantom_vs_real", fig)  # displayed: myst-nb writes the image file other pages link to
plt.close(fig)

# %% [markdown]
# ## Calibration: per-zone intensity statistics
# Normalised intensities per zone (peripheral zone, transition zone, lesion, outside the gland) of the real
# exams and of their phantom twins (like-for-like: same anatomy, same labels).

# %%
table = calibration_table(real, twins)
glue("calibration_rows", len(table), display=False)
empty = table["n_real"].eq(0) | table["n_phantom"].eq(0)  # a zone with no voxels in a group: no statistics
shown = table.round(3).astype(object).where(table.notna(), "—")
shown["note"] = ["no voxels of this zone in " + ("the real exams" if r == 0 else "the phantoms") if e else ""
                 for e, r in zip(empty, table["n_real"])]
glue("calibration_table", shown, display=False)
adc = table[table.sequence == "adc"].set_index("zone")
for zone in ("PZ", "TZ", "lesion"):
    glue(f"adc_{zone}_real", float(adc.loc[zone, "real_mean"]), display=False)
    glue(f"adc_{zone}_phantom", float(adc.loc[zone, "phantom_mean"]), display=False)
shown

# %%
fig = fig_data.plot_zone_histograms(real, twins)
glue("fig_zone_histograms", fig)
plt.close(fig)

# %% [markdown]
# ## What a linear model achieves on these tasks
# The closed-form linear reference of each task that has one (`transferlimits.study.linear_reference`): the
# least-squares 3×3×3 filter of the degraded input for same-modality restoration, a voxel-wise logistic
# regression for segmentation, fitted on the train split and scored on the test split (data seed 0), on the
# machine printed above the table (the run's, also when this page renders results made elsewhere). A
# fine-tuned network that does not beat it has not learned its task; the task pages draw it beside the trivial
# baselines and the run page's design check reads it.

# %%
refs = (read_linear_references(paths.linear_references(profile)) if render_only else
        write_linear_references(prof, cohort, hardware_line(), paths.linear_references(profile)))
print(f"fitted on: {refs.get('hardware', '?')}")
pd.DataFrame([{"task": task, "metric": ref["metric"], "quantity": key, "value": round(value, 4)}
              for task, ref in refs["tasks"].items() for key, value in ref.items()
              if isinstance(value, float) and key not in ("seconds", "gain_sd", "lesion_voxel_share_train")])

# %%
glue_provenance(profile, t0);
