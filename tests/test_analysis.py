"""The analysis table from synthetic metrics dicts: one row per run, seeds averaged with their SD, RPG-undefined
runs excluded and counted, per-model then fixed-effect correlations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from transferlimits import paths
from transferlimits.jsonsafe import dumps_strict
from transferlimits.metrics.convergence import convergence_table, curve_of
from transferlimits.study import analysis as A


def _metrics(task="super_resolution", kind="regression", model="profound", seed=0, objective="fcmae",
             objective_kind="native", rpg=12.0, defined=True, mmd2=0.1, logme=-1.0, ratio=0.5) -> dict:
    """A schema-2 metrics dict holding only what the analysis reads."""
    return {
        "task": task, "model": model, "seed": seed, "objective": objective_kind, "objective_name": objective,
        "task_spec": {"kind": kind, "primary_metric": "psnr", "higher_is_better": True},
        "runs": {i: {"test": {"psnr": s}} for i, s in (("pretrained", 30.0), ("scratch", 28.0), ("linear_probe", 25.0))},
        "baseline_primary": {"name": "identity", "metric": "psnr", "value": 26.0},
        "learned": {"pretrained": {"beats_baseline": True, "margin": 4.0},
                    "scratch": {"beats_baseline": defined, "margin": 2.0 if defined else -1.0},
                    "linear_probe": {"beats_baseline": False, "margin": -1.0}},
        "rpg_defined": defined, "rpg_undefined_reason": None if defined else "scratch run not learned",
        "rpg_primary": rpg if defined else None, "normalised_gain": {"vs_scratch": 0.5, "vs_linear_probe": 0.7},
        "alignment": {"pretrained": {"pooled": {"embedding": {"mmd2": mmd2, "p_value": 0.01, "cka": 0.9},
                                                "stage1": {"mmd2": mmd2 / 2}}, "tokens": {}}},
        "transferability": {"logme": logme, "target_type": "continuous", "regression": True},
        "convergence": {"0.9": {"epochs_ratio": ratio}},
    }


def test_point_rows_reads_every_field():
    row = A.point_rows([_metrics()]).iloc[0]
    assert (row.score_pretrained, row.score_scratch, row.score_linear_probe) == (30.0, 28.0, 25.0)
    assert row.baseline == 26.0 and row.baseline_name == "identity"
    assert (row.learned_pretrained, row.learned_linear_probe) == (1.0, 0.0)
    assert row.rpg == 12.0 and row.gain == 0.5 and row.mmd2 == 0.1 and row["mmd2__stage1"] == 0.05
    assert row.cka == 0.9 and row.logme == -1.0 and row.epochs_ratio == 0.5
    assert row.restoration and row.reconstruction and row.target_type == "continuous"


@pytest.mark.parametrize("conv, want, source, above", [
    ({"epochs_ratio": 0.5}, 0.5, "epochs", None),  # an older file: the whole-epoch ratio
    ({"epochs_ratio": 0.6, "steps_ratio": 0.55, "seconds_ratio": 0.7, "started_above": {"pretrained": False}},
     0.55, "steps_interpolated", 0.0),
    # a pretrained run flagged as started above: undefined, not the epoch ratio and never 0
    ({"epochs_ratio": None, "steps_ratio": None, "seconds_ratio": None, "started_above": {"pretrained": True}},
     None, "steps_interpolated", 1.0),
])
def test_convergence_column_prefers_the_interpolated_step_ratio(conv, want, source, above):
    m = _metrics()
    m["convergence"] = {"0.9": conv}
    row = A.point_rows([m]).iloc[0]
    assert (np.isnan(row.convergence_ratio) if want is None else row.convergence_ratio == want)
    assert row.convergence_source == source
    assert (np.isnan(row.started_above) if above is None else row.started_above == above)
    avg = A.average_points(A.point_rows([m, {**m, "seed": 1}])).iloc[0]
    assert "convergence_ratio" in avg and "steps_ratio" in avg


def test_committed_metrics_load_with_interpolated_convergence():
    """The committed cpu run (validated >= 10 times per run) loads and its rows use the step ratio interpolated between
    evaluations, with every run's start flagged (the whole-epoch fallback of older files is the conv0 case above);
    the interpolated table can be recomputed from its curves and is strict JSON."""
    points = A.load_profile_points(paths.BOOK / "generated" / "cpu" / "results")
    assert len(points) >= 10
    rows = A.point_rows(points)
    assert set(rows["convergence_source"]) == {"steps_interpolated"} and rows["started_above"].notna().all()
    ratios = []
    for m in points:
        table, _ = convergence_table(curve_of(m["runs"]["pretrained"]["curve"]),
                                     curve_of(m["runs"]["scratch"]["curve"]), (0.9,), m["task_spec"]["higher_is_better"])
        dumps_strict(table)
        ratios.append(table["0.9"]["steps_ratio"])
    assert any(isinstance(r, float) and r > 0 for r in ratios)


def test_undefined_rpg_is_nan_and_listed():
    rows = A.point_rows([_metrics(seed=0), _metrics(seed=1, defined=False)])
    assert np.isnan(rows.loc[1, "rpg"])
    ex = A.excluded_points(rows)
    assert list(ex["seed"]) == [1] and ex.loc[0, "rpg_reason"] == "scratch run not learned"


def test_average_points_means_sd_and_exclusions():
    pts = [_metrics(seed=s, rpg=r, mmd2=m) for s, r, m in ((0, 10.0, 0.1), (1, 20.0, 0.3), (2, 0.0, 0.2))]
    pts[2] = _metrics(seed=2, defined=False, mmd2=0.2)
    pts.append(_metrics(model="provicnet", objective="contrastive", seed=0, rpg=5.0))
    pts.append(_metrics(model="provicnet", objective="mae", objective_kind="swapped", rpg=99.0))
    avg = A.average_points(A.point_rows(pts)).set_index("model")
    assert len(avg) == 2  # the swapped run is not a native point
    pf = avg.loc["profound"]
    assert pf.rpg == pytest.approx(15.0) and pf.rpg_sd == pytest.approx(np.std([10, 20], ddof=1))
    assert pf.rpg_n == 2 and pf.n_seeds == 3 and pf.n_excluded == 1
    assert pf.mmd2 == pytest.approx(0.2) and pf.mmd2_n == 3
    assert np.isnan(avg.loc["provicnet", "rpg_sd"])  # one seed: no spread
    both = A.average_points(A.point_rows(pts), by_objective=True)
    assert set(both["objective_kind"]) == {"native", "swapped"} and len(both) == 3


@pytest.mark.parametrize("defined, want", [((True, True, True), 2.0), ((True, True, False), 1.5),
                                           ((True, False, False), None), ((False, False, False), None)])
def test_encoder_alignment_needs_most_of_its_seeds(defined, want):
    """A calibrated alignment defined on one seed of three is not the encoder's (the 128.9 of 4dbef34's H2)."""
    pts = [_metrics(seed=s) for s in range(3)]
    cal = {("super_resolution", "profound", s, "native"): {"calibrated": float(s + 1) if d else None, "floor": 1.0}
           for s, d in enumerate(defined)}
    enc = A.encoder_points(A.point_rows(pts, calibration=cal)).iloc[0]
    assert enc.mmd2_calibrated_n == sum(defined) and enc.n_seeds == 3
    assert (np.isnan(enc.mmd2_calibrated) if want is None else enc.mmd2_calibrated == pytest.approx(want))
    assert enc.mmd2 == pytest.approx(0.1) and enc.rpg == pytest.approx(12.0)  # other columns as before


def test_model_correlation_is_fixed_effect():
    """Within each model RPG falls with MMD², but the models' levels would make a naive pooled r positive."""
    rows = []
    for model, offset in (("a", 0.0), ("b", 10.0)):
        for k in range(6):
            rows.append({"model": model, "mmd2": offset + k, "rpg": 10 * offset - k})
    c = A.model_correlation(pd.DataFrame(rows), "mmd2", "rpg", n_boot=200, n_perm=200)
    assert c["fe_r"] == pytest.approx(-1.0) and c["naive_r"] > 0
    assert set(c["per_group"]) == {"a", "b"}
    with pytest.raises(ValueError, match="'nope'"):
        A.model_correlation(pd.DataFrame(rows), "nope", "rpg")


