"""Paired pretrained − scratch differences over seeds and test cases (metrics/paired.py, study/pair_cases.py).

Facts: the AUROC matches scikit-learn's; DeLong's SE matches a loop-by-loop computation of its U-statistic
variance; the t-interval matches scipy's; a paired draw of a constant per-case shift has no spread; on the
committed cpu points the per-case records reproduce each seed's test score. Coverage: in a small simulation of
clustered data the seed t-interval covers near 95 % where an interval that ignores the seeds does not; DeLong
covers near 95 % under the null; the two-stage bootstrap (slow) is reported beside them.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import roc_auc_score

from transferlimits.figures.pair import plot_seed_scores, seed_series
from transferlimits.metrics.paired import auroc, cluster_bootstrap, delong_paired, mean_difference, seed_t_interval
from transferlimits.study import pair_summary
from transferlimits.study.pair_cases import case_arrays, case_differences, linear_reference

matplotlib.use("Agg")
RESULTS = Path(__file__).resolve().parents[1] / "book" / "generated" / "cpu" / "results"


def _points(pair: str) -> list[dict]:
    files = sorted((RESULTS / "runs").glob(f"{pair}__seed*/metrics.json"))
    if not files:
        pytest.skip("no committed cpu run")
    return [json.loads(f.read_text()) for f in files]


def test_auroc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    y = rng.random(80) < 0.4
    s = np.round(rng.normal(y * 0.8, 1.0), 1)  # rounded: ties
    assert auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert math.isnan(auroc(np.ones(5, bool), np.arange(5)))
    with pytest.raises(ValueError, match="differ in length"):
        auroc(y, s[:-1])


def _delong_loops(y, a, b) -> float:
    """DeLong's variance of AUC(a) − AUC(b) written out with loops (an independent implementation)."""
    pos, neg = [i for i in range(len(y)) if y[i]], [i for i in range(len(y)) if not y[i]]

    def psi(x, z):
        return 1.0 if x > z else 0.5 if x == z else 0.0

    def comps(s):
        v10 = [sum(psi(s[i], s[j]) for j in neg) / len(neg) for i in pos]
        v01 = [sum(psi(s[i], s[j]) for i in pos) / len(pos) for j in neg]
        return v10, v01

    (a10, a01), (b10, b01) = comps(a), comps(b)
    d10 = [x - z for x, z in zip(a10, b10)]
    d01 = [x - z for x, z in zip(a01, b01)]
    return sps.tvar(d10) / len(pos) + sps.tvar(d01) / len(neg)  # var of the difference = S_aa + S_bb − 2 S_ab


def test_delong_se_matches_a_loop_implementation():
    rng = np.random.default_rng(1)
    y = rng.random(60) < 0.5
    a = rng.normal(y * 1.0, 1.0)
    b = a + rng.normal(0, 0.7, 60)
    out = delong_paired(y, a, b)
    assert out["se"] == pytest.approx(math.sqrt(_delong_loops(y, a, b)), rel=1e-10)
    assert out["diff"] == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b), abs=1e-12)
    same = delong_paired(y, a, a)
    assert same["diff"] == 0 and same["se"] == 0 and same["p"] == 1.0


def test_seed_t_interval_matches_scipy():
    v = [0.3, -0.1, 0.25, 0.05]
    ci = sps.ttest_1samp(v, 0).confidence_interval(0.95)
    out = seed_t_interval(v + [float("nan")])
    assert (out["n_seeds"], out["ci_low"], out["ci_high"]) == (4, pytest.approx(ci.low), pytest.approx(ci.high))
    assert math.isnan(seed_t_interval([0.2])["ci_low"])


def test_cluster_bootstrap_keeps_the_pairing():
    """b = a − 0.1 case by case: every paired draw gives 0.1 exactly, whatever the cases' spread."""
    rng = np.random.default_rng(2)
    clusters = [(a, a - 0.1) for a in (rng.normal(0, 5, 40) for _ in range(3))]
    out = cluster_bootstrap(clusters, mean_difference, n_boot=200)
    assert out["ci_low"] == pytest.approx(0.1) and out["ci_high"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="n_boot"):
        cluster_bootstrap(clusters, mean_difference, n_boot=10)


def _clustered(rng, seeds, cases, mu=0.2, seed_sd=0.3, case_sd=1.0):
    return [mu + rng.normal(0, seed_sd) + rng.normal(0, case_sd, cases) for _ in range(seeds)]


def test_seed_t_interval_covers_near_nominal_where_pooling_cases_does_not():
    rng = np.random.default_rng(3)
    hit_t = hit_naive = 0
    reps = 1000
    for _ in range(reps):
        d = _clustered(rng, seeds=5, cases=50)
        t = seed_t_interval([x.mean() for x in d])
        hit_t += t["ci_low"] <= 0.2 <= t["ci_high"]
        pooled = np.concatenate(d)  # ignores the clustering: cases as if independent
        half = 1.96 * pooled.std(ddof=1) / math.sqrt(pooled.size)
        hit_naive += abs(pooled.mean() - 0.2) <= half
    assert 0.93 <= hit_t / reps <= 0.97, hit_t / reps
    assert hit_naive / reps < 0.8, hit_naive / reps  # the simulation can tell a wrong interval


