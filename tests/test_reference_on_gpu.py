"""The GPU command of issue 15 rehearsed on the CPU (``REHEARSE=1 scripts/reference_on_gpu.sh``): the same
script, the reference profile shrunk by ``--set`` overrides, one (task, model) point; and the wheel list of
``scripts/gpu_wheels.py`` (what must travel to the device machine)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import make_sandbox, sandbox_env

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "reference_on_gpu.sh"


def rehearse(root: Path, out: Path, stop_after: int) -> subprocess.CompletedProcess:
    env = dict(sandbox_env(root), REHEARSE="1", OUT=str(out), CAL_SECONDS="3", STOP_AFTER=str(stop_after),
               PYTHON=sys.executable)
    return subprocess.run(["bash", str(SCRIPT), "--only", "task=classification,model=profound"], env=env,
                          capture_output=True, text=True, timeout=stop_after + 120)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_rehearsal_calibrates_then_stops_itself_before_its_limit_and_packs_what_finished(tmp_path):
    """One call, stopped by its own limit (``compute --stop-after``) before the grid is done; that the same command
    then resumes is tests/test_cli_compute.py's."""
    root, out = make_sandbox(tmp_path / "sandbox"), tmp_path / "out"
    proc = rehearse(root, out, stop_after=40)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = (out / "run.log").read_text()
    assert "resume with the same command" in log or "[compute] done in" in log, log[-3000:]
    calibration = json.loads((out / "calibration.json").read_text())
    loops = {row["loop"]: row for row in calibration["loops"]}
    assert set(loops) == {"pretrain profound", "finetune profound", "pretrain provicnet", "finetune provicnet"}
    assert all(row["tflops"] > 0 and row["mfu_measured_peak"] > 0 and row["steps"] >= 2 for row in loops.values())
    with tarfile.open(out / "reference_results.tar.gz") as tar:
        names = set(tar.getnames())
    assert "reference/profile.json" in names and "reference/grid.json" in names
    assert not any(n.endswith("checkpoint_last.pt") for n in names)
    assert not (REPO / "results" / "reference").exists(), "the rehearsal wrote into the checkout"


def _gpu_wheels():
    spec = importlib.util.spec_from_file_location("gpu_wheels", REPO / "scripts" / "gpu_wheels.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wheel_closure_follows_installed_requirements_and_stops_at_the_image_and_exclusions():
    gw = _gpu_wheels()
    assert set(gw.ROOTS) == {"monai", "nibabel"}  # the compute path (issue 26); the grid's roots: --grid
    need = gw.closure(["papermill"], have=set(), exclude=set())
    assert need["papermill"] == importlib.metadata.version("papermill")
    assert {"nbclient", "nbformat", "jupyter-client"} <= set(need)  # papermill -> nbclient -> jupyter-client
    # papermill asks for aiohttp on Python >= 3.12 only (the device's), not installed beside 3.11: listed unpinned
    assert need.get("aiohttp") == ("" if sys.version_info < (3, 12) else importlib.metadata.version("aiohttp"))
    pruned = gw.closure(["papermill"], have={"nbformat"}, exclude={"nbclient"})
    assert "papermill" in pruned and "nbclient" not in pruned and "nbformat" not in pruned
    lines = (REPO / "scripts" / "gpu_image_packages.txt").read_text().splitlines()
    image = {gw.norm(line.strip()) for line in lines if line.strip() and not line.startswith("#")}
    assert "torch" in image and "snakemake" not in image
