"""The statistics behind the verdicts on H1–H6 (one function each; see :mod:`transferlimits.study.verdicts`).

``points`` = :func:`transferlimits.study.analysis.average_points`, one row per (task, model) averaged over
seeds, RPG-undefined seeds excluded. Each function returns a :class:`~transferlimits.study.verdict_rules.Verdict`
by the rule of :mod:`transferlimits.study.verdict_rules`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from transferlimits.metrics.correlation import within_group_correlation
from transferlimits.study import analysis as an
from transferlimits.study.verdict_rules import NAN, Estimate, Verdict, make_verdict, undefined

__all__ = ["h1_suited_mmd", "h2_mmd_rpg", "h3_mmd_convergence", "h4_interaction", "h5_prehoc_vs_posthoc",
           "h6_objective_effect", "all_verdicts", "study_verdicts"]


def _fixed_effect(x: np.ndarray, y: np.ndarray, groups: np.ndarray, n_boot: int,
                  n_perm: int, seed: int) -> Estimate:
    """Fixed-effect r of ``x`` and ``y`` within ``groups``: bootstrap CI, permutation p, n and group count."""
    c = within_group_correlation(x, y, groups, n_boot=n_boot, n_perm=n_perm, seed=seed, per_group=False)
    return Estimate(c["fe_r"], c["fe_ci"], c["fe_p_perm"], c["n"], n_groups=c["n_groups"])


def h1_suited_mmd(points: pd.DataFrame, n_boot: int = 2000, n_perm: int = 2000, seed: int = 0) -> Verdict:
    """H1: within-model correlation of objective suitability (1 / 0) with MMD² (model fixed effect)."""
    suited = (points["restoration"].astype(bool) == points["reconstruction"].astype(bool)).to_numpy(float)
    stat = _fixed_effect(suited, points["mmd2"].to_numpy(float), points["model"].to_numpy(), n_boot, n_perm, seed)
    return make_verdict("H1", "r(task suits objective, MMD²), model fixed effect", -1, stat)


def h2_mmd_rpg(points: pd.DataFrame, n_boot: int = 2000, n_perm: int = 2000, seed: int = 0) -> Verdict:
    """H2: Pearson r of MMD² and RPG, model fixed effect (values z-scored within each model)."""
    stat = _fixed_effect(points["mmd2"].to_numpy(float), points["rpg"].to_numpy(float),
                         points["model"].to_numpy(), n_boot, n_perm, seed)
    return make_verdict("H2", "r(MMD², RPG), model fixed effect", -1, stat)


def h3_mmd_convergence(points: pd.DataFrame, n_boot: int = 2000, n_perm: int = 2000, seed: int = 0) -> Verdict:
    """H3: Pearson r of MMD² and the convergence ratio (pretrained / scratch epochs), model fixed effect."""
    stat = _fixed_effect(points["mmd2"].to_numpy(float), points["epochs_ratio"].to_numpy(float),
                         points["model"].to_numpy(), n_boot, n_perm, seed)
    return make_verdict("H3", "r(MMD², epochs-to-90 % ratio), model fixed effect", 1, stat)


def _interaction(rpg: np.ndarray, restoration: np.ndarray, reconstruction: np.ndarray) -> float:
    def gap(family: np.ndarray) -> float:
        a, b = rpg[family & restoration], rpg[family & ~restoration]
        return float(a.mean() - b.mean()) if a.size and b.size else NAN
    return gap(reconstruction) - gap(~reconstruction)


def _boot_perm(stat: Callable[[np.ndarray], float], cells: np.ndarray, n: int, n_boot: int, seed: int,
               null: Callable[[np.random.Generator], float] | None, n_perm: int):
    """Bootstrap CI resampling rows within ``cells`` ([n] cell codes) and a permutation p from ``null``.

    Returns:
        ``(observed, (lo, hi), p, finite bootstrap replicates)``; p is NaN without ``null``.
    """
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(cells == c) for c in np.unique(cells)]
    reps = np.array([stat(np.concatenate([m[rng.integers(0, m.size, m.size)] for m in members]))
                     for _ in range(n_boot)])
    reps = reps[np.isfinite(reps)]
    ci = tuple(np.quantile(reps, [0.025, 0.975])) if reps.size else (NAN, NAN)
    obs = stat(np.arange(n))
    if null is None or not n_perm or not math.isfinite(obs):
        return obs, ci, NAN, reps
    draws = np.nan_to_num(np.array([null(rng) for _ in range(n_perm)]))
    return obs, ci, float((1 + np.sum(np.abs(draws) >= abs(obs) - 1e-12)) / (1 + n_perm)), reps


def h4_interaction(points: pd.DataFrame, n_boot: int = 2000, n_perm: int = 2000, seed: int = 0) -> Verdict:
    """H4: (RPG restoration − semantic | reconstruction models) − (same | contrastive models).

    CI: bootstrap of points within the four (objective family × task family) cells; p: permutation of
    the restoration / semantic labels within each model.
    """
    df = points[np.isfinite(points["rpg"].to_numpy(float))]
    rpg = df["rpg"].to_numpy(float)
    rest, recon = df["restoration"].to_numpy(bool), df["reconstruction"].to_numpy(bool)
    n = len(df)
    if n == 0 or len({(a, b) for a, b in zip(rest, recon)}) < 4:
        return make_verdict("H4", "RPG interaction (restoration − semantic) × (reconstruction − contrastive)", 1,
                            undefined(n), "needs all four objective × task-family cells")
    models = df["model"].to_numpy()

    def null(rng: np.random.Generator) -> float:
        perm = rest.copy()
        for mdl in np.unique(models):
            idx = np.flatnonzero(models == mdl)
            perm[idx] = rng.permutation(perm[idx])
        return _interaction(rpg, perm, recon)

    est, ci, p, _ = _boot_perm(lambda i: _interaction(rpg[i], rest[i], recon[i]), rest * 2 + recon, n, n_boot, seed,
                            null, n_perm)
    return make_verdict("H4", "RPG interaction (restoration − semantic) × (reconstruction − contrastive), %", 1,
                        Estimate(est, ci, p, n))


def h5_prehoc_vs_posthoc(points: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> Verdict:
    """H5: r(LogME, RPG) − (−r(MMD², RPG)), both within target type (fixed effect), on the same points.

    CI: bootstrap of points within target types; p: two-sided bootstrap p (2 × the smaller tail at 0).
    """
    df = points[np.isfinite(points[["logme", "mmd2", "rpg"]].to_numpy(float)).all(1)]
    lg, mm, rp = (df[c].to_numpy(float) for c in ("logme", "mmd2", "rpg"))
    groups = df["target_type"].astype(str).to_numpy()

    def stat(i: np.ndarray) -> float:
        fe = [within_group_correlation(x[i], rp[i], groups[i], n_boot=0, n_perm=0, per_group=False)["fe_r"]
              for x in (lg, mm)]
        return fe[0] + fe[1]  # r_logme − (−r_mmd)

    n = len(df)
    if n < 3:
        return make_verdict("H5", "r(LogME, RPG) − (−r(MMD², RPG)), target type fixed effect", 1, undefined(n))
    codes = np.unique(groups, return_inverse=True)[1]
    est, ci, _, reps = _boot_perm(stat, codes, n, n_boot, seed, None, 0)
    p = float(min(1.0, 2 * min((reps <= 0).mean(), (reps >= 0).mean()))) if reps.size else NAN
    return make_verdict("H5", "r(LogME, RPG) − (−r(MMD², RPG)), target type fixed effect", 1,
                        Estimate(est, ci, p, n, n_groups=len(np.unique(groups))),
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


def h6_objective_effect(control: pd.DataFrame, n_boot: int = 2000, n_perm: int = 2000, seed: int = 0) -> Verdict:
    """H6: RPG of the task-suited objective minus the unsuited one, same backbone, mean over control tasks.

    Args:
        control: :func:`~transferlimits.study.analysis.average_points` with ``by_objective=True`` (native and
            swapped rows). n = cells of complete 2×2 blocks (4 per task).
    CI: bootstrap over tasks; p: sign-flip permutation of the per-task effects.
    """
    eff = _effects(control[np.isfinite(control["rpg"].to_numpy(float))]) if len(control) else _effects(control)
    v = eff["objective_effect"].to_numpy(float)
    n = 4 * len(v)
    arch = float(np.nanmean(eff["architecture_effect"])) if len(eff) else NAN
    note = f"architecture effect (reconstruction-native backbone − other, both objectives): {arch:+.2f} %"
    if len(v) == 0:
        return make_verdict("H6", "RPG suited − unsuited objective, same backbone (2×2 control), %", 1,
                            undefined(0, n_units=0), "no complete 2×2 block")

    def null(rng: np.random.Generator) -> float:
        return float(np.mean(v * rng.choice([-1.0, 1.0], v.size)))

    est, ci, p, _ = _boot_perm(lambda i: float(np.mean(v[i])), np.zeros(v.size, int), v.size, n_boot, seed, null,
                            n_perm)
    return make_verdict("H6", "RPG suited − unsuited objective, same backbone (2×2 control), %", 1,
                        Estimate(est, ci, p, n, n_units=len(v)), note)


def all_verdicts(points: pd.DataFrame, control: pd.DataFrame | None = None, n_boot: int = 2000,
                 n_perm: int = 2000, seed: int = 0) -> list[Verdict]:
    """H1–H6 in order (H6 inconclusive with n = 0 when ``control`` is None or empty)."""
    ctl = control if control is not None else pd.DataFrame(columns=["task", "model", "reconstruction", "rpg",
                                                                     "restoration", "objective_kind"])
    return [h1_suited_mmd(points, n_boot, n_perm, seed), h2_mmd_rpg(points, n_boot, n_perm, seed),
            h3_mmd_convergence(points, n_boot, n_perm, seed), h4_interaction(points, n_boot, n_perm, seed),
            h5_prehoc_vs_posthoc(points, n_boot, seed), h6_objective_effect(ctl, n_boot, n_perm, seed)]


def study_verdicts(results_root, n_boot: int = 1000, n_perm: int = 1000,
                   seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, list[Verdict]]:
    """H1–H6 of a profile's results tree exactly as ``notebooks/30_alignment.py`` computes them.

    Args:
        results_root: a results folder (``paths.results_dir(profile)`` or a published copy). n_boot, n_perm:
            bootstrap and permutation sizes (the notebook's ``n_bootstrap`` / ``n_permutations``; default 1000).
        seed: RNG seed (default 0).

    Returns:
        ``(native, control, verdicts)``: the seed-averaged native points, the control points (native and
        swapped rows of the tasks that have swapped runs), and :func:`all_verdicts`.
    """

    rows = an.point_rows(an.load_profile_points(results_root))
    native = an.average_points(rows)
    swapped_tasks = set(rows.loc[rows["objective_kind"] == "swapped", "task"])
    control = an.average_points(rows[rows["task"].isin(swapped_tasks)], by_objective=True)
    return native, control, all_verdicts(native, control if len(control) else None, n_boot, n_perm, seed)
