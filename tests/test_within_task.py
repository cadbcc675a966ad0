"""H2 / H3 within task (encoders as units, task × model fixed effects), Holm over H1–H6, and the sensitivity
analysis of the headline statistic (transferlimits.study.verdict_within, verdict_stats, sensitivity)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from transferlimits.config import get_profile
from transferlimits.study import analysis as an
from transferlimits.study import verdicts as V
from transferlimits.study.pair_index import published_calibration
from transferlimits.study.sensitivity import headline_sensitivity
from transferlimits.study.verdict_within import alignment_column, fixed_effect_estimate

CPU_RESULTS = Path(__file__).resolve().parents[1] / "book" / "generated" / "cpu" / "results"
KINDS = ("native", "swapped", "native_short", "random", "transfusion", "positive")


def _encoders(slope: float, n_tasks: int = 5, seed: int = 0, seeds: int = 3) -> pd.DataFrame:
    """Seed-level rows of 5 tasks × 2 models × 6 encoder kinds: within each group RPG = slope · MMD² + noise, while
    the group offsets run the other way (the across-task view alone would mislead); averaged per encoder."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n_tasks):
        for model in ("m_a", "m_b"):
            offset = 4.0 * rng.standard_normal()
            for kind in KINDS:
                a = rng.standard_normal()
                for s in range(seeds):
                    mmd2 = 10.0 + offset + a + 0.2 * rng.standard_normal()
                    rows.append({"task": f"t{t}", "model": model, "objective_kind": kind, "seed": s,
                                 "mmd2": mmd2, "rpg": slope * a - 3.0 * offset + 0.3 * rng.standard_normal(),
                                 "epochs_ratio": -slope * a + 0.3 * rng.standard_normal()})
    df = pd.DataFrame(rows)
    return an.average_seeds(df, ["task", "model", "objective_kind"], ["mmd2", "rpg", "epochs_ratio"])


def _native(enc: pd.DataFrame) -> pd.DataFrame:
    return enc[enc["objective_kind"] == "native"].reset_index(drop=True)


@pytest.mark.parametrize("slope, h2, h3", [(-1.0, "supported", "supported"), (1.0, "contradicted", "contradicted"),
                                           (0.0, "inconclusive", "inconclusive")])
def test_planted_within_task_effect(slope, h2, h3):
    enc = _encoders(slope)
    v2 = V.h2_mmd_rpg(_native(enc), 400, encoders=enc)
    v3 = V.h3_mmd_convergence(_native(enc), 400, encoders=enc)
    assert (v2.verdict, v3.verdict) == (h2, h3), (v2, v3)
    assert v2.n == 60 and v2.n_groups == 10 and v2.units_name == "encoders"  # encoders, not 180 seed rows
    assert "within task × model" in v2.test and "across tasks" in v2.note


def test_null_tables_are_rarely_supported():
    """Under no within-task effect the supported rate stays near α/2 (one side), here over 40 tables."""
    words = [V.h2_mmd_rpg(_native(e), 200, encoders=e).verdict for e in (_encoders(0.0, seed=s) for s in range(40))]
    assert words.count("supported") <= 4


def test_holm_over_the_six_hypotheses_decides():
    """all_verdicts adjusts the six p together: the planted H2 survives, and every p_adjusted ≥ its raw p."""
    enc = _encoders(-1.0)
    points = _native(enc).assign(restoration=lambda d: d["task"].isin(["t0", "t2"]),
                                 reconstruction=lambda d: d["model"] == "m_a", logme=0.0, target_type="class")
    vs = V.all_verdicts(points, None, encoders=enc, n_perm=400)
    assert [v.hypothesis for v in vs] == ["H1", "H2", "H3", "H4", "H5", "H6"]
    assert vs[1].verdict == "supported" and vs[1].p_adjusted == pytest.approx(min(1.0, 6 * vs[1].p), rel=0.6)
    for v in vs:
        assert v.p_adjusted >= v.p or np.isnan(v.p)


