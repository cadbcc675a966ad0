"""Verdicts on H1–H6 (STUDY §1), each from one statistic, its n, CI and p, by a rule written here.

The rule (:data:`VERDICT_RULE`, printed by the book) is applied by :func:`verdict`:

* **supported** — n ≥ the hypothesis' minimum, the Holm-adjusted p (over H1–H6) ≤ 0.05 and the 95 % CI
  excludes 0 on the side the hypothesis predicts;
* **contradicted** — the same with the CI excluding 0 on the opposite side;
* **inconclusive** — otherwise (adjusted p > 0.05, CI contains 0, CI undefined, or n below the minimum).

No CI on fewer than 10 units is a percentile bootstrap. The fixed effect is defined once: the partial
correlation after removing group means (:mod:`transferlimits.metrics.fixed_effects`).

The statistics (one function each; ``points`` = :func:`transferlimits.study.analysis.average_points`, one
row per (task, model) averaged over seeds, RPG-undefined seeds excluded; ``encoders`` =
:func:`~transferlimits.study.analysis.encoder_points`, one row per (task, model, objective kind)):

* H1 :func:`h1_suited_mmd` — within-model correlation of "the task suits the model's objective" (1 / 0;
  reconstruction ↔ restoration task, contrastive ↔ semantic task) with MMD², model as a fixed effect.
  Predicted negative (suited → smaller shift).
* H2 :func:`h2_mmd_rpg` — alignment vs RPG within task (encoders as units, task × model fixed effects) where
  the encoders allow it, else across tasks (model fixed effect); the other view in the note. Predicted negative.
* H3 :func:`h3_mmd_convergence` — alignment vs convergence ratio (epochs to 90 %, pretrained / scratch), as
  H2. Predicted positive (smaller shift → smaller ratio = faster).
* H4 :func:`h4_interaction` — interaction (RPG restoration − RPG semantic) of reconstruction-objective
  models minus that of contrastive models. Predicted positive.
* H5 :func:`h5_prehoc_vs_posthoc` — predictive strength of pre-hoc LogME (correlation with RPG) minus that
  of post-hoc MMD² (−correlation with RPG), both with the target type as a fixed effect (LogME is comparable
  only within one target type). Positive = the pre-hoc score predicts better; the "prediction" is that it
  predicts at least as well, so a CI below 0 contradicts.
* H6 :func:`h6_objective_effect` — from the 2×2 control (both objectives on both backbones): RPG of the
  task-suited objective minus the unsuited one with the architecture held fixed, averaged over tasks and
  backbones. Predicted positive; the architecture effect (same objective, other backbone) is reported beside,
  and so is the supervision confound the adapters declare (a "contrastive" objective that uses labels).

The rule, the claims and the design are in :mod:`~transferlimits.study.verdict_rules`, the statistics in
:mod:`~transferlimits.study.verdict_stats`, the table and paragraphs in :mod:`~transferlimits.study.verdict_text`;
this module re-exports all of them.
"""

from __future__ import annotations

from transferlimits.study.verdict_rules import (
    ALPHA, CLAIMS, DESIGN, N_MIN, POWER, VERDICT_RULE, VERDICTS, Verdict, gate_on_design, holm_adjust,
    minimum_detectable_effect, verdict,
)
from transferlimits.study.verdict_stats import (
    all_verdicts, h1_suited_mmd, h2_mmd_rpg, h3_mmd_convergence, h4_interaction, h5_prehoc_vs_posthoc,
    CONTROL_KINDS, h6_objective_effect, study_verdicts, supervision_confound,
)
from transferlimits.study.verdict_text import signed, verdict_paragraph, verdict_table, verdict_table_markdown

__all__ = ["VERDICT_RULE", "N_MIN", "VERDICTS", "CLAIMS", "DESIGN", "ALPHA", "POWER", "Verdict", "verdict",
           "h1_suited_mmd", "h2_mmd_rpg", "h3_mmd_convergence", "h4_interaction", "h5_prehoc_vs_posthoc",
           "h6_objective_effect", "all_verdicts", "study_verdicts", "verdict_table", "minimum_detectable_effect",
           "holm_adjust", "gate_on_design", "supervision_confound", "CONTROL_KINDS",
           "verdict_paragraph", "verdict_table_markdown", "signed"]
