"""Verdicts on H1–H6 (STUDY §1), each from one statistic, its n, CI and p, by a rule written here.

The rule (:data:`VERDICT_RULE`, printed by the book) is applied by :func:`verdict`:

* **supported** — n ≥ the hypothesis' minimum and the 95 % CI excludes 0 on the side the hypothesis predicts;
* **contradicted** — n ≥ the minimum and the CI excludes 0 on the opposite side;
* **inconclusive** — otherwise (CI contains 0, CI undefined, or n below the minimum).

The statistics (one function each; ``points`` = :func:`transferlimits.study.analysis.average_points`, one
row per (task, model) averaged over seeds, RPG-undefined seeds excluded):

* H1 :func:`h1_suited_mmd` — within-model correlation of "the task suits the model's objective" (1 / 0;
  reconstruction ↔ restoration task, contrastive ↔ semantic task) with MMD², model as a fixed effect.
  Predicted negative (suited → smaller shift).
* H2 :func:`h2_mmd_rpg` — MMD² vs RPG, model fixed effect. Predicted negative.
* H3 :func:`h3_mmd_convergence` — MMD² vs convergence ratio (epochs to 90 %, pretrained / scratch), model
  fixed effect. Predicted positive (smaller shift → smaller ratio = faster).
* H4 :func:`h4_interaction` — interaction (RPG restoration − RPG semantic) of reconstruction-objective
  models minus that of contrastive models. Predicted positive.
* H5 :func:`h5_prehoc_vs_posthoc` — predictive strength of pre-hoc LogME (correlation with RPG) minus that
  of post-hoc MMD² (−correlation with RPG), both with the target type as a fixed effect (LogME is comparable
  only within one target type). Positive = the pre-hoc score predicts better; the "prediction" is that it
  predicts at least as well, so a CI below 0 contradicts.
* H6 :func:`h6_objective_effect` — from the 2×2 control (both objectives on both backbones): RPG of the
  task-suited objective minus the unsuited one with the architecture held fixed, averaged over tasks and
  backbones. Predicted positive; the architecture effect (same objective, other backbone) is reported beside.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from transferlimits.metrics.correlation import within_group_correlation

__all__ = ["VERDICT_RULE", "N_MIN", "VERDICTS", "CLAIMS", "Verdict", "verdict", "h1_suited_mmd", "h2_mmd_rpg",
           "h3_mmd_convergence", "h4_interaction", "h5_prehoc_vs_posthoc", "h6_objective_effect",
           "all_verdicts", "verdict_table"]

VERDICTS = ("supported", "contradicted", "inconclusive")
#: What each hypothesis claims, in one line (the verdict table's first column).
CLAIMS = {
    "H1": "MMD² is smaller where the pre-training objective suits the task",
    "H2": "lower MMD² goes with larger RPG (negative correlation)",
    "H3": "lower MMD² goes with faster convergence",
    "H4": "the MAE model gains most on restoration tasks, the contrastive model on semantic tasks",
    "H5": "pre-hoc LogME predicts RPG at least as well as post-hoc MMD²",
    "H6": "the objective, not the architecture, decides where pre-training helps (2×2 control)",
}
#: Smallest n (points, or cells for H6) for a verdict other than "inconclusive".
N_MIN = {"H1": 6, "H2": 6, "H3": 6, "H4": 8, "H5": 6, "H6": 12}  # H6: 4 cells per task, >= 3 tasks to resample
VERDICT_RULE = ("A hypothesis is **supported** when its statistic's 95 % bootstrap CI excludes 0 on the side "
                "the hypothesis predicts and n is at least the stated minimum; **contradicted** when the CI "
                "excludes 0 on the opposite side with the same n; **inconclusive** otherwise (the CI contains "
                "0 or is undefined, or n is below the minimum). Minimum n: "
                + ", ".join(f"{h} {n}" for h, n in N_MIN.items()) + ".")
_NAN = float("nan")


@dataclass(frozen=True)
class Verdict:
    """One hypothesis' test: what was computed, on how many points, and the verdict word."""

    hypothesis: str
    statistic: str
    predicted: str  # "negative" | "positive"
    estimate: float
    ci_lo: float
    ci_hi: float
    p: float
    n: int
    n_min: int
    verdict: str
    note: str = ""


