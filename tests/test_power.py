"""Power by design (benchmarks/power.py, transferlimits.metrics.power): size, monotonicity, noise estimator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _scripts import load_script

from transferlimits.metrics.control_power import detectable_gain
from transferlimits.metrics.correlation import within_group_correlation
from transferlimits.metrics.mde import fisher_mde, holm_alpha, reliability
from transferlimits.metrics.power import (
    Design, draw_base, estimate_noise, mde, perm_pvalues, power, signflip_min_p, within_r)


def _load_cli():
    return load_script("benchmarks/power.py", "bench_power")


def test_size_under_null():
    d = Design(k=4, seeds=1, noise_align=1.0, noise_gain=1.0, n_sims=400, n_perm=99, seed=1)
    assert 0.02 <= power(d, 0.0) <= 0.10


def test_power_grows_with_encoders_and_seeds():
    d = Design(k=4, seeds=3, noise_align=1.0, noise_gain=1.0, n_sims=300, n_perm=60, seed=2)
    k3, k6 = (power(Design(**{**d.__dict__, "k": k}), -0.5) for k in (3, 6))
    s1, s5 = (power(Design(**{**d.__dict__, "seeds": s}), -0.5) for s in (1, 5))
    assert k6 > k3 + 0.1
    assert s5 > s1 + 0.1


def test_noise_free_strong_effect_is_detected():
    d = Design(k=3, seeds=1, noise_align=0.0, noise_gain=0.0, n_sims=200, n_perm=60, seed=3)
    assert power(d, -0.9) >= 0.99


def test_statistic_is_the_partial_correlation_and_p_is_valid():
    d = Design(n_groups=5, k=4, n_sims=3, n_perm=50, seed=4)
    base = draw_base(d)
    x, y = base["z_a"] + base["offset"], base["z_t"] - base["offset"]
    groups = np.repeat(np.arange(5), 4)
    for b in range(3):
        ref = within_group_correlation(x[b].ravel(), y[b].ravel(), groups, n_boot=0, n_perm=0, per_group=False)
        assert within_r(x[b], y[b]) == pytest.approx(ref["partial_r"], abs=1e-12)
    p = perm_pvalues(x, y, base["perm"])
    assert np.all((p >= 1 / 51) & (p <= 1))


def _metrics(task, model, objective, seed, rpg, mmd2):
    return {"task": task, "model": model, "objective": objective, "seed": seed, "rpg_primary": rpg,
            "alignment": {"pretrained": {"pooled": {"embedding": {"mmd2": mmd2}}}}}


def test_noise_estimator_recovers_known_sd():
    rng = np.random.default_rng(0)
    rows = []
    for obj, mean in (("native", 0.0), ("swapped", 10.0)):
        for s in range(400):
            rpg, mmd2 = mean + 2.0 * rng.standard_normal(), 1.0 + 0.1 * rng.standard_normal()
            rows.append(_metrics("t", "m", obj, s, rpg, mmd2))
    rows.append(_metrics("u", "m", "native", 0, None, 0.5))  # undefined RPG: no gain components for group u/m
    noise = estimate_noise(rows)
    gain = noise["groups"]["t/m"]["gain"]
    assert gain["sd_seed"] == pytest.approx(2.0, rel=0.08)
    assert gain["sd_between"] == pytest.approx(10.0 / np.sqrt(2), rel=0.05)
    assert gain["ratio"] == pytest.approx(2.0 / (10.0 / np.sqrt(2)), rel=0.1)
    assert noise["groups"]["t/m"]["align"]["sd_seed"] == pytest.approx(0.1, rel=0.08)
    assert noise["groups"]["u/m"]["gain"] is None
    assert noise["pooled"]["gain"]["n_groups"] == 1


def test_signflip_floor():
    assert signflip_min_p(4) == 0.125
    assert signflip_min_p(5) == 0.0625
    assert signflip_min_p(6) < 0.05


def test_cli_quick_writes_strict_json(tmp_path, capsys):
    runs = tmp_path / "runs"
    rng = np.random.default_rng(1)
    for task in ("a", "b"):
        for obj, shift in (("native", 0.0), ("swapped", 3.0)):
            for seed in range(3):
                point = runs / f"{task}__m__seed{seed}__{obj}"
                point.mkdir(parents=True)
                rpg, mmd2 = shift + rng.standard_normal(), shift / 3 + 0.3 * rng.standard_normal()
                m = _metrics(task, "m", obj, seed, rpg, mmd2)
                (point / "metrics.json").write_text(json.dumps(m))
    out_path = tmp_path / "power.json"
    out = _load_cli().main(["--runs", str(runs), "--quick", "--groups", "4", "--json", str(out_path)])
    text = out_path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)
    assert len(data["table"]) == 4 and data["signflip_min_p"]["4"] == 0.125
    assert {r["k"] for r in out["table"]} == {3, 6}
    text_out = capsys.readouterr().out
    assert "Recommendation" in text_out and "New design" in text_out
    row = data["new_design"][0]
    assert row["k"] == 4 and row["alpha_holm"] == pytest.approx(0.05 / 6)
    assert row["power_holm"] <= row["power"]  # the stricter Holm level never rejects more often


def test_power_at_the_holm_level_and_the_analytic_mde():
    d = Design(n_groups=10, k=6, seeds=3, noise_align=1.0, noise_gain=1.0, n_sims=300, n_perm=299, seed=6)
    base = draw_base(d)
    assert power(d, -0.5, base, alpha=holm_alpha(0.05, 6)) < power(d, -0.5, base)
    assert holm_alpha(0.05, 6) == pytest.approx(0.05 / 6) and holm_alpha(0.05, 6, rank=6) == 0.05
    # the analytic Fisher-z MDE (attenuated by the reliability 1/(1 + λ²/s) of each side) matches the simulation
    rel = reliability(1.0, 3) ** 2
    assert fisher_mde(60, 10, rel_x=rel) == pytest.approx(mde(d, base), abs=0.08)


def test_cli_reports_the_controls_detectable_gain_and_each_controls_power(capsys):
    def point(task, kind, seed, gain):
        return {"task": task, "model": "m", "seed": seed, "objective": kind, "objective_name": kind,
                "task_spec": {"primary_metric": "auc", "higher_is_better": True},
                "runs": {"pretrained": {"test": {"auc": 0.6 + gain}}, "scratch": {"test": {"auc": 0.6}}},
                "baseline_primary": {"value": 0.5}, "rpg_primary": None, "encoder_share": {"pretrained": 0.5}}
    pts = [point(t, k, s, g) for t in ("a", "b") for s in range(3)
           for k, g in (("native", 0.0), ("positive", 0.2 + 0.01 * s), ("random", 0.01 * (s - 1)))]
    out = _load_cli().controls(pts, 0.05)
    assert out["points"] == 2 and out["detectable"]["3"] == pytest.approx(detectable_gain(3, 2), rel=1e-9)
    pos = [r for r in out["measured"] if r["kind"] == "positive"]
    assert len(pos) == 2 and all(r["effect"] == pytest.approx(21.0, rel=1e-6) for r in pos)  # 0.21 / 0.01
    assert all(r["power"] > 0.99 and r["detected"] for r in pos)
    # at the measured gain/SD each positive point is detected with 5 seeds too: 2 expected of 2; power grows with seeds
    assert out["expected"]["m/positive"]["5"] == pytest.approx(2.0, abs=1e-3)
    rnd = [r for r in out["measured"] if r["kind"] == "random"]
    assert all(r["power_at"]["3"] <= r["power_at"]["6"] for r in rnd)
    assert "Encoder controls" in capsys.readouterr().out
    assert _load_cli().controls([p for p in pts if p["objective"] == "native"], 0.05)["measured"] == []
