"""The statistics behind the verdicts on H1–H6 (one function each; see :mod:`transferlimits.study.verdicts`).

``points`` = :func:`transferlimits.study.analysis.average_points`, one row per (task, model) averaged over
seeds, RPG-undefined seeds excluded; ``encoders`` = :func:`~transferlimits.study.analysis.encoder_points`, one
row per (task, model, objective kind). Each function returns a
:class:`~transferlimits.study.verdict_rules.Verdict` by the rule of :mod:`transferlimits.study.verdict_rules`
as a family of one; :func:`all_verdicts` adjusts the six p together (Holm) and re-applies the rule.

Intervals (no percentile bootstrap on fewer than 10 units, STUDY §5.2): correlations (H1–H3) Fisher z with
df = n − G − 1; H4 a t interval of the interaction contrast with the pooled within-cell variance (df = n − 4);
H5 Zou's interval for two correlations sharing RPG, Williams' t for p; H6 a t interval over tasks (df = T − 1)
with the exact sign-flip p over all 2ᵀ sign patterns.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from transferlimits.metrics.fixed_effects import partial_r
from transferlimits.metrics.intervals import contrast_interval, dependent_r_difference, signflip_exact, t_interval
from transferlimits.metrics.power import signflip_min_p
from transferlimits.study import analysis as an
from transferlimits.study.control_check import control_table, design_check
from transferlimits.study.pair_index import published_calibration
from transferlimits.study.verdict_rules import (
    NAN, Estimate, Verdict, gate_on_design, holm_adjust, make_verdict, undefined)
from transferlimits.study.verdict_within import ACROSS, fixed_effect_estimate, h2_h3_views

__all__ = ["h1_suited_mmd", "h2_mmd_rpg", "h3_mmd_convergence", "h4_interaction", "h5_prehoc_vs_posthoc",
           "h6_objective_effect", "supervision_confound", "all_verdicts", "study_verdicts", "CONTROL_KINDS"]

#: Objective kinds of the 2×2 control (H6); other kinds (shorter pre-training, controls) are not its cells.
CONTROL_KINDS = ("native", "swapped")


def h1_suited_mmd(points: pd.DataFrame, n_perm: int = 2000, seed: int = 0) -> Verdict:
    """H1: fixed-effect r of objective suitability (1 / 0) with MMD², model groups (across tasks)."""
    table = points.assign(suited=(points["restoration"].astype(bool) == points["reconstruction"].astype(bool))
                          .astype(float)) if len(points) else pd.DataFrame(columns=["suited", "mmd2", "model"])
    stat = fixed_effect_estimate(table, "suited", "mmd2", ACROSS, n_perm, seed, "points")
    return make_verdict("H1", "r(task suits objective, MMD²), model fixed effect", -1, stat)


def h2_mmd_rpg(points: pd.DataFrame, n_perm: int = 2000, seed: int = 0, encoders: pd.DataFrame | None = None,
               x: str | None = None, y: str | None = None) -> Verdict:
    """H2: r_FE(alignment, RPG) within task (encoders, task × model groups), else across tasks (model groups);
    see :func:`~transferlimits.study.verdict_within.h2_h3_views`."""
    return h2_h3_views("H2", points, encoders, x, y, n_perm, seed)


def h3_mmd_convergence(points: pd.DataFrame, n_perm: int = 2000, seed: int = 0,
                       encoders: pd.DataFrame | None = None, x: str | None = None) -> Verdict:
    """H3: r_FE(alignment, convergence ratio pretrained / scratch) within task, else across tasks."""
    return h2_h3_views("H3", points, encoders, x, None, n_perm, seed)


def _interaction(rpg: np.ndarray, restoration: np.ndarray, reconstruction: np.ndarray) -> float:
    def gap(family: np.ndarray) -> float:
        a, b = rpg[family & restoration], rpg[family & ~restoration]
        return float(a.mean() - b.mean()) if a.size and b.size else NAN
    return gap(reconstruction) - gap(~reconstruction)


def h4_interaction(points: pd.DataFrame, n_perm: int = 2000, seed: int = 0) -> Verdict:
    """H4: (RPG restoration − semantic | reconstruction models) − (same | contrastive models).

    CI: t interval of this contrast of the four cell means with the pooled within-cell variance (df = n − 4);
    p: permutation of the restoration / semantic labels within each model (Monte Carlo, ``n_perm``).
    """
    name = "RPG interaction (restoration − semantic) × (reconstruction − contrastive), %"
    df = points[np.isfinite(points["rpg"].to_numpy(float))] if len(points) else points
    rest = df["restoration"].to_numpy(bool) if len(df) else np.zeros(0, bool)
    recon = df["reconstruction"].to_numpy(bool) if len(df) else np.zeros(0, bool)
    n = len(df)
    if n == 0 or len({(a, b) for a, b in zip(rest, recon)}) < 4:
        return make_verdict("H4", name, 1, undefined(n), "needs all four objective × task-family cells")
    rpg, models = df["rpg"].to_numpy(float), df["model"].to_numpy()
    cells = [f"{'recon' if b else 'other'}/{'rest' if a else 'sem'}" for a, b in zip(rest, recon)]
    est, ci, dof = contrast_interval(rpg, cells, {"recon/rest": 1, "recon/sem": -1, "other/rest": -1,
                                                  "other/sem": 1})
    rng = np.random.default_rng(seed)
    null = np.empty(n_perm)
    for i in range(n_perm):
        perm = rest.copy()
        for mdl in np.unique(models):
            idx = np.flatnonzero(models == mdl)
            perm[idx] = rng.permutation(perm[idx])
        null[i] = _interaction(rpg, perm, recon)
    p = float((1 + np.sum(np.abs(np.nan_to_num(null)) >= abs(est) - 1e-12)) / (1 + n_perm)) if n_perm else NAN
    return make_verdict("H4", name, 1, Estimate(est, ci, p, n, test="permutation of task family within model",
                                                ci_method=f"t, pooled cell variance, df = {dof}"))


def h5_prehoc_vs_posthoc(points: pd.DataFrame) -> Verdict:
    """H5: r(LogME, RPG) − (−r(MMD², RPG)), both fixed-effect r given the target type, on the same points.

    CI: Zou's interval for two correlations that share RPG; p: Williams' t (two-sided), both with the
    effective n − G + 1 (G target types) so that the Fisher SE is 1 / √(n − G − 2).
    """
    name = "r(LogME, RPG) − (−r(MMD², RPG)), target type fixed effect"
    cols = ["logme", "mmd2", "rpg"]
    df = points[np.isfinite(points[cols].to_numpy(float)).all(1)] if len(points) else points
    n = len(df)
    if n < 3:
        return make_verdict("H5", name, 1, undefined(n))
    lg, mm, rp = (df[c].to_numpy(float) for c in cols)
    groups = df["target_type"].astype(str).to_numpy()
    n_groups = len(np.unique(groups))
    r1, r2, r12 = partial_r(lg, rp, groups), partial_r(-mm, rp, groups), partial_r(lg, -mm, groups)
    est, ci, p = dependent_r_difference(r1, r2, r12, n - n_groups + 1)
    return make_verdict("H5", name, 1, Estimate(est, ci, p, n, n_groups=n_groups, ci_method="Zou (2007)"),
                        "positive: the pre-hoc score predicts RPG better; CI containing 0: no detectable difference")


def _effects(control: pd.DataFrame) -> pd.DataFrame:
    """Per task: objective effect (suited − unsuited objective, same backbone) and architecture effect."""
    rows = []
    for task, sub in control.groupby("task"):
        if sub[["model", "reconstruction"]].drop_duplicates().shape[0] < 4:
            continue
        rest = bool(sub["restoration"].iloc[0])
        cell = sub.groupby(["model", "reconstruction"])["rpg"].mean()
        suited = [cell[(m, rest)] - cell[(m, not rest)] for m in sub["model"].unique()]
        native = sub[sub["objective_kind"] == "native"].set_index("model")["reconstruction"]
        recon_model = [m for m, r in native.items() if r]
        other = [m for m in native.index if m not in recon_model]
        arch = (np.mean([cell[(m, o)] for m in recon_model for o in (True, False)])
                - np.mean([cell[(m, o)] for m in other for o in (True, False)])) if recon_model and other else NAN
        rows.append({"task": task, "objective_effect": float(np.mean(suited)), "architecture_effect": float(arch)})
    return pd.DataFrame(rows, columns=["task", "objective_effect", "architecture_effect"])


def supervision_confound(control: pd.DataFrame) -> str:
    """The confound of H6 read from the adapters' declared objectives (``ObjectiveInfo.uses_labels``): every
    control objective that is not declared ``supervised`` but uses labels, with its declared description."""
    if not len(control) or "objective" not in control.columns:
        return ""
    found = []
    for model, objective in control[["model", "objective"]].drop_duplicates().itertuples(index=False):
        decl = an.objective_declaration(model, objective)
        if decl is not None and decl[1].uses_labels and decl[1].family != "supervised":
            found.append(f"{decl[0]}'s '{objective}' objective (declared {decl[1].family}) uses labels: "
                         f"{decl[1].description}")
    if not found:
        return ""
    return ("Confound: " + "; ".join(found) + ". Its 'objective' contrast therefore also compares label-supervised "
            "with self-supervised pre-training.")


def h6_objective_effect(control: pd.DataFrame, n_perm: int = 20000, seed: int = 0) -> Verdict:
    """H6: RPG of the task-suited objective minus the unsuited one, same backbone, mean over control tasks.

    Args:
        control: :func:`~transferlimits.study.analysis.average_points` with ``by_objective=True``; only the
            :data:`CONTROL_KINDS` rows enter. n = cells of complete 2×2 blocks (4 per task).
        n_perm: Monte Carlo sign patterns beyond 16 tasks. seed: RNG seed.
    CI: t interval over tasks (df = T − 1); p: exact sign-flip test over all 2ᵀ sign patterns (smallest
    attainable p = 2 / 2ᵀ, in the note). The note also states the supervision confound (:func:`supervision_confound`).
    """
    name = "RPG suited − unsuited objective, same backbone (2×2 control), %"
    if len(control) and "objective_kind" in control.columns:
        control = control[control["objective_kind"].isin(CONTROL_KINDS)]
    eff = _effects(control[np.isfinite(control["rpg"].to_numpy(float))]) if len(control) else _effects(control)
    v = eff["objective_effect"].to_numpy(float)
    confound = supervision_confound(control)
    if len(v) == 0:
        return make_verdict("H6", name, 1, undefined(0, n_units=0),
                            " ".join(["no complete 2×2 block", confound]).strip())
    arch = float(np.nanmean(eff["architecture_effect"]))
    p, method = signflip_exact(v, n_perm=n_perm, seed=seed)
    note = (f"sign flip {method}, smallest attainable p = 2/2^{len(v)} = {signflip_min_p(len(v)):.4g}; "
            f"architecture effect (reconstruction-native backbone − other, both objectives): "
            + (f"{arch:+.2f} %" if math.isfinite(arch) else "undefined") + (f". {confound}" if confound else ""))
    return make_verdict("H6", name, 1, Estimate(float(np.mean(v)), t_interval(v), p, 4 * len(v), n_units=len(v),
                                                test="exact sign flip over tasks" if len(v) <= 16 else "",
                                                ci_method=f"t over tasks, df = {len(v) - 1}"), note)


def all_verdicts(points: pd.DataFrame, control: pd.DataFrame | None = None, *, encoders: pd.DataFrame | None = None,
                 n_perm: int = 2000, seed: int = 0) -> list[Verdict]:
    """H1–H6 in order, their p Holm-adjusted together and the rule re-applied to the adjusted p.

    Args:
        points: native seed-averaged points. control: 2×2 control table (None / empty: H6 inconclusive, n = 0).
        encoders: :func:`~transferlimits.study.analysis.encoder_points` for the within-task H2 / H3 (None:
            across tasks). n_perm: permutations of the Monte Carlo tests. seed: RNG seed.
    """
    ctl = control if control is not None else pd.DataFrame(columns=["task", "model", "reconstruction", "rpg",
                                                                     "restoration", "objective_kind"])
    return holm_adjust([h1_suited_mmd(points, n_perm, seed), h2_mmd_rpg(points, n_perm, seed, encoders),
                        h3_mmd_convergence(points, n_perm, seed, encoders), h4_interaction(points, n_perm, seed),
                        h5_prehoc_vs_posthoc(points), h6_objective_effect(ctl, seed=seed)])


def study_verdicts(results_root, *, n_perm: int = 1000,
                   seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, list[Verdict]]:
    """H1–H6 of a profile's results tree exactly as ``notebooks/30_alignment.py`` computes them.

    Args:
        results_root: a results folder (``paths.results_dir(profile)`` or a published copy). n_perm:
            permutations (the notebook's ``n_permutations``; default 1000). seed: RNG seed (default 0).

    Returns:
        ``(native, control, verdicts)``: the seed-averaged native points, the control points (native and
        swapped rows of the tasks that have swapped runs), and :func:`all_verdicts` with every encoder of the
        tree as a within-task unit, as the design check allows them (:func:`gate_on_design`).
    """
    points = an.load_profile_points(results_root)
    rows = an.point_rows(points, calibration=published_calibration(results_root))  # as the notebook: calibrated
    native = an.average_points(rows)
    swapped_tasks = set(rows.loc[rows["objective_kind"] == "swapped", "task"])
    control = an.average_points(rows[rows["task"].isin(swapped_tasks) & rows["objective_kind"].isin(CONTROL_KINDS)],
                                by_objective=True)
    encoders = an.encoder_points(rows)
    verdicts = all_verdicts(native, control if len(control) else None, encoders=encoders, n_perm=n_perm, seed=seed)
    return native, control, gate_on_design(verdicts, design_check(control_table(points))["passes"])