def test_layer_columns():
    avg = A.average_points(A.point_rows([_metrics(), _metrics(seed=1)]))
    assert A.layer_columns(avg) == ["mmd2__embedding", "mmd2__stage1"]


def test_load_profile_points_names_a_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        A.load_profile_points(tmp_path / "absent")


def test_the_objective_family_comes_from_the_adapter():
    rows = A.point_rows([_metrics(), _metrics(model="provicnet", objective="contrastive"),
                         _metrics(model="unregistered", objective="recon")])
    assert list(rows["objective_family"][:2]) == ["reconstruction", "contrastive"]
    assert pd.isna(rows["objective_family"][2])  # not registered in this process: unknown
    assert list(rows["reconstruction"]) == [True, False, False]


def test_logme_unit_of_new_and_old_files():
    """A file with per-patch LogME says so; a file without ``unit`` (written before it) is per case, read as before."""
    new = _metrics(logme=-0.8)
    new["transferability"].update(unit="patch", n=4096, n_groups=64)
    old = _metrics(task="modality_translation", logme=-1.4189385332)
    rows = A.point_rows([new, old])
    assert rows["logme_unit"].tolist() == ["patch", "case"] and rows["logme"].tolist() == [-0.8, -1.4189385332]
    null = _metrics(logme=None)
    assert np.isnan(A.point_rows([null]).loc[0, "logme"])
    assert A.average_points(rows).set_index("task").loc["super_resolution", "logme_unit"] == "patch"