def test_delong_covers_near_nominal_under_the_null():
    rng = np.random.default_rng(4)
    reps, hits = 400, 0
    for _ in range(reps):
        y = rng.random(100) < 0.4
        common = rng.normal(y * 0.8, 1.0)
        a, b = common + rng.normal(0, 0.6, 100), common + rng.normal(0, 0.6, 100)  # exchangeable: true diff 0
        out = delong_paired(y, a, b)
        hits += out["ci_low"] <= 0 <= out["ci_high"]
    assert 0.92 <= hits / reps <= 0.98, hits / reps


@pytest.mark.slow
def test_two_stage_bootstrap_coverage_with_ten_seeds():
    """With 10 seeds the seed + case bootstrap covers close to 95 % (percentile intervals run a little short
    with few clusters, and resampling cases inside resampled seeds counts the case noise twice)."""
    rng = np.random.default_rng(5)
    reps, hits = 150, 0
    for r in range(reps):
        d = _clustered(rng, seeds=10, cases=30)
        out = cluster_bootstrap([(x, np.zeros_like(x)) for x in d], mean_difference, n_boot=400, seed=r)
        hits += out["ci_low"] <= 0.2 <= out["ci_high"]
    assert 0.85 <= hits / reps <= 0.995, hits / reps


@pytest.mark.parametrize("pair", ["classification__profound", "super_resolution__provicnet",
                                  "modality_translation__provicnet"])
def test_per_case_records_reproduce_the_committed_seed_differences(pair):
    points = _points(pair)
    table = pair_summary.seed_scores(points)
    cases = case_differences(points, n_boot=200)
    for objective in ("native", "swapped"):
        seed_mean = table[table["objective"] == objective]["diff"].mean()
        row = cases[cases["objective"] == objective].iloc[0]
        assert row["mean"] == pytest.approx(seed_mean, abs=1e-9), (objective, row["mean"], seed_mean)
        assert row["n_seeds"] == 3 and row["t_low"] < row["mean"] < row["t_high"]
    if pair.startswith("classification"):
        assert math.isfinite(cases["delong_se"].iloc[0]) and cases["n_cases"].iloc[0] == "103"


def test_points_without_per_case_records_are_left_out_and_said_so():
    points = copy.deepcopy(_points("super_resolution__profound"))
    old = points[0]
    for run in old["runs"].values():
        run.pop("per_case", None)  # an older file
    assert case_arrays(old) is None
    cases = case_differences(points, n_boot=200)
    row = cases[cases["objective"] == old["objective"]].iloc[0]
    assert row["n_seeds"] == 2 and str(old["seed"]) in row["note"]
    for p in points:
        for run in p["runs"].values():
            run.pop("per_case", None)
    none = case_differences(points, n_boot=200)
    assert none["mean"].isna().all()
    assert pair_summary.case_gain_text(none).startswith("undefined")


def test_linear_reference_reads_the_committed_file():
    if not (RESULTS / "linear_references.json").is_file():
        pytest.skip("no committed linear references")
    seg = linear_reference(RESULTS, "segmentation")
    assert seg["metric"] == "dice" and 0 < seg["value"] < 1 and seg["baseline"] == 0.0
    assert linear_reference(RESULTS, "classification") is None
    assert linear_reference(RESULTS / "nowhere", "segmentation") is None


def test_dot_plot_draws_controls_once_and_both_reference_lines():
    points = [p for p in _points("segmentation__profound") if p["objective"] in ("native", "swapped")]
    control = copy.deepcopy([p for p in points if p["objective"] == "native"])
    for p in control:  # a negative control: its own pretrained run, the native scratch run reused
        p["objective"], p["objective_name"] = "random", "random"
        p["runs"]["pretrained"]["test"]["dice"] = 0.05 * (1 + p["seed"])
    table = pair_summary.seed_scores(points + control)
    drawn = [(i, o) for i, o, _ in seed_series(table)]
    assert ("pretrained", "random") in drawn and ("scratch", "random") not in drawn and ("scratch", "swapped") not in drawn
    fig = plot_seed_scores(table, "dice", "profound", linear_ref=0.1, cases=case_differences(points + control, n_boot=200))
    ax, ax_d = fig.axes
    levels = sorted(round(float(line.get_ydata()[0]), 6) for line in ax.get_lines() if len(set(line.get_ydata())) == 1
                    and line.get_linestyle() in ("--", ":"))
    assert levels == [0.0, 0.1], levels  # the trivial baseline (empty mask) and the linear reference
    assert [t.get_text().split("\n")[0] for t in ax_d.get_yticklabels()] == ["native", "swapped", "random"]
