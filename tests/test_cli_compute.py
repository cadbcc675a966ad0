"""``python -m transferlimits compute`` (issue 26): the headless compute path, at tiny sizes in a sandbox. It
imports none of the notebook stack nor SimpleITK, writes the points with their pair index (what ``run
--render-only`` renders later), records itself in grid.json, and stops itself cleanly before ``--stop-after``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_sandbox, sandbox_env

FORBIDDEN = ("papermill", "nbclient", "nbformat", "jupyter", "ipykernel", "IPython", "snakemake", "myst_nb",
             "sphinx", "SimpleITK")
TINY = ["--set", "grid.shape=[16,32,32]", "--set", "grid.spacing=[3,2,2]", "--set", "slice_size=28",
        "--set", "encoder_sizes.profound=test", "--set", "encoder_sizes.provicnet=test", "--set", "seeds=[0]",
        "--set", "splits={pretrain: 16, train: 8, val: 4, test: 8}", "--set", "pretrain.steps=4",
        "--set", "pretrain.batch_size=2", "--set", "pretrain.warmup_steps=1", "--set", "pretrain.checkpoint_every=2",
        "--set", "finetune.epochs=1", "--set", "finetune.batch_size=2", "--set", "finetune.decoder_width=8",
        "--set", "measure.n_permutations=19", "--set", "measure.n_bootstrap=5", "--set", "measure.token_samples=24",
        "--set", "num_threads=1", "--set", "provicnet_slice_step=1", "--set", "device=cpu",
        "--only", "task=classification,model=profound"]
#: runs the CLI in this process with SimpleITK made unimportable (as on the device), then prints sys.modules
DRIVER = """
import json, runpy, sys
sys.modules["SimpleITK"] = None
sys.argv = ["transferlimits"] + json.loads(sys.argv[1])
try:
    runpy.run_module("transferlimits", run_name="__main__")
except SystemExit as exc:
    rc = exc.code
print(json.dumps({"rc": rc, "modules": sorted(m for m in sys.modules if sys.modules[m] is not None)}))
"""


def compute(root: Path, *extra: str) -> tuple[int, list[str], str]:
    args = ["compute", "--profile", "smoke", "--device", "cpu", *TINY, *extra]
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(args)], env=sandbox_env(root),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["rc"], out["modules"], proc.stderr


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_compute_stops_before_its_limit_then_finishes_without_the_notebook_stack(tmp_path):
    root = make_sandbox(tmp_path / "sandbox")
    results = root / "results" / "smoke"
    rc, _, err = compute(root, "--stop-after", "1", "--margin", "0")
    assert rc == 0 and "resume with the same command" in err, err[-2000:]
    assert (results / "profile.json").is_file() and not (results / "pairs").exists()
    rc, modules, err = compute(root)
    assert rc == 0, err[-3000:]
    loaded = sorted(m for m in modules if m.split(".")[0].startswith(FORBIDDEN))
    assert loaded == [], f"the compute path imported {loaded}"
    index = results / "pairs" / "classification__profound.json"
    check = subprocess.run([sys.executable, "-c", "import sys; from transferlimits.study.pair_index import "
                            "index_problem; print(index_problem(sys.argv[1]))", str(index)],
                           env=sandbox_env(root), capture_output=True, text=True, timeout=300)
    assert check.stdout.strip() == "None", check.stdout + check.stderr[-2000:]  # what `run --render-only` needs
    assert (results / "runs" / "classification__profound__seed0" / "metrics.json").is_file()
    manifest = json.loads((results / "data" / "manifest.json").read_text())
    assert manifest["real_cases"] == {} and "SimpleITK is not installed" in manifest["real_skipped"]
    grid = json.loads((results / "grid.json").read_text())
    runs = [r for r in grid["invocations"] if r.get("command") == "compute"]
    assert len(runs) == 2 and runs[0]["stopped_before"] and runs[1]["stopped_before"] is None
    assert runs[1]["finished"]["pairs"] == ["classification__profound"] and runs[1]["remaining"]["pairs"] == []
