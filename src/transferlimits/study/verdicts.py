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
from dataclasses import dataclass

import numpy as np
import pandas as pd

from transferlimits.metrics.correlation import within_group_correlation
from transferlimits.study import analysis as an

__all__ = ["VERDICT_RULE", "N_MIN", "VERDICTS", "CLAIMS", "DESIGN", "ALPHA", "POWER", "Verdict", "verdict",
           "h1_suited_mmd", "h2_mmd_rpg", "h3_mmd_convergence", "h4_interaction", "h5_prehoc_vs_posthoc",
           "h6_objective_effect", "all_verdicts", "study_verdicts", "verdict_table", "minimum_detectable_effect",
           "verdict_paragraph", "verdict_table_markdown", "signed"]

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
#: Significance level and power of the minimum detectable effect (:func:`minimum_detectable_effect`).
ALPHA, POWER = 0.05, 0.80
#: Per hypothesis: the statistic in a few words, its unit, the named test behind p, the independent unit,
#: and the methods chapter's label of its definition (``book/methods.md``).
DESIGN = {
    "H1": {"short": "fixed-effect r(task suits objective, MMD²)", "unit": "r", "kind": "correlation",
           "test": "permutation within model", "units": "points", "label": "eq-h1"},
    "H2": {"short": "fixed-effect r(MMD², RPG)", "unit": "r", "kind": "correlation",
           "test": "permutation within model", "units": "points", "label": "eq-fe-r"},
    "H3": {"short": "fixed-effect r(MMD², epochs-ratio)", "unit": "r", "kind": "correlation",
           "test": "permutation within model", "units": "points", "label": "eq-fe-r"},
    "H4": {"short": "RPG interaction: objective family × task family", "unit": "pp of RPG", "kind": "difference",
           "test": "permutation of task family within model", "units": "points", "label": "eq-h4"},
    "H5": {"short": "r(LogME, RPG) + r(MMD², RPG), target-type fixed effect", "unit": "Δr", "kind": "difference",
           "test": "bootstrap, two-sided", "units": "points", "label": "eq-h5"},
    "H6": {"short": "RPG suited − unsuited objective, same backbone", "unit": "pp of RPG", "kind": "sign-flip",
           "test": "sign flip over tasks", "units": "tasks", "label": "eq-h6"},
}


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
    n_groups: int = 1  # fixed-effect groups (models, or target types for H5) the statistic conditions on
    n_units: int = -1  # independent units of the test (points; tasks for H6); -1 = n

    @property
    def units(self) -> int:
        return self.n if self.n_units < 0 else self.n_units


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


def _make(h: str, statistic: str, sign: int, est: float, ci, p: float, n: int, note: str = "", n_groups: int = 1,
          n_units: int = -1) -> Verdict:
    lo, hi = (float(c) for c in ci)
    return Verdict(h, statistic, "positive" if sign > 0 else "negative", float(est), lo, hi, float(p), int(n),
                   N_MIN[h], verdict(est, (lo, hi), n, sign, N_MIN[h]), note, int(n_groups), int(n_units))


def _fixed_effect(x: np.ndarray, y: np.ndarray, groups: np.ndarray, n_boot: int,
                  n_perm: int, seed: int) -> tuple[float, tuple[float, float], float, int, int]:
    c = within_group_correlation(x, y, groups, n_boot=n_boot, n_perm=n_perm, seed=seed, per_group=False)
    return c["fe_r"], c["fe_ci"], c["fe_p_perm"], c["n"], c["n_groups"]


def h1_suited_mmd(points: pd.DataFrame, n_boot: int = 2000, n_perm: int = 2000, seed: int = 0) -> Verdict:
    """H1: within-model correlation of objective suitability (1 / 0) with MMD² (model fixed effect)."""
    suited = (points["restoration"].astype(bool) == points["reconstruction"].astype(bool)).to_numpy(float)
    est, ci, p, n, g = _fixed_effect(suited, points["mmd2"].to_numpy(float), points["model"].to_numpy(),
                                     n_boot, n_perm, seed)
    return _make("H1", "r(task suits objective, MMD²), model fixed effect", -1, est, ci, p, n, n_groups=g)


def h2_mmd_rpg(points: pd.DataFrame, n_boot: int = 2000, n_perm: int = 2000, seed: int = 0) -> Verdict:
    """H2: Pearson r of MMD² and RPG, model fixed effect (values z-scored within each model)."""
    est, ci, p, n, g = _fixed_effect(points["mmd2"].to_numpy(float), points["rpg"].to_numpy(float),
                                     points["model"].to_numpy(), n_boot, n_perm, seed)
    return _make("H2", "r(MMD², RPG), model fixed effect", -1, est, ci, p, n, n_groups=g)


