"""H1–H6 verdicts on synthetic points: a planted effect is "supported", the opposite "contradicted", noise
and small n "inconclusive"; the rule itself on hand-made CIs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from transferlimits.study import verdicts as V

N_BOOT = N_PERM = 400


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
    assert V.verdict(0.3, ci, n, sign, n_min=6) == expected


def test_rule_rejects_bad_arguments():
    with pytest.raises(ValueError, match="predicted_sign"):
        V.verdict(0.1, (0.0, 1.0), 10, 0, 6)
    with pytest.raises(ValueError, match="n_min"):
        V.verdict(0.1, (0.0, 1.0), 10, 1, 0)


def test_rule_text_names_every_minimum():
    for h, n in V.N_MIN.items():
        assert f"{h} {n}" in V.VERDICT_RULE


@pytest.mark.parametrize("slope, expected", [(-3.0, "supported"), (3.0, "contradicted"), (0.0, "inconclusive")])
def test_h2_mmd_rpg(slope, expected):
    df = _points()
    df["rpg"] = slope * df["mmd2"] + _noise(df, 0.5) + np.where(df["model"] == "mae_model", 20.0, 0.0)
    v = V.h2_mmd_rpg(df, N_BOOT, N_PERM)
    assert v.verdict == expected, v
    assert v.n == 16 and v.predicted == "negative"


@pytest.mark.parametrize("slope, expected", [(3.0, "supported"), (-3.0, "contradicted"), (0.0, "inconclusive")])
def test_h3_mmd_convergence(slope, expected):
    df = _points()
    df["epochs_ratio"] = slope * df["mmd2"] + _noise(df, 0.5)
    assert V.h3_mmd_convergence(df, N_BOOT, N_PERM).verdict == expected


@pytest.mark.parametrize("shift, expected", [(3.0, "supported"), (-3.0, "contradicted"), (0.0, "inconclusive")])
def test_h1_suited_tasks_move_less(shift, expected):
    df = _points()
    suited = df["restoration"] == df["reconstruction"]
    df["mmd2"] = np.where(suited, 0.0, shift) + _noise(df, 0.3)
    assert V.h1_suited_mmd(df, N_BOOT, N_PERM).verdict == expected


@pytest.mark.parametrize("gain, expected", [(10.0, "supported"), (-10.0, "contradicted"), (0.0, "inconclusive")])
def test_h4_interaction(gain, expected):
    df = _points()
    suited = df["restoration"] == df["reconstruction"]
    df["rpg"] = np.where(suited, gain, 0.0) + _noise(df, 1.0)
    v = V.h4_interaction(df, N_BOOT, N_PERM)
    assert v.verdict == expected, v
    if gain:  # the interaction of a planted suited gain g is 2g (g in each model family)
        assert v.estimate == pytest.approx(2 * gain, abs=2.0)


def test_h4_needs_every_cell():
    df = _points()
    df = df[df["restoration"]]  # no semantic task
    v = V.h4_interaction(df, N_BOOT, N_PERM)
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
    assert V.h5_prehoc_vs_posthoc(df, N_BOOT).verdict == expected


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
    v = V.h6_objective_effect(_control(effect), N_BOOT, N_PERM)
    assert v.verdict == expected and v.n == 16  # 4 tasks x 2 backbones x 2 objectives
    assert v.estimate == pytest.approx(effect, abs=2.0)


def test_h6_small_n_is_inconclusive():
    for n_tasks in (1, 2):  # 2 tasks: 8 cells < 12, too few to resample tasks
        assert V.h6_objective_effect(_control(20.0, n_tasks=n_tasks), N_BOOT, N_PERM).verdict == "inconclusive"


def test_small_n_is_inconclusive_despite_perfect_effect():
    df = _points(n_tasks=2)  # 4 points < N_MIN["H2"]
    df["rpg"] = -df["mmd2"]
    v = V.h2_mmd_rpg(df, N_BOOT, N_PERM)
    assert v.n == 4 and v.verdict == "inconclusive"


def test_all_verdicts_table_has_one_word_per_hypothesis():
    table = V.verdict_table(V.all_verdicts(_points(), None, 100, 100))
    assert list(table.index) == ["H1", "H2", "H3", "H4", "H5", "H6"]
    assert set(table["verdict"]) <= set(V.VERDICTS)
    assert table.loc["H6", "verdict"] == "inconclusive" and table.loc["H6", "n (minimum)"].startswith("0 (12): too few")
    assert table.loc["H6", "estimate"] == "—" and not table.isna().any().any()  # no bare NaN in the book
