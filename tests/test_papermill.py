"""Re-execution with plain papermill, the second way readers use the study (README, "Re-run one page").

An executed task notebook of the smoke study must name no path of the machine that made it, name its kernel
(``python3``), and re-execute with ``papermill IN.ipynb OUT.ipynb -p seeds 1`` — no runner — writing seed 1's
points (native and the swapped control) next to seed 0's without touching them or the pair's index.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from transferlimits import paths
from transferlimits.runner.notebook import repo_relative

NOTEBOOK = "classification__provicnet.ipynb"  # one (task, model) pair with its swapped control on smoke (the cheapest)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("value, expected", [
    (str(paths.ROOT / "results" / "smoke" / "pretrain" / "encoder.pt"), "results/smoke/pretrain/encoder.pt"),
    (str(paths.ROOT / "results" / ".." / "data"), "data"),
    ("/elsewhere/weights.pt", "/elsewhere/weights.pt"),
    ("results/smoke", "results/smoke"), ("", ""), (3, 3),
])
def test_runner_passes_repository_relative_paths(value, expected):
    assert repo_relative(value) == expected


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_executed_notebooks_name_no_machine_path_and_their_kernel(smoke_study):
    notebooks = sorted(smoke_study.generated.glob("*.ipynb"))
    assert notebooks, "the smoke study wrote no executed notebooks"
    for nb_path in notebooks:
        nb = json.loads(nb_path.read_text())
        assert nb["metadata"]["kernelspec"]["name"] == "python3", nb_path.name
        params = nb["metadata"].get("papermill", {}).get("parameters", {})
        absolute = {k: v for k, v in params.items() if isinstance(v, str) and v.startswith("/")}
        assert not absolute, f"{nb_path.name}: absolute paths in the injected parameters: {absolute}"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_plain_papermill_reexecutes_a_task_notebook_with_another_seed(smoke_study, tmp_path):
    runs = smoke_study.results / "runs"
    seed0 = [runs / f"classification__provicnet__seed0{s}" / "metrics.json" for s in ("", "__swapped")]
    index = smoke_study.results / "pairs" / "classification__provicnet.json"
    before = [_sha(f) for f in (*seed0, index)]
    out = tmp_path / "rerun.ipynb"
    proc = subprocess.run([sys.executable, "-m", "papermill", str(smoke_study.generated / NOTEBOOK), str(out),
                           "-p", "seeds", "1"], cwd=smoke_study.root, env=smoke_study.env, capture_output=True,
                          text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for suffix in ("", "__swapped"):
        seed1 = json.loads((runs / f"classification__provicnet__seed1{suffix}" / "metrics.json").read_text())
        assert seed1["seed"] == 1 and seed1["task"] == "classification" and seed1["model"] == "provicnet"
    assert [_sha(f) for f in (*seed0, index)] == before, "re-executing with seed 1 changed seed 0 or the index"
    nb = json.loads(out.read_text())
    assert nb["metadata"]["papermill"]["parameters"]["seeds"] == 1
    assert "index" not in nb["metadata"]["papermill"]["parameters"]
    status = smoke_study.cli("status", "--profile", "smoke")  # the extra seed leaves the grid up to date
    assert "0 stale, 0 missing" in status.stderr, status.stderr