def h3_mmd_convergence(points: pd.DataFrame, n_boot: int = 2000, n_perm: int = 2000, seed: int = 0) -> Verdict:
    """H3: Pearson r of MMD² and the convergence ratio (pretrained / scratch epochs), model fixed effect."""
    est, ci, p, n, g = _fixed_effect(points["mmd2"].to_numpy(float), points["epochs_ratio"].to_numpy(float),
                                     points["model"].to_numpy(), n_boot, n_perm, seed)
    return _make("H3", "r(MMD², epochs-to-90 % ratio), model fixed effect", 1, est, ci, p, n, n_groups=g)


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
                 "positive: the pre-hoc score predicts RPG better; CI containing 0: no detectable difference",
                 n_groups=len(np.unique(groups)))


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
                     (_NAN, _NAN), _NAN, 0, "no complete 2×2 block", n_units=0)

    def null(rng: np.random.Generator) -> float:
        return float(np.mean(v * rng.choice([-1.0, 1.0], v.size)))

    est, ci, p, _ = _boot_perm(lambda i: float(np.mean(v[i])), np.zeros(v.size, int), v.size, n_boot, seed, null,
                            n_perm)
    return _make("H6", "RPG suited − unsuited objective, same backbone (2×2 control), %", 1, est, ci, p, n, note,
                 n_units=len(v))


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


def _z(q: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(q))


def minimum_detectable_effect(v: Verdict, alpha: float = ALPHA, power: float = POWER) -> tuple[float, str]:
    """The smallest effect the hypothesis' test detects with ``power`` at two-sided ``alpha`` on its n.

    * correlations (H1–H3): |r| = tanh((z₁₋α/₂ + z_power) / √(n − g − 2)) by Fisher's z, n points and g fixed-
      effect groups (z-scoring within each group costs one degree of freedom per group beyond the first);
    * differences (H4, H5): (z₁₋α/₂ + z_power) × SE, SE = the bootstrap CI's width / (2 z₀.₉₇₅);
    * H6's sign-flip test over k tasks: its smallest attainable two-sided p is 2 / 2ᵏ; when that exceeds
      ``alpha`` no effect, however large, is detectable, and the text says so.

    Returns:
        ``(value, text)``: value NaN where undefined (text gives the reason).
    """
    kind, unit = DESIGN[v.hypothesis]["kind"], DESIGN[v.hypothesis]["unit"]
    k = _z(1 - alpha / 2) + _z(power)
    if kind == "correlation":
        dof = v.n - max(v.n_groups, 1) - 2
        if dof < 1:
            return _NAN, f"undefined (n = {v.n})"
        r = math.tanh(k / math.sqrt(dof))
        return r, f"|r| ≥ {r:.2f}"
    if kind == "sign-flip":
        tasks = v.units
        p_min = 2.0 / 2 ** tasks if tasks else _NAN
        if not math.isfinite(p_min) or p_min > alpha:
            return _NAN, (f"none: smallest attainable p = {p_min:.3f} with {tasks} tasks" if tasks else
                          "undefined (no complete 2×2 block)")
    if not (math.isfinite(v.ci_lo) and math.isfinite(v.ci_hi)):
        return _NAN, "undefined (no CI)"
    mde = k * (v.ci_hi - v.ci_lo) / (2 * _z(0.975))
    return mde, f"|Δr| ≥ {mde:.2f}" if unit == "Δr" else f"≥ {mde:.1f} {unit}"


def signed(x: float, digits: int = 2) -> str:
    """``x`` with an explicit sign and a true minus sign (U+2212); "—" when not finite."""
    return f"{x:+.{digits}f}".replace("-", "−") if math.isfinite(x) else "—"


def _fmt(x: float, digits: int = 2) -> str:
    return signed(x, digits)


def _ci_text(v: Verdict, digits: int = 2) -> str:
    if not (math.isfinite(v.ci_lo) and math.isfinite(v.ci_hi)):
        return "—"
    return f"[{signed(v.ci_lo, digits)}, {signed(v.ci_hi, digits)}]"


def _digits(v: Verdict) -> int:
    return 1 if DESIGN.get(v.hypothesis, {}).get("unit") == "pp of RPG" else 2


def _units_text(v: Verdict) -> str:
    word = DESIGN.get(v.hypothesis, {}).get("units", "points")
    text = f"{v.units} {word if v.units != 1 else word.rstrip('s')}"
    if word == "tasks":
        text += f" ({v.n} cells)"
    return text + (f"; below {v.n_min}" if v.n < v.n_min else "")


