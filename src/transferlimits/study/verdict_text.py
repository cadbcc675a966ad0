"""The verdicts as the book shows them: the verdict table (text cells, Markdown ``list-table``) and one
paragraph per hypothesis, generated from the numbers (see :mod:`transferlimits.study.verdicts`)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from transferlimits.study.verdict_rules import ALPHA, CLAIMS, DESIGN, Verdict, minimum_detectable_effect

__all__ = ["signed", "verdict_table", "verdict_paragraph", "verdict_table_markdown"]


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
    word = v.units_name or DESIGN.get(v.hypothesis, {}).get("units", "points")
    text = f"{v.units} {word if v.units != 1 else word.rstrip('s')}"
    if word == "tasks":
        text += f" ({v.n} cells)"
    elif v.n_groups > 1:
        text += f" in {v.n_groups} groups"
    return text + (f"; below {v.n_min}" if v.n < v.n_min else "")


def _test_name(v: Verdict) -> str:
    return v.test or DESIGN.get(v.hypothesis, {}).get("test", "test")


def _p_text(x: float) -> str:
    return f"{x:.3f}" if math.isfinite(x) else "—"


def verdict_table(verdicts: list[Verdict], compact: bool = False) -> pd.DataFrame:
    """The verdicts as the book shows them: text cells, one row per hypothesis, "—" for an undefined number.

    Args:
        verdicts: :func:`all_verdicts`. compact: only claim, verdict, estimate [95 % CI], p and n (default
            False: every column).

    Returns:
        DataFrame indexed by hypothesis with columns claim, predicted sign, statistic (unit), estimate [95 % CI],
        "test: p" (the named test, its raw p and the Holm-adjusted p the rule reads), n, MDE (80 % power,
        α = 0.05), verdict, note (``compact``: claim, verdict, estimate [95 % CI], p (raw, Holm), n). ``n`` is
        the count of independent units (points, encoders, or tasks for H6), with "below <minimum>"
        where it is under the hypothesis' minimum.
    """
    rows = []
    for v in verdicts:
        d = DESIGN.get(v.hypothesis, {"short": v.statistic, "unit": "", "test": ""})
        note = v.note or ("" if math.isfinite(v.estimate) else "undefined: too few usable points")
        p = f"{_p_text(v.p)} (Holm {_p_text(v.p_rule)})"
        rows.append({"hypothesis": v.hypothesis, "claim": CLAIMS.get(v.hypothesis, ""), "predicted sign": v.predicted,
                     "statistic (unit)": f"{d['short']} ({d['unit']})",
                     "estimate [95 % CI]": (f"{_fmt(v.estimate, _digits(v))} {_ci_text(v, _digits(v))}"
                                            if math.isfinite(v.estimate) else "— (undefined)"),
                     "test: p": f"{_test_name(v)}: p = {_p_text(v.p)}, Holm-adjusted p = {_p_text(v.p_rule)}",
                     "p": p, "n": _units_text(v),
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
        why = v.note or "too few usable points"
        return f"{head} The statistic is undefined here ({why}); verdict: **{v.verdict}**."
    digits = _digits(v)
    unit = "" if d["unit"] in ("r", "Δr") else f" {d['unit']}"
    same = (v.estimate > 0) == (v.predicted == "positive") and v.estimate != 0
    ci_ok = math.isfinite(v.ci_lo) and math.isfinite(v.ci_hi)
    excludes = ci_ok and (v.ci_lo > 0 or v.ci_hi < 0)
    parts = [head, f"Predicted: a {v.predicted} {d['short']}.",
             f"Estimate {signed(v.estimate, digits)}{unit}"
             + (f" (95 % CI {signed(v.ci_lo, digits)} to {signed(v.ci_hi, digits)})" if ci_ok else " (no CI)")
             + f" over {_units_text(v)}"
             + (f", {_test_name(v)} p = {v.p:.3f} (Holm-adjusted over H1–H6: {_p_text(v.p_rule)})."
                if math.isfinite(v.p) else ".")]
    if same:
        parts.append("The estimate has the predicted sign"
                     + (", and the CI excludes 0." if excludes else ", but the CI contains 0."))
    else:
        parts.append("The estimate is **opposite to the prediction**"
                     + (", and the CI excludes 0 on that side." if excludes else "; the CI contains 0."))
    if math.isfinite(v.p) and v.p <= ALPHA < v.p_rule:
        parts.append(f"The raw p is at most {ALPHA:g}, but not after Holm's adjustment over the six hypotheses, "
                     "which the rule reads.")
    if math.isfinite(v.p_rule) and v.p_rule <= ALPHA and not excludes:
        parts.append(f"The adjusted p is at most {ALPHA:g} while the CI ({v.ci_method or 'its interval'}) contains "
                     "0: the two disagree, and the rule needs both.")
    mde, mde_text = minimum_detectable_effect(v)
    if math.isfinite(mde):
        big = abs(v.estimate) >= mde
        parts.append(f"With this n the test detects with 80 % power only effects of {mde_text}; the estimate is "
                     + ("at least that large." if big else "smaller."))
    else:
        parts.append(f"Minimum detectable effect: {mde_text}.")
    if v.n < v.n_min:
        parts.append(f"n is below the minimum of {v.n_min} for a verdict.")
    if v.note:
        parts.append(f"Note: {v.note.rstrip('.')}.")
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
