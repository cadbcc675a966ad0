"""Adapting the study to a new task, as the appendix describes it (the extension point of the runner).

1. write a module that calls ``register_task(TaskSpec(...))`` (here: gland volume, kind scalar_regression);
2. copy the one task template (``notebooks/10_task.py``) and change its ``task`` default;
3. ``python -m transferlimits run --task-module MODULE --task-notebook TASK=TEMPLATE --only task=TASK,model=M``.
The new point's metrics.json must exist and the alignment notebook must include it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[1]

TASK_MODULE = '''
"""A new downstream task: gland volume (mL) from T2W, registered through the extension point."""
import numpy as np

from transferlimits.tasks import TASK_REGISTRY, TaskSample, TaskSpec, register_task


def make_volume(case, rng):
    volume_ml = float(case.gland.sum() * np.prod(case.spacing) / 1000.0)
    return TaskSample({"t2w": case.t2w}, np.float32(volume_ml), {"body": case.body, "gland": case.gland},
                      case.case_id)


if "gland_volume" not in TASK_REGISTRY:
    register_task(TaskSpec(name="gland_volume", kind="scalar_regression", out_channels=1, primary_metric="mae",
                           higher_is_better=False, metrics=("mae", "rmse"), channel_inputs=("t2w", "", ""),
                           single_input="t2w", uses_labels=True, make_sample=make_volume,
                           description="T2W -> whole-gland volume (mL)."))
'''


def test_new_task_runs_and_reaches_the_alignment(smoke_study, tmp_path):
    pkg = tmp_path / "mytasks"
    pkg.mkdir()
    (pkg / "gland_volume_task.py").write_text(TASK_MODULE)
    # the one task template serves the new task: no notebook is copied or written (the grid passes -p task)
    env = dict(smoke_study.env, PYTHONPATH=str(pkg))
    study = type(smoke_study)(smoke_study.root, env)
    args = ["run", "--profile", "smoke", "--cores", "2", "--task-module", "gland_volume_task"]
    study.cli(*args, "--only", "task=gland_volume,model=profound", timeout=600)

    metrics = json.loads((smoke_study.results / "runs" / "gland_volume__profound__seed0" / "metrics.json").read_text())
    assert metrics["task"] == "gland_volume" and metrics["model"] == "profound"
    assert metrics["task_spec"]["kind"] == "scalar_regression" and metrics["task_spec"]["primary_metric"] == "mae"
    assert set(metrics["runs"]) >= {"pretrained", "scratch"}
    assert "mae" in metrics["runs"]["pretrained"]["test"]
    assert (smoke_study.generated / "gland_volume__profound.ipynb").exists()  # one page per (task, model)
    assert (smoke_study.results / "pairs" / "gland_volume__profound.json").exists()

    alignment = (smoke_study.generated / "30_alignment.ipynb").read_text()
    html = "".join("".join(o.get("data", {}).get("text/html", "")) for c in json.loads(alignment)["cells"]
                   for o in c.get("outputs", []))  # the point table is HTML
    assert re.search(r"<td>gland_volume</td>\s*<td>profound</td>", html), \
        "the alignment notebook did not pick up the new task"

    # without the task module the new task is not part of the grid (the standard study is unchanged)
    jobs = smoke_study.cli("run", "--profile", "smoke", "--dry-run").stdout
    assert "gland_volume" not in jobs