def verdict_table(verdicts: list[Verdict], compact: bool = False) -> pd.DataFrame:
    """The verdicts as the book shows them: text cells, one row per hypothesis, "—" for an undefined number.

    Args:
        verdicts: :func:`all_verdicts`. compact: only claim, verdict, estimate [95 % CI], p and n (default
            False: every column).

    Returns:
        DataFrame indexed by hypothesis with columns claim, predicted sign, statistic (unit), estimate [95 % CI],
        "test: p" (the named test and its p), n, MDE (80 % power, α = 0.05), verdict, note (``compact``:
        claim, verdict, estimate [95 % CI], p, n). ``n`` is the count of independent units (points, or tasks for H6), with "below <minimum>"
        where it is under the hypothesis' minimum.
    """
    rows = []
    for v in verdicts:
        d = DESIGN.get(v.hypothesis, {"short": v.statistic, "unit": "", "test": ""})
        note = v.note or ("" if math.isfinite(v.estimate) else "undefined: too few usable points")
        p = f"{v.p:.3f}" if math.isfinite(v.p) else "—"
        rows.append({"hypothesis": v.hypothesis, "claim": CLAIMS.get(v.hypothesis, ""), "predicted sign": v.predicted,
                     "statistic (unit)": f"{d['short']} ({d['unit']})",
                     "estimate [95 % CI]": (f"{_fmt(v.estimate, _digits(v))} {_ci_text(v, _digits(v))}"
                                            if math.isfinite(v.estimate) else "— (undefined)"),
                     "test: p": f"{d['test']}: p = {p}", "p": p, "n": _units_text(v),
                     "MDE": minimum_detectable_effect(v)[1], "verdict": v.verdict, "note": note})
    table = pd.DataFrame(rows).set_index("hypothesis")
    if compact:
        return table[["claim", "verdict", "estimate [95 % CI]", "p", "n"]]
    return table.drop(columns=["p"])


def verdict_paragraph(v: Verdict) -> str:
    """One paragraph (Markdown) saying what the numbers of ``v`` show, generated from them: the estimate
    against the prediction (an effect opposite to the prediction is said to be so), the CI, the test's p,
    n, the minimum detectable effect, and the verdict the rule gives."""
    d = DESIGN.get(v.hypothesis, {"short": v.statistic, "unit": "", "test": "test"})
    head = f"**{v.hypothesis}** ({CLAIMS.get(v.hypothesis, v.statistic)})."
    if not math.isfinite(v.estimate):
        return f"{head} The statistic is undefined here ({v.note or 'too few usable points'}); verdict: {v.verdict}."
    digits = _digits(v)
    unit = "" if d["unit"] in ("r", "Δr") else f" {d['unit']}"
    same = (v.estimate > 0) == (v.predicted == "positive") and v.estimate != 0
    ci_ok = math.isfinite(v.ci_lo) and math.isfinite(v.ci_hi)
    excludes = ci_ok and (v.ci_lo > 0 or v.ci_hi < 0)
    parts = [head, f"Predicted: a {v.predicted} {d['short']}.",
             f"Estimate {signed(v.estimate, digits)}{unit}"
             + (f" (95 % CI {signed(v.ci_lo, digits)} to {signed(v.ci_hi, digits)})" if ci_ok else " (no CI)")
             + f" over {_units_text(v)}"
             + (f", {d['test']} p = {v.p:.3f}." if math.isfinite(v.p) else ".")]
    if same:
        parts.append("The estimate has the predicted sign"
                     + (", and the CI excludes 0." if excludes else ", but the CI contains 0."))
    else:
        parts.append("The estimate is **opposite to the prediction**"
                     + (", and the CI excludes 0 on that side." if excludes else "; the CI contains 0."))
    if math.isfinite(v.p) and v.p < ALPHA and not excludes:
        parts.append(f"The test's p is below {ALPHA:g} while the bootstrap CI contains 0: with this few units "
                     "the two disagree, and the rule reads the CI.")
    mde, mde_text = minimum_detectable_effect(v)
    if math.isfinite(mde):
        big = abs(v.estimate) >= mde
        parts.append(f"With this n the test detects with 80 % power only effects of {mde_text}; the estimate is "
                     + ("at least that large." if big else "smaller."))
    else:
        parts.append(f"Minimum detectable effect: {mde_text}.")
    if v.n < v.n_min:
        parts.append(f"n is below the minimum of {v.n_min} for a verdict.")
    parts.append(f"Verdict by the rule: **{v.verdict}**.")
    return " ".join(parts)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def verdict_table_markdown(verdicts: list[Verdict], caption: str, name: str = "", compact: bool = False,
                           ref: Callable[[str], str] | None = None) -> str:
    """The verdict table as a MyST ``list-table`` in a colon fence (its caption may hold roles), numbered and
    captioned by Sphinx, class ``verdict-table``.

    Args:
        verdicts: :func:`all_verdicts`. caption: the table's caption. name: its label (``:name:``).
        compact: the intro's columns only. ref: maps a hypothesis' methods label to Markdown (default: a
            ``{ref}`` role to it), shown under the statistic.
    """
    table = verdict_table(verdicts, compact)
    cols = [c for c in table.columns if c != "note"]
    ref = ref or (lambda label: f"{{eq}}`{label}`")
    lines = [f":::{{list-table}} {caption}", ":header-rows: 1", ":class: verdict-table"]
    if name:
        lines.append(f":name: {name}")
    lines += ["", f"* - {cols[0]}"] + [f"  - {c}" for c in cols[1:]]
    for h, row in table.iterrows():
        lines.append(f"* - **{h}** {_cell(row[cols[0]])}")
        for c in cols[1:]:
            text = _cell(row[c])
            if c == "statistic (unit)" and h in DESIGN:
                text += f", eq. {ref(DESIGN[h]['label'])}"
            if c == "verdict":
                text = f"**{text}**"
            lines.append(f"  - {text}")
    lines.append(":::")
    return "\n".join(lines)