def verdict(estimate: float, ci: tuple[float, float], n: int, predicted_sign: int, n_min: int) -> str:
    """The verdict word by :data:`VERDICT_RULE`.

    Args:
        estimate: the statistic (only its finiteness is used; the CI decides).
        ci: (lo, hi) 95 % interval. n: points behind the statistic. predicted_sign: +1 or −1.
        n_min: the minimum n for a verdict other than "inconclusive".

    Raises:
        ValueError: ``predicted_sign`` is not ±1 or ``n_min`` < 1.
    """
    if predicted_sign not in (1, -1):
        raise ValueError(f"predicted_sign must be +1 or -1, got {predicted_sign}")
    if n_min < 1:
        raise ValueError(f"n_min must be >= 1, got {n_min}")
    lo, hi = (float(c) for c in ci)
    if n < n_min or not all(math.isfinite(v) for v in (estimate, lo, hi)):
        return "inconclusive"
    if lo > 0 or hi < 0:
        return "supported" if (lo > 0) == (predicted_sign > 0) else "contradicted"
    return "inconclusive"


def _make(h: str, statistic: str, sign: int, est: float, ci, p: float, n: int, note: str = "") -> Verdict:
    lo, hi = (float(c) for c in ci)
    return Verdict(h, statistic, "positive" if sign > 0 else "negative", float(est), lo, hi, float(p), int(n),
                   N_MIN[h], verdict(est, (lo, hi), n, sign, N_MIN[h]), note)


def _fixed_effect(x: np.ndarray, y: np.ndarray, groups: np.ndarray, n_boot: int,
                  n_perm: int, seed: int) -> tuple[float, tuple[float, float], float, int]:
    c = within_group_correlation(x, y, groups, n_boot=n_boot, n_perm=n_perm, seed=seed, per_group=False)
    return c["fe_r"], c["fe_ci"], c["fe_p_perm"], c["n"]


def h1_suited_mmd(points: pd.DataFrame, n_boot: int = 2000, n_perm: int = 2000, seed: int = 0) -> Verdict:
    """H1: within-model correlation of objective suitability (1 / 0) with MMD² (model fixed effect)."""
    suited = (points["restoration"].astype(bool) == points["reconstruction"].astype(bool)).to_numpy(float)
    est, ci, p, n = _fixed_effect(suited, points["mmd2"].to_numpy(float), points["model"].to_numpy(),
                                  n_boot, n_perm, seed)
    return _make("H1", "r(task suits objective, MMD²), model fixed effect", -1, est, ci, p, n)


def h2_mmd_rpg(points: pd.DataFrame, n_boot: int = 2000, n_perm: int = 2000, seed: int = 0) -> Verdict:
    """H2: Pearson r of MMD² and RPG, model fixed effect (values z-scored within each model)."""
    est, ci, p, n = _fixed_effect(points["mmd2"].to_numpy(float), points["rpg"].to_numpy(float),
                                  points["model"].to_numpy(), n_boot, n_perm, seed)
    return _make("H2", "r(MMD², RPG), model fixed effect", -1, est, ci, p, n)


def h3_mmd_convergence(points: pd.DataFrame, n_boot: int = 2000, n_perm: int = 2000, seed: int = 0) -> Verdict:
    """H3: Pearson r of MMD² and the convergence ratio (pretrained / scratch epochs), model fixed effect."""
    est, ci, p, n = _fixed_effect(points["mmd2"].to_numpy(float), points["epochs_ratio"].to_numpy(float),
                                  points["model"].to_numpy(), n_boot, n_perm, seed)
    return _make("H3", "r(MMD², epochs-to-90 % ratio), model fixed effect", 1, est, ci, p, n)


