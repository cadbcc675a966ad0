"""The calibrated alignment (STUDY §5.2): the statistic against a brute-force paired MMD², the floor / ceiling /
calibrated value of a pair from synthetic ``features.npz`` files, the relative weight change, the pair index's
calibration and its hashes, and the analysis columns (absent fields of older files: NaN)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from transferlimits import paths
from transferlimits.study import analysis
from transferlimits.study.calibration import calibrate_pair, calibrated_value
from transferlimits.study.calibration_point import (
    FEATURES_FILE,
    calibration_statistic,
    relative_weight_change,
    standardise_by,
)
from transferlimits.study.measure import standardise_pair
from transferlimits.study.pair_index import index_problem, load_indexed_calibration, read_index, write_index

MULTS = (0.25, 0.5, 1.0, 2.0, 4.0)


def brute_paired_mmd2(ref, x, y, sigmas):
    """Paired MMD² by the definition: Σ_{i≠j} Σ_σ k(xi,xj) + k(yi,yj) − k(xi,yj) − k(xj,yi) / (n(n−1)), x and y
    z-scored by ref's mean/SD (loops, no shared code)."""
    ref, x, y = (np.asarray(a, np.float64) for a in (ref, x, y))
    mu, sd = ref.mean(0), ref.std(0)
    sd[sd <= 1e-12] = 1.0
    x, y = (x - mu) / sd, (y - mu) / sd
    n, total = len(x), 0.0
    for s in sigmas:
        k = lambda a, b: np.exp(-np.sum((a - b) ** 2) / (2 * s * s))  # noqa: E731
        for i in range(n):
            for j in range(n):
                if i != j:
                    total += k(x[i], x[j]) + k(y[i], y[j]) - k(x[i], y[j]) - k(x[j], y[i])
    return total / (n * (n - 1))


def median_distance(a):
    d = [np.linalg.norm(a[i] - a[j]) for i in range(len(a)) for j in range(i + 1, len(a))]
    return float(np.median(d))


