"""H1–H6 verdicts on synthetic points: a planted effect is "supported", the opposite "contradicted", noise
and small n "inconclusive"; the rule itself on hand-made CIs."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest

from transferlimits.config import get_profile
from transferlimits.study import verdicts as V

N_PERM = 400


def _points(n_tasks: int = 8, seed: int = 0) -> pd.DataFrame:
    """Two models (one per objective family) × n_tasks tasks (half restoration), with noise columns."""
    rng = np.random.default_rng(seed)
    rows = []
    for model, recon in (("mae_model", True), ("con_model", False)):
        for t in range(n_tasks):
            rows.append({"task": f"t{t}", "model": model, "reconstruction": recon, "restoration": t % 2 == 0,
                         "target_type": "continuous" if t % 2 == 0 else "class",
                         "mmd2": rng.normal(), "rpg": rng.normal(), "epochs_ratio": rng.normal(),
                         "logme": rng.normal()})
    return pd.DataFrame(rows)


def _noise(df: pd.DataFrame, scale: float, seed: int = 1) -> np.ndarray:
    return scale * np.random.default_rng(seed).normal(size=len(df))


@pytest.mark.parametrize("ci, sign, n, expected", [
    ((0.1, 0.5), 1, 10, "supported"), ((-0.5, -0.1), -1, 10, "supported"),
    ((-0.5, -0.1), 1, 10, "contradicted"), ((0.1, 0.5), -1, 10, "contradicted"),
    ((-0.1, 0.5), 1, 10, "inconclusive"), ((0.1, 0.5), 1, 3, "inconclusive"),
    ((float("nan"), 0.5), 1, 10, "inconclusive"),
])
def test_rule(ci, sign, n, expected):
    assert V.verdict(0.3, ci, n, sign, 6, 0.01) == expected


@pytest.mark.parametrize("p_adjusted", [0.06, float("nan")])
def test_rule_reads_the_adjusted_p(p_adjusted):
    """A CI that excludes 0 is not enough: the Holm-adjusted p must be at most 0.05 too."""
    assert V.verdict(0.3, (0.1, 0.5), 10, 1, 6, p_adjusted) == "inconclusive"
    assert V.verdict(0.3, (0.1, 0.5), 10, 1, 6, 0.05) == "supported"


def test_rule_rejects_bad_arguments():
    with pytest.raises(ValueError, match="predicted_sign"):
        V.verdict(0.1, (0.0, 1.0), 10, 0, 6, 0.01)
    with pytest.raises(ValueError, match="n_min"):
        V.verdict(0.1, (0.0, 1.0), 10, 1, 0, 0.01)


def test_rule_text_names_every_minimum():
    for h, n in V.N_MIN.items():
        assert f"{h} {n}" in V.VERDICT_RULE


@pytest.mark.parametrize("slope, expected", [(-3.0, "supported"), (3.0, "contradicted"), (0.0, "inconclusive")])
def test_h2_mmd_rpg(slope, expected):
    df = _points()
    df["rpg"] = slope * df["mmd2"] + _noise(df, 0.5) + np.where(df["model"] == "mae_model", 20.0, 0.0)
    v = V.h2_mmd_rpg(df, N_PERM)
    assert v.verdict == expected, v
    assert v.n == 16 and v.predicted == "negative"


@pytest.mark.parametrize("slope, expected", [(3.0, "supported"), (-3.0, "contradicted"), (0.0, "inconclusive")])
def test_h3_mmd_convergence(slope, expected):
    df = _points()
    df["epochs_ratio"] = slope * df["mmd2"] + _noise(df, 0.5)
    assert V.h3_mmd_convergence(df, N_PERM).verdict == expected


@pytest.mark.parametrize("shift, expected", [(3.0, "supported"), (-3.0, "contradicted"), (0.0, "inconclusive")])
def test_h1_suited_tasks_move_less(shift, expected):
    df = _points()
    suited = df["restoration"] == df["reconstruction"]
    df["mmd2"] = np.where(suited, 0.0, shift) + _noise(df, 0.3)
    assert V.h1_suited_mmd(df, N_PERM).verdict == expected


@pytest.mark.parametrize("gain, expected", [(10.0, "supported"), (-10.0, "contradicted"), (0.0, "inconclusive")])
def test_h4_interaction(gain, expected):
    df = _points()
    suited = df["restoration"] == df["reconstruction"]
    df["rpg"] = np.where(suited, gain, 0.0) + _noise(df, 1.0)
    v = V.h4_interaction(df, N_PERM)
    assert v.verdict == expected, v
    if gain:  # the interaction of a planted suited gain g is 2g (g in each model family)
        assert v.estimate == pytest.approx(2 * gain, abs=2.0)


def test_h4_needs_every_cell():
    df = _points()
    df = df[df["restoration"]]  # no semantic task
    v = V.h4_interaction(df, N_PERM)
    assert v.verdict == "inconclusive" and "four" in v.note


@pytest.mark.parametrize("which, expected", [("logme", "supported"), ("mmd2", "contradicted"),
                                             ("both", "inconclusive")])
def test_h5_prehoc_vs_posthoc(which, expected):
    df = _points(n_tasks=10)
    signal = np.linspace(-1, 1, len(df))
    df["rpg"] = signal
    if which in ("logme", "both"):
        df["logme"] = signal + _noise(df, 0.1, 2)
    if which in ("mmd2", "both"):
        df["mmd2"] = -signal + _noise(df, 0.1, 3)
    assert V.h5_prehoc_vs_posthoc(df).verdict == expected


def _control(effect: float, n_tasks: int = 4, noise: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    rows = []
    for t in range(n_tasks):
        rest = t % 2 == 0
        for model, native_recon in (("cnn", True), ("vit", False)):
            for kind in ("native", "swapped"):
                recon = native_recon if kind == "native" else not native_recon
                rows.append({"task": f"t{t}", "model": model, "objective_kind": kind, "reconstruction": recon,
                             "restoration": rest,
                             "rpg": (effect if recon == rest else 0.0) + noise * rng.normal()})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("effect, expected", [(20.0, "supported"), (-20.0, "contradicted")])
def test_h6_objective_effect(effect, expected):
    v = V.h6_objective_effect(_control(effect, n_tasks=6))
    assert v.verdict == expected and v.n == 24  # 6 tasks x 2 backbones x 2 objectives
    assert v.p == pytest.approx(2 / 2**6)  # exact sign flip: every task has the planted sign
    assert v.estimate == pytest.approx(effect, abs=2.0)


def test_h6_small_n_is_inconclusive():
    for n_tasks in (1, 2):  # 2 tasks: 8 cells < 12, too few to resample tasks
        assert V.h6_objective_effect(_control(20.0, n_tasks=n_tasks)).verdict == "inconclusive"


@pytest.mark.parametrize("n_tasks", [4, 5])
def test_h6_on_five_tasks_or_fewer_cannot_be_supported(n_tasks):
    """Exact sign flip over T ≤ 5 tasks: p ≥ 2/2^T > 0.05 however large the effect; the note says so."""
    v = V.h6_objective_effect(_control(50.0, n_tasks=n_tasks, noise=0.1))
    assert v.p == pytest.approx(2 / 2**n_tasks) and v.verdict == "inconclusive"
    assert f"smallest attainable p = 2/2^{n_tasks}" in v.note
    assert v.ci_method == f"t over tasks, df = {n_tasks - 1}"


def test_h6_states_the_supervision_confound_from_the_adapters():
    """The note names the label use the adapters declare (ObjectiveInfo.uses_labels), not a model name rule."""
    df = _control(20.0, n_tasks=4)
    df["model"] = df["model"].map({"cnn": "profound", "vit": "provicnet"})
    names = {("profound", True): "fcmae", ("profound", False): "contrastive",
             ("provicnet", True): "mae", ("provicnet", False): "contrastive"}
    df["objective"] = [names[(m, r)] for m, r in zip(df["model"], df["reconstruction"])]
    note = V.h6_objective_effect(df).note
    assert "uses labels" in note and "0.95 x DiceCE" in note
    df["objective"] = df["objective"].replace("contrastive", "unknown_objective")  # not declared: no claim
    assert "uses labels" not in V.h6_objective_effect(df).note


def test_small_n_is_inconclusive_despite_perfect_effect():
    df = _points(n_tasks=2)  # 4 points < N_MIN["H2"]
    df["rpg"] = -df["mmd2"]
    v = V.h2_mmd_rpg(df, N_PERM)
    assert v.n == 4 and v.verdict == "inconclusive"


def test_all_verdicts_table_has_one_word_per_hypothesis():
    table = V.verdict_table(V.all_verdicts(_points(), None, n_perm=100))
    assert list(table.index) == ["H1", "H2", "H3", "H4", "H5", "H6"]
    assert set(table["verdict"]) <= set(V.VERDICTS)
    assert table.loc["H6", "verdict"] == "inconclusive" and table.loc["H6", "n"] == "0 tasks (0 cells); below 12"
    assert table.loc["H6", "estimate [95 % CI]"] == "— (undefined)" and not table.isna().any().any()  # no bare NaN in the book


@pytest.mark.parametrize("passes", [False, None])
def test_a_design_that_fails_its_check_or_has_none_gets_no_verdict_but_inconclusive(passes):
    df = _points()
    df["rpg"] = -df["mmd2"]  # a perfect negative correlation: H2 supported by the statistics alone
    verdicts = V.all_verdicts(df, None, n_perm=N_PERM)
    assert {v.hypothesis: v.verdict for v in verdicts}["H2"] == "supported"
    gated = {v.hypothesis: v for v in V.gate_on_design(verdicts, passes)}
    assert {v.verdict for v in gated.values()} == {"inconclusive"}
    assert "By the statistics alone: supported; inconclusive because the " in gated["H2"].note
    assert ("failed its check" in gated["H2"].note) == (passes is False)
    unchanged = [v for v in verdicts if v.verdict == "inconclusive"]
    assert all(gated[v.hypothesis] == v for v in unchanged)  # nothing else changes
    assert V.gate_on_design(verdicts, True) == verdicts
    assert "design check" in V.VERDICT_RULE


# --- the verdict table, its MDE, paragraphs, forest plot and palette on the committed cpu run ---------------

from pathlib import Path  # noqa: E402

CPU_RESULTS = Path(__file__).resolve().parents[1] / "book" / "generated" / "cpu" / "results"


@pytest.fixture(scope="module")
def cpu_verdicts():
    if not any(CPU_RESULTS.glob("runs/*/metrics.json")):
        pytest.skip("no committed cpu results")
    return V.study_verdicts(CPU_RESULTS, n_perm=200)


def test_mde_of_a_correlation_follows_fishers_z():
    v = V.Verdict("H2", "r", "negative", 0.1, -0.5, 0.6, 0.5, 9, 6, "inconclusive", n_groups=2)
    value, text = V.minimum_detectable_effect(v)
    # tanh((1.95996 + 0.84162) / sqrt(9 - 2 - 2)) = tanh(1.25290)
    assert value == pytest.approx(0.8489, abs=1e-3) and text == "|r| ≥ 0.85"
    assert np.isnan(V.minimum_detectable_effect(V.Verdict("H2", "r", "negative", 0.1, -1, 1, 0.5, 4, 6,
                                                          "inconclusive", n_groups=2))[0])


@pytest.mark.parametrize("tasks, detectable", [(4, False), (5, False), (6, True)])
def test_h6_sign_flip_smallest_p(tasks, detectable):
    v = V.Verdict("H6", "d", "positive", 1.0, -1.0, 3.0, 0.5, 4 * tasks, 12, "inconclusive", n_units=tasks)
    value, text = V.minimum_detectable_effect(v)
    assert np.isfinite(value) == detectable
    if not detectable:
        assert text == f"none: smallest attainable p = {2 / 2 ** tasks:.3f} with {tasks} tasks"


def test_committed_cpu_verdict_table(cpu_verdicts):
    native, control, verdicts = cpu_verdicts
    table = V.verdict_table(verdicts)
    assert list(table.index) == ["H1", "H2", "H3", "H4", "H5", "H6"]
    assert list(table.columns) == ["claim", "predicted sign", "statistic (unit)", "estimate [95 % CI]", "test: p", "n",
                                   "MDE", "verdict", "note"]
    assert not table.isna().any().any() and set(table["verdict"]) <= set(V.VERDICTS)
    for h, row in table.iterrows():  # p and n never run together: separate cells, each with its own text
        assert "p = " in row["test: p"] and "Holm-adjusted p = " in row["test: p"]
        assert row["n"].split()[1] in ("points", "tasks", "encoders"), (h, row["n"])
    # within task, on the calibrated alignment (as the analysis notebook): encoders (native, swapped, the profile's
    # controls) of the task × model groups whose RPG and calibration are defined (segmentation: RPG undefined)
    groups = int(native["rpg"].notna().sum())
    kinds = 2 + len(get_profile("cpu").control_inits)
    n, g = (int(x) for x in re.match(r"(\d+) encoders in (\d+) groups$", table.loc["H2", "n"]).groups())
    assert g <= groups and n <= kinds * g and "mmd2_calibrated" in verdicts[1].statistic
    assert "across tasks" in table.loc["H2", "note"]
    h6 = [v for v in verdicts if v.hypothesis == "H6"][0]
    n_tasks = int(re.match(r"(\d+) tasks", table.loc["H6", "n"]).group(1))  # where H6's statistic is defined
    assert 2 <= n_tasks <= 5  # exact over 2^n sign patterns:
    assert (2 ** n_tasks * h6.p) == pytest.approx(round(2 ** n_tasks * h6.p)) and h6.p >= 2 / 2 ** n_tasks
    assert "uses labels" in h6.note  # the confound
    for v in verdicts:  # no percentile bootstrap on < 10 units: every CI says its analytic method
        assert "bootstrap" not in v.ci_method and (v.ci_method or not np.isfinite(v.ci_lo)), v
    assert "none: smallest attainable p" in table.loc["H6", "MDE"]
    md = V.verdict_table_markdown(verdicts, "Caption.", "tab-verdicts")
    assert md.startswith(":::{list-table} Caption.") and ":name: tab-verdicts" in md and md.count("* - **H") == 6


def test_paragraphs_say_when_an_effect_is_opposite_to_the_prediction(cpu_verdicts):
    verdicts = {v.hypothesis: v for v in cpu_verdicts[2]}
    for v in verdicts.values():
        text = V.verdict_paragraph(v)
        assert text.startswith(f"**{v.hypothesis}**") and f"**{v.verdict}**" in text
        opposite = np.isfinite(v.estimate) and (v.estimate > 0) != (v.predicted == "positive")
        assert ("opposite to the prediction" in text) == opposite, text
    # an effect opposite to the prediction with raw p < 0.05 that does not survive Holm: the paragraph says both
    h3 = V.verdict_paragraph(dataclasses.replace(verdicts["H3"], predicted="positive", estimate=-0.85, ci_lo=-1.0,
                                                 ci_hi=-0.2, p=0.023, p_adjusted=0.11))
    assert "opposite to the prediction" in h3 and "not after Holm" in h3
    assert "Confound" in V.verdict_paragraph(verdicts["H6"])  # the confound is stated where H6 is read


def test_forest_plot_and_palette(cpu_verdicts):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from transferlimits.figures import palette
    from transferlimits.figures.verdicts import plot_forest

    fig = plot_forest(cpu_verdicts[2])
    labels = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    assert sorted(lab.split(":")[0] for lab in labels) == ["H1", "H2", "H3", "H4", "H5", "H6"]
    plt.close(fig)
    undefined = V.Verdict("H4", "x", "positive", float("nan"), float("nan"), float("nan"), float("nan"), 0, 8,
                          "inconclusive")
    fig = plot_forest([undefined])
    assert any(t.get_text().startswith("n/a") for t in fig.axes[0].texts)  # drawn as undefined, not as 0
    plt.close(fig)
    assert palette.model_colour("profound") != palette.model_colour("provicnet")
    assert palette.objective_style("fcmae") == palette.objective_style("mae") != palette.objective_style("contrastive")
    assert len(set(palette.INIT_MARKERS.values())) == len(palette.INIT_MARKERS) == 4


def test_control_figure_draws_undefined_cells_as_such():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from transferlimits.figures.alignment import plot_control

    table = pd.DataFrame({"task": ["a", "a", "a", "a", "b", "b", "b", "b"],
                          "model": ["profound", "profound", "provicnet", "provicnet"] * 2,
                          "objective": ["fcmae", "contrastive", "contrastive", "mae"] * 2,
                          "rpg": [1.0, 2.0, 3.0, 4.0, np.nan, 1.0, 2.0, 3.0]})
    fig = plot_control(table)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["n/a"]
    assert "seed SD" in ax.get_ylabel()
    plt.close(fig)


def test_paper_beside_has_units_and_intervals(cpu_verdicts):
    from transferlimits.figures.alignment import paper_beside
    from transferlimits.study import analysis as an

    rows = an.point_rows(an.load_profile_points(CPU_RESULTS))
    table = paper_beside(rows)
    assert len(table) == 4 and table["paper (secondary summary)"].str.endswith("%").all()
    native = rows[rows["objective_kind"] == "native"]
    for _, row in table.iterrows():  # each row from the run's own native points: RPG where defined, a CI from 2 on
        mine = native[(native["model"].str.lower() == row["model"].lower())
                      & (native["task"] == row["task"].replace(" ", "_"))]
        k = int(mine["rpg_defined"].sum())
        assert row["seeds used"] == f"{k} of {len(mine)}", row
        assert row["this run, mean"].startswith("— (RPG undefined") == (k == 0), row
        assert ("[" in row["95 % CI over seeds"]) == (k >= 2), row
