"""The verdict rule of H1–H6 and what it is applied to: claims, minimum n, design, :class:`Verdict`, power.

:func:`verdict` applies :data:`VERDICT_RULE`; :func:`make_verdict` turns one statistic (:class:`Estimate`)
into a :class:`Verdict`; :func:`holm_adjust` adjusts the p of H1–H6 together (Holm) and re-applies the rule;
:func:`minimum_detectable_effect` gives the smallest effect its test detects. The
statistics themselves are in :mod:`transferlimits.study.verdict_stats`, their tables and paragraphs in
:mod:`transferlimits.study.verdict_text` (all re-exported by :mod:`transferlimits.study.verdicts`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from scipy import stats as sps

from transferlimits.metrics.intervals import holm
from transferlimits.metrics.mde import fisher_mde
from transferlimits.metrics.power import signflip_min_p

__all__ = ["VERDICT_RULE", "N_MIN", "VERDICTS", "CLAIMS", "DESIGN", "ALPHA", "POWER", "Verdict", "Estimate",
           "verdict", "make_verdict", "undefined", "holm_adjust", "gate_on_design", "minimum_detectable_effect", "NAN"]

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
VERDICT_RULE = ("A hypothesis is **supported** when its Holm-adjusted p (Holm over the six tests H1–H6; an "
                "undefined p counts as 1) is at most 0.05, its 95 % CI excludes 0 on the side the hypothesis "
                "predicts, and n is at least the stated minimum; **contradicted** when the adjusted p is at most "
                "0.05 and the CI excludes 0 on the opposite side with the same n; **inconclusive** otherwise (adjusted "
                "p above 0.05, the CI contains 0 or is undefined, or n is below the minimum). No CI on fewer than "
                "10 independent units is a percentile bootstrap (correlations: Fisher z; differences: t intervals). "
                "A verdict is only as strong as the design check (the positive control's gain detected on at least "
                "4 of 5 tasks per model, the negative controls' on at most one point in ten): where the check fails, "
                "or the run has no encoder controls, every verdict is **inconclusive**, and its note gives the word "
                "the statistics alone would have given. Minimum n: "
                + ", ".join(f"{h} {n}" for h, n in N_MIN.items()) + ".")
#: Not a number: an undefined statistic, CI bound or p.
NAN = float("nan")
#: Significance level and power of the minimum detectable effect (:func:`minimum_detectable_effect`).
ALPHA, POWER = 0.05, 0.80
#: Per hypothesis: the statistic in a few words, its unit, the named test behind p, the independent unit,
#: and the methods chapter's label of its definition (``book/methods.md``).
DESIGN = {
    "H1": {"short": "fixed-effect r(task suits objective, MMD²)", "unit": "r", "kind": "correlation",
           "test": "permutation within model", "units": "points", "label": "eq-h1"},
    "H2": {"short": "fixed-effect r(alignment, RPG)", "unit": "r", "kind": "correlation",
           "test": "permutation within task × model", "units": "encoders", "label": "eq-fe-r"},
    "H3": {"short": "fixed-effect r(alignment, epochs-ratio)", "unit": "r", "kind": "correlation",
           "test": "permutation within task × model", "units": "encoders", "label": "eq-fe-r"},
    "H4": {"short": "RPG interaction: objective family × task family", "unit": "pp of RPG", "kind": "difference",
           "test": "permutation of task family within model", "units": "points", "label": "eq-h4"},
    "H5": {"short": "r(LogME, RPG) + r(MMD², RPG), target-type fixed effect", "unit": "Δr", "kind": "difference",
           "test": "Williams' t, two-sided", "units": "points", "label": "eq-h5"},
    "H6": {"short": "RPG suited − unsuited objective, same backbone", "unit": "pp of RPG", "kind": "sign-flip",
           "test": "exact sign flip over tasks", "units": "tasks", "label": "eq-h6"},
}


@dataclass(frozen=True)
class Verdict:
    """One hypothesis' test: what was computed, on how many units, raw and Holm-adjusted p, and the verdict word.

    ``p`` is the test's raw p; ``p_adjusted`` the Holm-adjusted one the rule reads (a verdict made alone, as by
    the ``h*`` functions, is a family of one: ``p_adjusted`` = ``p``; :func:`holm_adjust` sets it over H1–H6).
    ``test`` / ``units_name`` / ``ci_method`` override :data:`DESIGN`'s words where the statistic was computed
    otherwise (empty: DESIGN's). ``reliability``: the factor rel_x·rel_y by which seed noise attenuates a
    correlation of seed-averaged values (1: not modelled).
    """

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
    n_groups: int = 1  # fixed-effect groups (models, task × model, or target types for H5) the statistic conditions on
    n_units: int = -1  # independent units of the test (points or encoders; tasks for H6); -1 = n
    p_adjusted: float = NAN
    test: str = ""
    units_name: str = ""
    ci_method: str = ""
    reliability: float = 1.0

    @property
    def units(self) -> int:
        return self.n if self.n_units < 0 else self.n_units

    @property
    def p_rule(self) -> float:
        """The p the rule reads: ``p_adjusted`` when set, else the raw ``p`` (a family of one)."""
        return self.p_adjusted if math.isfinite(self.p_adjusted) else self.p


def verdict(estimate: float, ci: tuple[float, float], n: int, predicted_sign: int, n_min: int,
            p_adjusted: float, alpha: float = ALPHA) -> str:
    """The verdict word by :data:`VERDICT_RULE`.

    Args:
        estimate: the statistic (only its finiteness is used; the CI gives the side).
        ci: (lo, hi) 95 % interval. n: units behind the statistic. predicted_sign: +1 or −1.
        n_min: the minimum n for a verdict other than "inconclusive".
        p_adjusted: the Holm-adjusted p (NaN: undefined → "inconclusive"). alpha: the level (default 0.05).

    Raises:
        ValueError: ``predicted_sign`` is not ±1, ``n_min`` < 1 or ``alpha`` not in (0, 1).
    """
    if predicted_sign not in (1, -1):
        raise ValueError(f"predicted_sign must be +1 or -1, got {predicted_sign}")
    if n_min < 1:
        raise ValueError(f"n_min must be >= 1, got {n_min}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    lo, hi = (float(c) for c in ci)
    if n < n_min or not all(math.isfinite(v) for v in (estimate, lo, hi, p_adjusted)) or p_adjusted > alpha:
        return "inconclusive"
    if lo > 0 or hi < 0:
        return "supported" if (lo > 0) == (predicted_sign > 0) else "contradicted"
    return "inconclusive"


@dataclass(frozen=True)
class Estimate:
    """One computed statistic: the estimate, its 95 % CI, p, n and what the test conditions on.

    ``n_groups``: fixed-effect groups; ``n_units``: independent units of the test (points; tasks for H6), -1 = n;
    ``test``, ``units_name``, ``ci_method``, ``reliability``: as in :class:`Verdict`.
    """

    estimate: float
    ci: tuple[float, float]
    p: float
    n: int
    n_groups: int = 1
    n_units: int = -1
    test: str = ""
    units_name: str = ""
    ci_method: str = ""
    reliability: float = 1.0


def undefined(n: int, n_units: int = -1) -> Estimate:
    """An :class:`Estimate` whose statistic, CI and p are NaN, on ``n`` points (``n_units`` units)."""
    return Estimate(NAN, (NAN, NAN), NAN, n, n_units=n_units)


def make_verdict(h: str, statistic: str, sign: int, stat: Estimate, note: str = "") -> Verdict:
    """The :class:`Verdict` of hypothesis ``h`` on ``stat`` by :func:`verdict` and :data:`N_MIN`, as a family of
    one (``p_adjusted`` = ``p``; :func:`holm_adjust` adjusts over H1–H6).

    Args:
        h: hypothesis ("H1".."H6"). statistic: what was computed, in words. sign: the predicted sign (+1 / −1).
        stat: the statistic with its CI, p and n. note: shown beside the verdict.

    Raises:
        KeyError: ``h`` is not a hypothesis of :data:`N_MIN`.
        ValueError: ``sign`` is not ±1 (from :func:`verdict`).
    """
    est, n, p = float(stat.estimate), int(stat.n), float(stat.p)
    lo, hi = (float(c) for c in stat.ci)
    return Verdict(h, statistic, "positive" if sign > 0 else "negative", est, lo, hi, p, n, N_MIN[h],
                   verdict(est, (lo, hi), n, sign, N_MIN[h], p), note, int(stat.n_groups), int(stat.n_units), p,
                   stat.test, stat.units_name, stat.ci_method, float(stat.reliability))


def holm_adjust(verdicts: Sequence[Verdict], alpha: float = ALPHA) -> list[Verdict]:
    """The verdicts with Holm-adjusted p over the whole family (:func:`~transferlimits.metrics.intervals.holm`;
    an undefined p counts as 1) and the verdict word re-applied to the adjusted p."""
    adjusted = holm([v.p for v in verdicts])
    out = []
    for v, pa in zip(verdicts, adjusted):
        word = verdict(v.estimate, (v.ci_lo, v.ci_hi), v.n, 1 if v.predicted == "positive" else -1, v.n_min, pa, alpha)
        out.append(replace(v, p_adjusted=pa, verdict=word))
    return out


def gate_on_design(verdicts: Sequence[Verdict], passes: bool | None) -> list[Verdict]:
    """The verdicts as the design check allows them (:data:`VERDICT_RULE`'s last clause).

    Args:
        verdicts: H1–H6 after :func:`holm_adjust`.
        passes: the design check's outcome (``study.control_check.design_check``): True keeps every verdict;
            False (a control missed) or None (no encoder controls in the run) turns "supported" and "contradicted"
            into "inconclusive", with a note that names the word the statistics alone give.
    """
    if passes is True:
        return list(verdicts)
    reason = "the design failed its check" if passes is False else "the run has no encoder controls to check its design"
    out = []
    for v in verdicts:
        if v.verdict == "inconclusive":
            out.append(v)
            continue
        note = f"{v.note} " if v.note else ""
        out.append(replace(v, verdict="inconclusive",
                           note=f"{note}By the statistics alone: {v.verdict}; inconclusive because {reason}."))
    return out


def minimum_detectable_effect(v: Verdict, alpha: float = ALPHA, power: float = POWER) -> tuple[float, str]:
    """The smallest effect the hypothesis' test detects with ``power`` at two-sided ``alpha`` on its n.

    * correlations (H1–H3): true |ρ| = tanh((z₁₋α/₂ + z_power) / √(n − g − 2)) / √reliability by Fisher's z
      (:func:`transferlimits.metrics.mde.fisher_mde`), n units and g fixed-effect groups; ``v.reliability`` < 1
      when the seed noise of the seed-averaged values was measured (attenuation);
    * differences (H4, H5): (z₁₋α/₂ + z_power) × SE, SE = the CI's width / (2 z₀.₉₇₅);
    * H6's sign-flip test over k tasks: its smallest attainable two-sided p is 2 / 2ᵏ; when that exceeds
      ``alpha`` no effect, however large, is detectable, and the text says so.

    Returns:
        ``(value, text)``: value NaN where undefined (text gives the reason).
    """
    kind, unit = DESIGN[v.hypothesis]["kind"], DESIGN[v.hypothesis]["unit"]
    if kind == "correlation":
        rel = v.reliability if math.isfinite(v.reliability) and v.reliability > 0 else 1.0
        r = fisher_mde(v.n, v.n_groups, alpha, power, rel, 1.0)
        if not math.isfinite(r):
            return NAN, (f"undefined (n = {v.n})" if v.n - max(v.n_groups, 1) - 2 < 1 else
                         f"none: seed noise (reliability {rel:.2f}) hides even |ρ| = 1")
        return r, f"|r| ≥ {r:.2f}" + (f" (true r; seed-noise reliability {rel:.2f})" if rel < 1 else "")
    if kind == "sign-flip":
        tasks = v.units
        p_min = signflip_min_p(tasks) if tasks else NAN
        if not math.isfinite(p_min) or p_min > alpha:
            return NAN, (f"none: smallest attainable p = {p_min:.3f} with {tasks} tasks" if tasks else
                          "undefined (no complete 2×2 block)")
    if not (math.isfinite(v.ci_lo) and math.isfinite(v.ci_hi)):
        return NAN, "undefined (no CI)"
    z = float(sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power))
    mde = z * (v.ci_hi - v.ci_lo) / (2 * float(sps.norm.ppf(0.975)))
    return mde, f"|Δr| ≥ {mde:.2f}" if unit == "Δr" else f"≥ {mde:.1f} {unit}"
