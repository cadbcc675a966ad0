"""Adding a foundation model is one module plus one ``register_model`` call (issue 10): ``tests/toy_model.py``
registers a tiny 3D conv encoder with its own objective, and it runs through ``run_point`` and the runner
(``run --model-module``) without any other change to the package."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
import torch

from conftest import make_sandbox, sandbox_env
from transferlimits import paths
from transferlimits.config import get_profile
from transferlimits.models.heads import build_task_model
from transferlimits.runner import workflow as wf
from transferlimits.study import PointFiles, PointKey, run_point, validate_metrics
from transferlimits.tasks import get_task
from transferlimits.training.pretrain import load_pretrained_encoder, pretrain

import toy_model

TESTS = Path(__file__).resolve().parent
needs_pack = pytest.mark.skipif(not paths.GEOMETRY_PACK.exists(), reason="geometry pack not built")


def tiny_profile(base: str = "smoke"):
    return get_profile(
        base, grid={"shape": (16, 16, 16), "spacing": (3.0, 6.0, 6.0)}, slice_size=14,
        encoder_sizes={"profound": "test", "provicnet": "test"},
        splits={"pretrain": 4, "train": 8, "val": 4, "test": 6},
        pretrain={"steps": 6, "batch_size": 2, "warmup_steps": 1, "checkpoint_every": 3},
        finetune={"epochs": 2, "batch_size": 4},
        measure={"n_permutations": 19, "n_bootstrap": 5, "token_samples": 24}, num_threads=1,
    )


def test_the_toy_model_is_registered_and_keeps_the_encoder_contract():
    adapter = toy_model.TOY
    enc = adapter.encoder_for_profile(tiny_profile())
    out = enc.forward_features(torch.randn(2, 3, 16, 16, 16))
    assert out.pooled.shape == (2, enc.out_dim) and len(out.maps) == len(enc.map_dims) == len(enc.map_names)
    assert [m.shape[1] for m in out.maps] == enc.map_dims
    seg = build_task_model("toy", enc, get_task("segmentation"))
    assert seg(torch.randn(2, 3, 16, 16, 16)).shape == (2, 1, 16, 16, 16)
    cls = build_task_model("toy", enc, get_task("classification"))
    assert cls(torch.randn(2, 3, 16, 16, 16)).shape == (2, 4)
    grid = wf.build_grid("smoke", wf.parse_only("model=toy,task=segmentation"), model_modules=["toy_model"])
    assert grid.runs == (("segmentation", "toy", 0),) and grid.pretrain == (("toy", "recon"),)
    assert "toy" not in {m for _, m, _ in wf.build_grid("smoke").runs}  # the study grid is unchanged
    # one objective: no swapped-objective control, not even on a control task of the profile
    ctrl = wf.build_grid("smoke", wf.parse_only("model=toy,task=classification"), model_modules=["toy_model"])
    assert [p.objectives for p in ctrl.pairs] == [("native",)] and ctrl.swapped == ()
    assert not adapter.has_control and adapter.objective_info("recon").family == "reconstruction"


@needs_pack
@pytest.mark.parametrize("task, base", [("classification", "smoke"), ("super_resolution", "smoke"),
                                        ("super_resolution", "cpu")])  # cpu: its recipe (full-res, residual)
def test_run_point_with_the_toy_model(tmp_path, monkeypatch, task, base):
    monkeypatch.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path / "results"))
    prof = tiny_profile(base)
    if base == "cpu":
        assert prof.finetune_for(task).full_res_skip and prof.finetune_for(task).residual
    result = pretrain("toy", "recon", prof, device="cpu", out_dir=tmp_path / "pre", progress=False)
    enc, meta = load_pretrained_encoder(result.encoder_path)
    assert meta["model"] == "toy" and meta["objective"] == "recon" and isinstance(enc, toy_model.ToyEncoder)
    d = run_point(PointKey(task, "toy"), prof, PointFiles(tmp_path / "run", result.encoder_path), progress=False)
    validate_metrics(d)
    assert d["model"] == "toy" and d["task"] == task
    assert {"pretrained", "scratch"} <= set(d["runs"])
    assert get_task(task).primary_metric in d["runs"]["pretrained"]["test"]


@needs_pack
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_runner_with_model_module(tmp_path):
    root = make_sandbox(tmp_path / "sandbox")
    env = sandbox_env(root)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH", "")]))
    import subprocess

    args = ["run", "--profile", "smoke", "--cores", "2", "--model-module", "toy_model",
            "--only", "task=segmentation,model=toy", "--set", "task_finetune.segmentation.epochs=1"]
    proc = subprocess.run([sys.executable, "-m", "transferlimits", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=850)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    run = root / "results" / "smoke" / "runs" / "segmentation__toy__seed0" / "metrics.json"
    metrics = json.loads(run.read_text())
    assert metrics["model"] == "toy" and metrics["objective_name"] == "recon"
    assert (root / "results" / "smoke" / "pretrain" / "toy__recon" / "encoder.pt").exists()
    alignment = (root / "book" / "generated" / "smoke" / "30_alignment.ipynb").read_text()
    # the point table is HTML (<td> cells; newlines JSON-escaped in the .ipynb)
    html = "".join("".join(o.get("data", {}).get("text/html", "")) for c in json.loads(alignment)["cells"]
                   for o in c.get("outputs", []))  # the point table is HTML
    assert re.search(r"<td>segmentation</td>\s*<td>toy</td>", html), "the toy point is missing from the alignment table"
