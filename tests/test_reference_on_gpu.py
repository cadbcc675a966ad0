"""The GPU command of issue 15 rehearsed on the CPU (``REHEARSE=1 scripts/reference_on_gpu.sh``): the same
script, the reference profile shrunk by ``--set`` overrides, one (task, model) point. A first call is stopped
by its own time limit and says so; the same call then resumes and finishes, and what a reader needs comes
back packed in ``$OUT`` (calibration rows, the runner's log, notebooks + published results)."""

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
POINT = "classification__profound__seed0"


def rehearse(root: Path, out: Path, stop_after: int) -> subprocess.CompletedProcess:
    env = dict(sandbox_env(root), REHEARSE="1", OUT=str(out), CAL_SECONDS="3", CORES="2",
               STOP_AFTER=str(stop_after), PYTHON=sys.executable)
    return subprocess.run(["bash", str(SCRIPT), "--only", "task=classification,model=profound"], env=env,
                          capture_output=True, text=True, timeout=stop_after + 120)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_rehearsal_stops_before_its_limit_then_resumes_and_packs_the_results(tmp_path):
    root = make_sandbox(tmp_path / "sandbox")
    generated = root / "book" / "generated" / "reference"
    first = rehearse(root, tmp_path / "out1", stop_after=45)  # the rehearsal grid alone takes ~90 s
    assert first.returncode == 124, first.stdout[-3000:] + first.stderr[-3000:]
    assert "stopped at the time limit" in first.stdout
    assert (tmp_path / "out1" / "run.log").is_file() and (tmp_path / "out1" / "status.txt").is_file()
    # whatever the first call finished (how much depends on the machine's speed) the resumed call must not redo
    finished = {p.name: p.stat().st_mtime_ns for p in generated.glob("*.ipynb")
                if not p.name.endswith(".failed.ipynb")} if generated.is_dir() else {}

    out = tmp_path / "out2"
    second = rehearse(root, out, stop_after=400)
    assert second.returncode == 0, second.stdout[-3000:] + (out / "run.log").read_text()[-5000:]
    calibration = json.loads((out / "calibration.json").read_text())
    loops = {row["loop"]: row for row in calibration["loops"]}
    assert set(loops) == {"pretrain profound", "finetune profound", "pretrain provicnet", "finetune provicnet"}
    assert all(row["tflops"] > 0 and 0 < row["mfu_measured_peak"] for row in loops.values())
    assert "done in" in (out / "run.log").read_text()
    redone = [name for name, mtime in finished.items() if (generated / name).stat().st_mtime_ns != mtime]
    assert not redone, f"the resumed call re-made jobs the first call had finished: {redone}"
    with tarfile.open(out / "reference_results.tar.gz") as tar:
        names = set(tar.getnames())
        assert f"reference/{POINT}.ipynb" in names and "reference/30_alignment.ipynb" in names
        metrics = json.load(tar.extractfile(f"reference/results/runs/{POINT}/metrics.json"))
    assert metrics["settings"]["profile"]["name"] == "reference"
    assert metrics["settings"]["profile"]["grid"]["shape"] == [16, 32, 32]
    assert not (REPO / "book" / "generated" / "reference").exists(), "the rehearsal wrote into the checkout"


def _gpu_wheels():
    spec = importlib.util.spec_from_file_location("gpu_wheels", REPO / "scripts" / "gpu_wheels.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wheel_closure_follows_installed_requirements_and_stops_at_the_image_and_exclusions():
    gw = _gpu_wheels()
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
