"""Can the design see transfer? The encoder controls' paired gains, read first (STUDY §5.1 "Controls").

For every (task, model) and objective kind, the paired difference pretrained − scratch on the primary metric
(signed: positive = the encoder helped; the pair's seeds are the replicates, test cases are not pooled across
seeds), a one-sided one-sample t-test over seeds for a gain (every control asks one directional question: did
the encoder help?) and its Holm adjustment across the (task, model) points of the same kind. A gain is **detected**
where the Holm-adjusted p ≤ α (a negative mean has p ≥ 0.5 and is never detected). With 3 seeds and Holm over 10
points the first rejection needs t ≥ 9.92 (α/10 one-sided, 2 df); the power of this test is
:mod:`transferlimits.metrics.control_power` (80 % at a gain of 7.3 seed-SDs; with 5 seeds 2.6). The design passes
its check when
the positive control's gain is detected on most tasks and the negative controls' on at most one point in ten
(issue "An experiment that can see the encoder"); every verdict is only as strong as this check. Beside each point
the median encoder share of its pretrained run over seeds (``encoder_share``; absent in schema-2 files).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from transferlimits.study.pair_summary import paired_gain, seed_scores

__all__ = ["ALPHA", "NEGATIVE", "POSITIVE", "control_table", "holm", "design_check", "enough_tasks"]

ALPHA = 0.05
NEGATIVE = ("random", "transfusion")
POSITIVE = ("positive",)


def holm(p: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (NaN stays NaN and is not counted)."""
    p = np.asarray(p, float)
    ok = np.flatnonzero(np.isfinite(p))
    out = np.full(p.shape, np.nan)
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        out[i] = running
    return out.tolist()


def _share(m: dict) -> float:
    v = (m.get("encoder_share") or {}).get("pretrained")
    return math.nan if v is None else float(v)


def control_table(points: Sequence[dict], alpha: float = ALPHA) -> pd.DataFrame:
    """One row per (task, model, objective kind): ``n`` seeds, ``mean`` / ``sd`` paired difference, 95 % t-interval
    (``ci_low``, ``ci_high``), ``p`` (one-sided one-sample t over seeds: the
    probability of a mean gain this large with no gain), ``p_holm`` (across the (task, model)
    points of that kind), ``detected``, ``encoder_share`` (median over seeds) and ``role``.

    Args:
        points: metrics dicts of any pairs (schema 2 or 3). alpha: the detection level (default 0.05).
    """
    rows = []
    by_pair: dict[tuple[str, str], list[dict]] = {}
    for m in points:
        by_pair.setdefault((m["task"], m["model"]), []).append(m)
    for (task, model), pts in sorted(by_pair.items()):
        table = seed_scores(pts)
        shares = {}
        for m in pts:
            shares.setdefault(m["objective"], []).append(_share(m))
        for g in paired_gain(table).itertuples():  # the pair page's paired difference and t-interval over seeds
            kind, n, mean, sd = g.objective, int(g.n), float(g.mean), float(g.sd)
            se = sd / math.sqrt(n) if n > 1 else math.nan
            p = float(stats.t.sf(mean / se, n - 1)) if n > 1 and se > 0 else math.nan  # one-sided: a gain
            rows.append({"task": task, "model": model, "kind": kind, "role": _role(kind), "n": n, "mean": mean,
                         "sd": sd, "ci_low": float(g.ci_low), "ci_high": float(g.ci_high), "p": p,
                         "encoder_share": float(np.nanmedian(shares[kind])) if np.isfinite(shares[kind]).any()
                         else math.nan})
    df = pd.DataFrame(rows, columns=["task", "model", "kind", "role", "n", "mean", "sd", "ci_low", "ci_high", "p",
                                     "encoder_share"])
    df["p_holm"] = np.nan
    for kind, grp in df.groupby("kind"):
        df.loc[grp.index, "p_holm"] = holm(grp["p"].to_numpy(float))
    df["detected"] = (df["p_holm"] <= alpha) & (df["mean"] > 0)  # p < 0.5 already implies mean > 0
    return df


def _role(kind: str) -> str:
    if kind in POSITIVE:
        return "positive control"
    if kind in NEGATIVE:
        return "negative control"
    return "objective"


def enough_tasks(n_ok: int, n_tasks: int) -> bool:
    """The issue's task count: ``n_ok`` of ``n_tasks`` is enough at ≥ 4 of 5 or more, else all but one (≥ 1)."""
    return n_ok >= (4 if n_tasks >= 5 else max(1, n_tasks - 1))


def design_check(table: pd.DataFrame) -> dict:
    """The check in numbers: per model, positive-control detections over tasks; negative-control detections over
    points; and whether the design passes (positive on ≥ 4 of 5 tasks, or all but one where fewer; negative on
    ≤ 1 in 10 points). Keys: ``positive`` {model: (detected, tasks)}, ``negative`` (detected, points), ``passes``
    (bool or None when the table holds no controls), ``text`` (one sentence)."""
    pos = table[table["role"] == "positive control"]
    neg = table[table["role"] == "negative control"]
    if pos.empty and neg.empty:
        return {"positive": {}, "negative": (0, 0), "passes": None,
                "text": "this run has no encoder controls: nothing shows that its design could detect transfer"}
    positive = {model: (int(g["detected"].sum()), int(len(g))) for model, g in pos.groupby("model")}
    negative = (int(neg["detected"].sum()), int(len(neg)))
    pos_ok = bool(positive) and all(enough_tasks(d, t) for d, t in positive.values())
    neg_ok = negative[1] > 0 and negative[0] <= negative[1] / 10
    parts = [f"{model}: positive control detected on {d} of {t} tasks" for model, (d, t) in positive.items()]
    parts.append(f"negative controls detected on {negative[0]} of {negative[1]} points")
    verdict = "passes" if pos_ok and neg_ok else "fails"
    return {"positive": positive, "negative": negative, "passes": pos_ok and neg_ok,
            "text": "; ".join(parts) + f" (one-sided t over seeds, Holm over points, α = {ALPHA}): the design "
                                       f"{verdict} its check"}