def test_one_encoder_per_group_falls_back_to_across_tasks():
    enc = _encoders(-1.0)
    native = _native(enc)
    v = V.h2_mmd_rpg(native, 200, encoders=native)  # one encoder per group: no within-task CI
    assert v.n_groups == 2 and v.units_name == "points" and "within task undefined" in v.note


def test_alignment_column_prefers_the_calibrated_value():
    enc = _encoders(-1.0)
    assert alignment_column(enc) == "mmd2"
    assert alignment_column(enc.assign(mmd2_calibrated=np.nan)) == "mmd2"  # absent values: fall back
    assert alignment_column(enc.assign(mmd2_calibrated=enc["mmd2"] / 20)) == "mmd2_calibrated"
    with pytest.raises(ValueError, match="alignment column"):
        alignment_column(enc.drop(columns=["mmd2"]))


def test_reliability_enters_the_mde():
    enc = _encoders(-1.0)
    est = fixed_effect_estimate(enc, "mmd2", "rpg")
    assert 0 < est.reliability < 1  # seed SDs are in the table
    v = V.h2_mmd_rpg(_native(enc), 200, encoders=enc)
    value, text = V.minimum_detectable_effect(v)
    assert "reliability" in text and value > np.tanh((1.959964 + 0.841621) / np.sqrt(60 - 10 - 2))


@pytest.fixture(scope="module")
def cpu_points():
    if not any(CPU_RESULTS.glob("runs/*/metrics.json")):
        pytest.skip("no committed cpu results")
    return an.load_profile_points(CPU_RESULTS)


def test_sensitivity_varies_the_headline_statistic_itself(cpu_points):
    """The baseline row is the verdict's own H2 statistic: the calibrated alignment (read as study_verdicts and the
    analysis notebook read it); its rows vary the calibration's bandwidth, drop the calibration, then vary the
    uncalibrated bandwidth, layer and pooling; every row has encoder-level units, never seed rows. Without
    calibration records the baseline is the uncalibrated MMD² at the median bandwidth (the raw H2)."""
    native, control, verdicts = V.study_verdicts(CPU_RESULTS, n_perm=200)
    calibration = published_calibration(CPU_RESULTS)
    sens = headline_sensitivity(cpu_points, "rpg", n_perm=200, calibration=calibration)
    h2 = verdicts[1]
    assert "mmd2_calibrated" in h2.statistic
    assert sens.iloc[0]["axis"] == "baseline" and sens.iloc[0]["x"] == "calibrated alignment"
    assert sens.iloc[0]["r"] == pytest.approx(h2.estimate, abs=1e-12)
    assert sens.iloc[0]["n"] == h2.n
    kinds = 2 + len(get_profile("cpu").control_inits)  # encoders per (task, model): native, swapped, the controls
    assert (sens["view"] == "within").all() and (sens["n"] <= kinds * len(native)).all()
    assert {"bandwidth", "calibration", "layer/pooling", "gain definition"} <= set(sens["axis"])
    assert "seed" not in set(sens["axis"])
    assert set(sens.loc[sens["axis"] == "layer/pooling", "x"]) == {"MMD²"}  # only the embedding has a floor
    # the calibrated rows differ from the uncalibrated ones (the calibration is what the baseline varies)
    assert sens.loc[sens["axis"] == "calibration", "r"].sub(sens.iloc[0]["r"]).abs().max() > 1e-6
    rows = an.point_rows(cpu_points)  # without calibration: raw MMD²
    raw = V.all_verdicts(an.average_points(rows), None, encoders=an.encoder_points(rows), n_perm=200)
    plain = headline_sensitivity(cpu_points, "rpg", n_perm=200)
    assert plain.iloc[0]["x"] == "MMD²" and plain.iloc[0]["r"] == pytest.approx(raw[1].estimate, abs=1e-12)
    across = headline_sensitivity(cpu_points, "rpg", view="across", n_perm=200)
    assert (across["n"] <= len(native)).all()
    with pytest.raises(ValueError, match="view"):
        headline_sensitivity(cpu_points, view="pooled")