def synthetic(n=12, d_in=6, d=10, seed=0):
    """Inputs, a 'pretrained' map W0, and its features: an encoder is tanh(x W)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d_in))
    w0 = rng.standard_normal((d_in, d))
    return rng, x, w0, np.tanh(x @ w0).astype(np.float32)


# ---------------------------------------------------------------- the statistic
def test_statistic_matches_the_definition_and_is_zero_for_identical_features():
    rng, x, w0, pre = synthetic()
    moved = np.tanh(x @ (w0 + 0.3 * rng.standard_normal(w0.shape))).astype(np.float32)
    out = calibration_statistic(pre, pre, moved, MULTS)
    ps, _ = standardise_pair(pre, pre)
    sigma = median_distance(ps)
    assert out["sigma"] == pytest.approx(sigma)
    assert out["sum"] == pytest.approx(brute_paired_mmd2(pre, pre, moved, [m * sigma for m in MULTS]), rel=1e-9)
    assert out["single"] == pytest.approx(brute_paired_mmd2(pre, pre, moved, [sigma]), rel=1e-9)
    same = calibration_statistic(pre, moved, moved, MULTS)  # MMD²(x, x) = 0
    assert same["sum"] == pytest.approx(0.0, abs=1e-12) and same["single"] == pytest.approx(0.0, abs=1e-12)


def test_standardise_by_is_the_measurement_s_standardisation():
    _, x, w0, pre = synthetic()
    other = pre[::-1] * 3.0 + 1.0
    ref_std, other_std = standardise_pair(pre, other)
    got = standardise_by(pre, pre, other)
    np.testing.assert_allclose(got[0], ref_std)
    np.testing.assert_allclose(got[1], other_std)


def test_calibrated_value_is_zero_at_the_floor_and_one_at_the_ceiling():
    assert calibrated_value(0.2, 0.2, 1.4) == (0.0, None)
    assert calibrated_value(1.4, 0.2, 1.4) == (1.0, None)
    assert calibrated_value(0.8, 0.2, 1.4)[0] == pytest.approx(0.5)
    value, why = calibrated_value(0.5, 0.6, 0.6)
    assert value is None and "ceiling" in why and "floor" in why
    assert calibrated_value(0.5, None, 1.0) == (None, "no floor")


@pytest.mark.parametrize("ceiling, defined", [(2.0, False), (1.99, False), (2.01, True), (1.2, False), (4.0, True)])
def test_calibrated_value_needs_a_unit_larger_than_the_floor(ceiling, defined):
    # floor 1.0: the unit ceiling - floor must exceed it, else the scale's noise spans the whole 0-1 range
    value, why = calibrated_value(1.5, 1.0, ceiling)
    assert (value is not None) == defined and (why is None) == defined
    if not defined:
        assert "<= floor" in why


def test_relative_weight_change_against_flattened_parameters():
    torch.manual_seed(0)
    start = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    tuned = copy.deepcopy(start)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.1 * torch.randn_like(p))
    flat0 = torch.cat([p.detach().flatten() for p in start.parameters()]).double()
    flat1 = torch.cat([p.detach().flatten() for p in tuned.parameters()]).double()
    expected = float(torch.linalg.vector_norm(flat1 - flat0) / torch.linalg.vector_norm(flat0))
    assert relative_weight_change(start, tuned) == pytest.approx(expected, rel=1e-12)
    assert relative_weight_change(start, start) == 0.0
    assert relative_weight_change(start, nn.Linear(5, 3)) is None  # other parameters


# ---------------------------------------------------------------- a pair of synthetic points
def write_point(root, name, seed, feats, objective="native", task="classification", model="profound"):
    """A point folder with the fields calibrate_pair reads and a features.npz."""
    folder = root / "runs" / name
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"task": task, "model": model, "seed": seed,
                                                     "objective": objective}))
    if feats is not None:
        pre = feats["pretrained"]
        sigma = median_distance(standardise_by(pre, pre)[0])
        np.savez(folder / FEATURES_FILE, **feats, case_ids=np.array([f"c{i}" for i in range(len(pre))]),
                 multipliers=np.array(MULTS), sigma=np.float64(sigma), data_seed=np.int64(0))
    return folder


def three_seeds(tmp_path):
    """Seeds 0-2 fine-tuned from one pretrained map: seed 0 and 1 moved a little, seed 2 not at all."""
    rng, x, w0, pre = synthetic()
    feats = {}
    for seed in (0, 1, 2):
        w_ft = w0 + (0.0 if seed == 2 else 0.4) * rng.standard_normal(w0.shape)
        rand = np.tanh(x @ rng.standard_normal(w0.shape)).astype(np.float32)
        feats[seed] = {"pretrained": pre, "random_init": rand,
                       "finetuned_pretrained": np.tanh(x @ w_ft).astype(np.float32)}
    dirs = [write_point(tmp_path, f"classification__profound__seed{s}", s, f) for s, f in feats.items()]
    return dirs, feats


def test_floor_value_and_ceiling_of_a_pair(tmp_path):
    dirs, feats = three_seeds(tmp_path)
    out = calibrate_pair(dirs)
    assert "calibrated" in out["formula"]
    rec = out["points"]["classification__profound__seed0"]
    f0 = feats[0]
    sigma = median_distance(standardise_by(f0["pretrained"], f0["pretrained"])[0])
    sig = [m * sigma for m in MULTS]
    value = brute_paired_mmd2(f0["pretrained"], f0["pretrained"], f0["finetuned_pretrained"], sig)
    ceiling = brute_paired_mmd2(f0["pretrained"], f0["pretrained"], f0["random_init"], sig)
    between = np.mean([brute_paired_mmd2(f0["pretrained"], f0["finetuned_pretrained"],
                                         feats[s]["finetuned_pretrained"], sig) for s in (1, 2)])
    floor = between / 2  # the statistic of ONE fine-tuning that moved by seed noise alone
    assert rec["value"] == pytest.approx(value, rel=1e-9) and rec["ceiling"] == pytest.approx(ceiling, rel=1e-9)
    assert rec["floor"] == pytest.approx(floor, rel=1e-9) and rec["floor_seeds"] == [1, 2]
    assert rec["seed_to_seed"] == pytest.approx(between, rel=1e-9)
    assert rec["ceiling"] > rec["floor"] > 0  # a random encoder is farther than seed noise
    assert rec["calibrated"] == pytest.approx((value - floor) / (ceiling - floor), rel=1e-9)
    # seed 2 did not move: its value is 0; against seed 2, seed 0's floor term is its own value
    assert out["points"]["classification__profound__seed2"]["value"] == pytest.approx(0.0, abs=1e-12)
    json.dumps(out, allow_nan=False)  # strict JSON


def test_pure_seed_noise_calibrates_near_zero(tmp_path):
    """Three seeds, each the start plus independent noise of one size: every point's calibrated value is near 0
    (with the literal floor = seed-to-seed statistic it would be near -floor / (2 (ceiling - floor)))."""
    rng, x, w0, pre = synthetic(seed=5)
    rand = np.tanh(x @ rng.standard_normal(w0.shape)).astype(np.float32)
    dirs = [write_point(tmp_path, f"q__m__seed{s}", s, {"pretrained": pre, "random_init": rand, "finetuned_pretrained":
                        np.tanh(x @ (w0 + 0.05 * rng.standard_normal(w0.shape))).astype(np.float32)}) for s in range(3)]
    recs = calibrate_pair(dirs)["points"]
    cal = [recs[f"q__m__seed{s}"]["calibrated"] for s in range(3)]
    assert abs(float(np.mean(cal))) < 0.1, cal


def test_a_seed_that_did_not_move_sets_the_seed_to_seed_statistic(tmp_path):
    """Two seeds, the second did not move: the seed-to-seed statistic is the first's value, and its floor half
    of it, so the first is calibrated at value / 2 above the floor."""
    rng, x, w0, pre = synthetic(seed=3)
    rand = np.tanh(x @ rng.standard_normal(w0.shape)).astype(np.float32)
    moved = np.tanh(x @ (w0 + 0.3 * rng.standard_normal(w0.shape))).astype(np.float32)
    a = write_point(tmp_path, "p__m__seed0", 0, {"pretrained": pre, "random_init": rand, "finetuned_pretrained": moved})
    b = write_point(tmp_path, "p__m__seed1", 1, {"pretrained": pre, "random_init": rand, "finetuned_pretrained": pre})
    rec = calibrate_pair([a, b])["points"]["p__m__seed0"]
    assert rec["seed_to_seed"] == pytest.approx(rec["value"], rel=1e-9) and rec["floor"] == pytest.approx(rec["value"] / 2)
    assert rec["ceiling"] > rec["floor"]
    assert rec["calibrated"] == pytest.approx((rec["value"] / 2) / (rec["ceiling"] - rec["value"] / 2), rel=1e-9)


def test_nulls_with_reasons_for_one_seed_another_start_or_no_features(tmp_path):
    rng, x, w0, pre = synthetic()
    f = {"pretrained": pre, "random_init": np.tanh(x @ rng.standard_normal(w0.shape)).astype(np.float32),
         "finetuned_pretrained": pre * 0.9}
    other_start = {k: v + 1.0 for k, v in f.items()}  # another starting encoder (e.g. another objective's)
    dirs = [write_point(tmp_path, "t__m__seed0", 0, f), write_point(tmp_path, "t__m__seed1", 1, other_start),
            write_point(tmp_path, "t__m__seed0__swapped", 0, f, objective="swapped"),
            write_point(tmp_path, "t__m__seed1__swapped", 1, None, objective="swapped")]
    recs = calibrate_pair(dirs)["points"]
    for name in ("t__m__seed0", "t__m__seed0__swapped"):
        assert recs[name]["ceiling"] is not None and recs[name]["floor"] is None
        assert "fewer than 2 seeds" in recs[name]["reasons"]["calibrated"]
    old = recs["t__m__seed1__swapped"]
    assert old["value"] is None and "no features.npz" in old["reasons"]["value"]


# ---------------------------------------------------------------- the pair index and the analysis table
def test_pair_index_holds_and_checks_the_calibration(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path))
    root = paths.results_dir("p")
    dirs, _ = three_seeds(root)
    index = root / "pairs" / "classification__profound.json"
    write_index(index, "p", "classification", "profound", [d.name for d in dirs])
    doc = read_index(index)
    assert all(e["features"].endswith(FEATURES_FILE) and len(e["features_sha256"]) == 64 for e in doc["points"])
    assert index_problem(index) is None
    cal = load_indexed_calibration([index])
    assert set(cal) == {("classification", "profound", s, "native") for s in (0, 1, 2)}
    assert cal[("classification", "profound", 0, "native")] == doc["calibration"]["points"]["classification__profound__seed0"]
    with np.load(dirs[1] / FEATURES_FILE) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["finetuned_pretrained"] = arrays["finetuned_pretrained"] + 1.0
    np.savez(dirs[1] / FEATURES_FILE, **arrays)
    assert "features.npz changed since the pair was indexed" in index_problem(index)
    (dirs[1] / FEATURES_FILE).unlink()
    assert "features.npz is missing" in index_problem(index)
    legacy = {k: v for k, v in doc.items() if k != "calibration"}  # an index written before the calibration
    legacy["points"] = [{k: e[k] for k in ("point", "metrics", "sha256")} for e in doc["points"]]
    index.write_text(json.dumps(legacy))
    assert index_problem(index) is None and load_indexed_calibration([index]) == {}


def test_point_rows_expose_the_calibration_and_nan_for_older_files():
    base = {"task": "t", "model": "m", "seed": 0, "objective": "native", "objective_name": "o",
            "task_spec": {"kind": "classification", "primary_metric": "auroc", "higher_is_better": True},
            "runs": {"pretrained": {"test": {"auroc": 0.8}}},
            "alignment": {"pretrained": {"pooled": {"embedding": {"mmd2": 0.3, "p_value": 0.01, "cka": 0.9,
                                                                   "cka_debiased": 0.8}}, "tokens": {}}}}
    new = copy.deepcopy(base)
    new["seed"] = 1
    new["alignment"]["pretrained"].update(weight_change=0.05, calibration={"ceiling": 1.5})
    cal = {("t", "m", 1, "native"): {"calibrated": 0.25, "floor": 0.1, "ceiling": 1.5}}
    rows = analysis.point_rows([base, new], calibration=cal).set_index("seed")
    assert rows.loc[1, ["mmd2_calibrated", "mmd2_floor", "mmd2_ceiling", "weight_change"]].tolist() == [0.25, 0.1,
                                                                                                         1.5, 0.05]
    assert rows.loc[0, ["mmd2_calibrated", "mmd2_floor", "mmd2_ceiling", "weight_change"]].isna().all()
    assert rows.loc[0, "cka_debiased"] == 0.8
    plain = analysis.point_rows([new]).iloc[0]  # no pair records: the point's own ceiling, no floor
    assert plain["mmd2_ceiling"] == 1.5 and pd.isna(plain["mmd2_calibrated"])
