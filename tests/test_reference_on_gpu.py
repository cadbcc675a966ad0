"""The GPU command of issue 15 rehearsed on the CPU (``REHEARSE=1 scripts/reference_on_gpu.sh``): the same
script, the reference profile shrunk by ``--set`` overrides, one (task, model) point. A first call is stopped
by its own time limit and says so; the same call then resumes and finishes, and what a reader needs comes
back packed in ``$OUT`` (calibration rows, the runner's log, notebooks + published results)."""

from __future__ import annotations

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
    first = rehearse(root, tmp_path / "out1", stop_after=25)
    assert first.returncode == 124, first.stdout[-3000:] + first.stderr[-3000:]
    assert "stopped at the time limit" in first.stdout
    assert (tmp_path / "out1" / "run.log").is_file() and (tmp_path / "out1" / "status.txt").is_file()
    data_nb = root / "book" / "generated" / "reference" / "00_data.ipynb"
    assert data_nb.is_file(), "the cohort job (~10 s) did not finish within the first 25 s"
    finished = data_nb.stat().st_mtime_ns

    out = tmp_path / "out2"
    second = rehearse(root, out, stop_after=400)
    assert second.returncode == 0, second.stdout[-3000:] + (out / "run.log").read_text()[-5000:]
    calibration = json.loads((out / "calibration.json").read_text())
    loops = {row["loop"]: row for row in calibration["loops"]}
    assert set(loops) == {"pretrain profound", "finetune profound", "pretrain provicnet", "finetune provicnet"}
    assert all(row["tflops"] > 0 and 0 < row["mfu_measured_peak"] for row in loops.values())
    assert "done in" in (out / "run.log").read_text()
    assert data_nb.stat().st_mtime_ns == finished, "the resumed call re-made a job the first call had finished"
    with tarfile.open(out / "reference_results.tar.gz") as tar:
        names = set(tar.getnames())
        assert f"reference/{POINT}.ipynb" in names and "reference/30_alignment.ipynb" in names
        metrics = json.load(tar.extractfile(f"reference/results/runs/{POINT}/metrics.json"))
    assert metrics["settings"]["profile"]["name"] == "reference"
    assert metrics["settings"]["profile"]["grid"]["shape"] == [16, 32, 32]
    assert not (REPO / "book" / "generated" / "reference").exists(), "the rehearsal wrote into the checkout"
