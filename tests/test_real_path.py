"""The real-data path end to end (issue 14): ``run --profile picai --data DIR --labels DIR`` on a tiny
PI-CAI-layout folder built here from the two shipped real exams (renamed copies: 14 patients, the minimum of
the picai split fractions), with smoke-like sizes passed as ``--set`` overrides. On the finished grid the
same sandbox then checks that ``status`` and a plain ``run`` agree on a truncated ``metrics.json`` and that a
failed re-run of a finished point keeps its earlier result and names the run and its log."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import make_sandbox, sandbox_env
from transferlimits import paths

REPO = Path(__file__).resolve().parents[1]
#: 14 patients = the sum of the picai split minimums (4 + 4 + 2 + 4)
N_PATIENTS = 14
TINY = ["--set", "grid.shape=[16,32,32]", "--set", "grid.spacing=[3,2,2]", "--set", "slice_size=28",
        "--set", "encoder_sizes.profound=test", "--set", "encoder_sizes.provicnet=test", "--set", "seeds=[0]",
        "--set", "pretrain.steps=4", "--set", "pretrain.batch_size=2", "--set", "pretrain.warmup_steps=1",
        "--set", "pretrain.checkpoint_every=2", "--set", "finetune.epochs=1", "--set", "finetune.batch_size=2",
        "--set", "finetune.decoder_width=8", "--set", "measure.n_permutations=19", "--set", "measure.n_bootstrap=5",
        "--set", "measure.token_samples=24", "--set", "num_threads=1", "--set", "provicnet_slice_step=1",
        "--only", "task=classification,model=profound"]


def tiny_picai(root: Path, n_patients: int = N_PATIENTS) -> tuple[Path, Path]:
    """A PI-CAI image folder and a picai_labels checkout of ``n_patients`` renamed copies of the real exams.

    Returns:
        ``(images, labels)`` folders under ``root``.
    """
    images, labels = root / "images", root / "labels"
    src_rows = list(csv.DictReader(io.StringIO((paths.PICAI_LABELS / "clinical_information" / "marksheet.csv")
                                               .read_text())))
    real = sorted(p.name for p in paths.REAL_CASES.iterdir() if p.is_dir())
    shutil.copytree(paths.PICAI_LABELS, labels, ignore=shutil.ignore_patterns("*.nii.gz", "marksheet.csv"))
    rows = []
    for i in range(n_patients):
        old_pid = real[i % len(real)]
        row = dict(next(r for r in src_rows if r["patient_id"] == old_pid))
        old_cid = f"{old_pid}_{row['study_id']}"
        pid, sid = str(30000 + i), str(2000000 + i)
        new_cid = f"{pid}_{sid}"
        (images / pid).mkdir(parents=True)
        for seq in ("t2w", "adc", "hbv"):
            shutil.copy(paths.REAL_CASES / old_pid / f"{old_cid}_{seq}.mha", images / pid / f"{new_cid}_{seq}.mha")
        for mask in paths.PICAI_LABELS.rglob(f"{old_cid}.nii.gz"):
            dst = labels / mask.parent.relative_to(paths.PICAI_LABELS) / f"{new_cid}.nii.gz"
            shutil.copy(mask, dst)
        rows.append(dict(row, patient_id=pid, study_id=sid))
    sheet = labels / "clinical_information" / "marksheet.csv"
    with sheet.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(src_rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return images, labels


def test_tiny_picai_folder_has_the_layout(tmp_path):
    images, labels = tiny_picai(tmp_path, n_patients=3)
    assert sorted(p.name for p in images.iterdir()) == ["30000", "30001", "30002"]
    assert len(list(images.rglob("*.mha"))) == 9
    sheet = list(csv.DictReader((labels / "clinical_information" / "marksheet.csv").open()))
    assert [r["patient_id"] for r in sheet] == ["30000", "30001", "30002"]
    assert len(list(labels.rglob("30001_2000001.nii.gz"))) == len(list(paths.PICAI_LABELS.rglob("10795_*.nii.gz")))


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_real_path_end_to_end_then_keep_and_agree(tmp_path):
    if not (paths.REAL_CASES.is_dir() and paths.PICAI_LABELS.is_dir()):
        pytest.skip("the shipped real exams are missing")
    images, labels = tiny_picai(tmp_path / "picai")
    root = make_sandbox(tmp_path / "sandbox")
    # a copy of src/, not a link: the rules' source inputs keep their mtimes while the checkout is edited
    (root / "src").unlink()
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    env = sandbox_env(root)

    def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "transferlimits", *args], cwd=root, env=env,
                              capture_output=True, text=True, timeout=1500)
        if check:
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
        return proc

    base = ["--profile", "picai", "--data", str(images), "--labels", str(labels), *TINY]
    cli("run", *base, "--cores", "2")
    res, gen = root / "results" / "picai", root / "book" / "generated" / "picai"
    manifest = json.loads((res / "data" / "manifest.json").read_text())
    assert manifest["data_source"] == "picai" and sum(manifest["patients"].values()) == N_PATIENTS
    for name in ("00_data", "01_pretrain__profound__fcmae", "01_pretrain__profound__contrastive",
                 "classification__profound", "20_control", "30_alignment"):  # every rule ran
        assert (gen / f"{name}.ipynb").is_file(), name
    point = res / "runs" / "classification__profound__seed0"
    metrics = json.loads((point / "metrics.json").read_text())
    assert metrics["settings"]["profile"]["data_source"] == "picai"
    assert metrics["settings"]["profile"]["grid"]["shape"] == [16, 32, 32]
    assert (res / "runs" / "classification__profound__seed0__swapped" / "metrics.json").is_file()  # the control
    index = res / "pairs" / "classification__profound.json"

    status = cli("status", *[a for a in base if a != "--cores"])
    assert "0 stale, 0 missing, 0 unparseable, 0 failed" in status.stderr, status.stderr

    # a truncated metrics.json: status calls the pair unparseable and a plain dry run plans exactly that pair's job
    good = (point / "metrics.json").read_bytes()
    (point / "metrics.json").write_bytes(good[: len(good) // 2])
    status = cli("status", *base)
    assert re.search(r"^unparseable\s+\S*pairs/classification__profound.json", status.stdout, re.M), status.stdout
    dry = cli("run", *base, "--dry-run").stdout
    assert "rule pair:" in dry and "pairs/classification__profound.json" in dry, dry[-3000:]
    cli("run", *base)
    assert json.loads((point / "metrics.json").read_text())["task"] == "classification"

    # a failed re-run of the finished point (a template that fails after run_point) keeps the earlier result
    before = {f: (point / f).read_bytes() for f in ("metrics.json", "examples.npz")}
    nb_before = (gen / "classification__profound.ipynb").read_bytes()
    index_before = index.read_bytes()
    failing = tmp_path / "failing_task.py"
    failing.write_text((REPO / "notebooks" / "10_task.py").read_text()
                       + '\n# %%\nraise RuntimeError("injected failure after run_point")\n')
    proc = cli("run", *base, "--task-notebook", f"classification={failing}", check=False)
    assert proc.returncode != 0
    assert "FAILED pair classification__profound" in proc.stderr, proc.stderr[-3000:]
    assert "logs/classification__profound.log" in proc.stderr and "injected failure" in proc.stderr
    assert "earlier result kept" in proc.stderr and "Traceback" not in proc.stderr.split("[run] FAILED")[-1]
    assert {f: (point / f).read_bytes() for f in before} == before
    assert (gen / "classification__profound.ipynb").read_bytes() == nb_before and index.read_bytes() == index_before
    status = cli("status", *base, "--task-notebook", f"classification={failing}")
    assert re.search(r"^failed\s+\S*pairs/classification__profound.json", status.stdout, re.M), status.stdout

    # the user's data changed (one image touched, one marksheet value edited): the data rule and everything
    # downstream are stale, because the data rule depends on a fingerprint of the --data/--labels trees
    os.utime(next(images.rglob("*_t2w.mha")), ns=(time.time_ns(), time.time_ns() + 10**9))
    status = cli("status", *base)
    assert re.search(r"^stale\s+\S*00_data.ipynb", status.stdout, re.M), status.stdout