def _interaction(rpg: np.ndarray, restoration: np.ndarray, reconstruction: np.ndarray) -> float:
    def gap(family: np.ndarray) -> float:
        a, b = rpg[family & restoration], rpg[family & ~restoration]
        return float(a.mean() - b.mean()) if a.size and b.size else _NAN
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
    ci = tuple(np.quantile(reps, [0.025, 0.975])) if reps.size else (_NAN, _NAN)
    obs = stat(np.arange(n))
    if null is None or not n_perm or not math.isfinite(obs):
        return obs, ci, _NAN, reps
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
        return _make("H4", "RPG interaction (restoration − semantic) × (reconstruction − contrastive)", 1,
                     _NAN, (_NAN, _NAN), _NAN, n, "needs all four objective × task-family cells")
    models = df["model"].to_numpy()

    def null(rng: np.random.Generator) -> float:
        perm = rest.copy()
        for mdl in np.unique(models):
            idx = np.flatnonzero(models == mdl)
            perm[idx] = rng.permutation(perm[idx])
        return _interaction(rpg, perm, recon)

    est, ci, p, _ = _boot_perm(lambda i: _interaction(rpg[i], rest[i], recon[i]), rest * 2 + recon, n, n_boot, seed,
                            null, n_perm)
    return _make("H4", "RPG interaction (restoration − semantic) × (reconstruction − contrastive), %", 1,
                 est, ci, p, n)


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
        return _make("H5", "r(LogME, RPG) − (−r(MMD², RPG)), target type fixed effect", 1, _NAN, (_NAN, _NAN),
                     _NAN, n)
    codes = np.unique(groups, return_inverse=True)[1]
    est, ci, _, reps = _boot_perm(stat, codes, n, n_boot, seed, None, 0)
    p = float(min(1.0, 2 * min((reps <= 0).mean(), (reps >= 0).mean()))) if reps.size else _NAN
    return _make("H5", "r(LogME, RPG) − (−r(MMD², RPG)), target type fixed effect", 1, est, ci, p, n,
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
                - np.mean([cell[(m, o)] for m in other for o in (True, False)])) if recon_model and other else _NAN
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
    arch = float(np.nanmean(eff["architecture_effect"])) if len(eff) else _NAN
    note = f"architecture effect (reconstruction-native backbone − other, both objectives): {arch:+.2f} %"
    if len(v) == 0:
        return _make("H6", "RPG suited − unsuited objective, same backbone (2×2 control), %", 1, _NAN,
                     (_NAN, _NAN), _NAN, 0, "no complete 2×2 block")

    def null(rng: np.random.Generator) -> float:
        return float(np.mean(v * rng.choice([-1.0, 1.0], v.size)))

    est, ci, p, _ = _boot_perm(lambda i: float(np.mean(v[i])), np.zeros(v.size, int), v.size, n_boot, seed, null,
                            n_perm)
    return _make("H6", "RPG suited − unsuited objective, same backbone (2×2 control), %", 1, est, ci, p, n, note)


def all_verdicts(points: pd.DataFrame, control: pd.DataFrame | None = None, n_boot: int = 2000,
                 n_perm: int = 2000, seed: int = 0) -> list[Verdict]:
    """H1–H6 in order (H6 inconclusive with n = 0 when ``control`` is None or empty)."""
    ctl = control if control is not None else pd.DataFrame(columns=["task", "model", "reconstruction", "rpg",
                                                                     "restoration", "objective_kind"])
    return [h1_suited_mmd(points, n_boot, n_perm, seed), h2_mmd_rpg(points, n_boot, n_perm, seed),
            h3_mmd_convergence(points, n_boot, n_perm, seed), h4_interaction(points, n_boot, n_perm, seed),
            h5_prehoc_vs_posthoc(points, n_boot, seed), h6_objective_effect(ctl, n_boot, n_perm, seed)]


def _fmt(x: float, digits: int = 2) -> str:
    return f"{x:+.{digits}f}" if math.isfinite(x) else "—"


def verdict_table(verdicts: list[Verdict], compact: bool = False) -> pd.DataFrame:
    """The verdicts as the book shows them: text cells, one row per hypothesis, "—" for an undefined number
    with the reason in the ``n`` cell (below the minimum) or the ``note`` column.

    Args:
        verdicts: :func:`all_verdicts`. compact: only claim, verdict, estimate, 95 % CI, p and n (the intro's
            table; default False: every column).

    Returns:
        DataFrame indexed by hypothesis with columns claim, verdict, estimate, 95 % CI, p, n (minimum) and,
        unless ``compact``, statistic, predicted sign, note.
    """
    rows = []
    for v in verdicts:
        small = v.n < v.n_min
        ci = f"[{_fmt(v.ci_lo)}, {_fmt(v.ci_hi)}]" if math.isfinite(v.ci_lo) and math.isfinite(v.ci_hi) else "—"
        note = v.note or ("" if math.isfinite(v.estimate) else "undefined: too few usable points")
        rows.append({"hypothesis": v.hypothesis, "claim": CLAIMS.get(v.hypothesis, ""), "verdict": v.verdict,
                     "estimate": _fmt(v.estimate), "95 % CI": ci, "p": f"{v.p:.3f}" if math.isfinite(v.p) else "—",
                     "n (minimum)": f"{v.n} ({v.n_min})" + (": too few for a verdict" if small else ""),
                     "statistic": v.statistic, "predicted sign": v.predicted, "note": note})
    table = pd.DataFrame(rows).set_index("hypothesis")
    return table.drop(columns=["statistic", "predicted sign", "note"]) if compact else table
