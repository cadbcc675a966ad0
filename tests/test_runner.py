"""The runner: parameter validation, papermill failures, the Snakemake grid, re-run logic, profiles."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from conftest import SmokeStudy, make_sandbox, sandbox_env
from transferlimits import paths
from transferlimits.runner import workflow as wf
from transferlimits.runner.cli_run import build_config, parse_pairs
from transferlimits.runner.params import coerce_value, template_parameters, validate_parameters

REPO = Path(__file__).resolve().parents[1]
TASK_TEMPLATE = REPO / "notebooks" / "10_task.py"

TINY = '''# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: some-kernel-that-does-not-exist
# ---

# %%
x = 1

# %% tags=["parameters"]
n = 2  # an int
label = "a"  # a string

# %%
print("value", n * 10, label)

# %%
if n > 2:
    raise RuntimeError("boom at n=%d" % n)
'''


def run_args(**kw) -> argparse.Namespace:
    base = dict(profile="smoke", only=None, force=False, data=None, weights=[], cores=2, dry_run=True,
                task_module=[], task_notebook=[], param=[], gpu=0, snakemake_profile=None, snakemake_args="")
    base.update(kw)
    return argparse.Namespace(**base)


# ---------------------------------------------------------------- parameters
def test_template_parameters_of_task_template():
    params = template_parameters(TASK_TEMPLATE)
    for name in ("task", "model", "profile", "seeds", "objectives", "pretrained", "pretrained_swapped", "released",
                 "index", "task_modules", "model_modules"):
        assert name in params
    assert params["task"] == "classification" and params["seeds"] == "" and params["index"] == ""
    assert "profile_overrides" not in params and "finetune_epochs" not in params  # the resolved profile has them


def test_unknown_parameter_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown notebook parameter.*'sed'.*valid: \[.*'seeds'"):
        validate_parameters(TASK_TEMPLATE, {"sed": 1})


def test_parameter_values_are_coerced_or_rejected():
    assert validate_parameters(TASK_TEMPLATE, {"seeds": 3, "model": "provicnet", "released": "0"}) == {
        "seeds": 3, "model": "provicnet", "released": False}
    with pytest.raises(ValueError, match="expects a bool"):
        validate_parameters(TASK_TEMPLATE, {"released": "maybe"})
    assert coerce_value("flag", "false", True) is False
    with pytest.raises(ValueError, match="expects a bool"):
        coerce_value("flag", "maybe", True)


def test_template_without_parameters_cell(tmp_path):
    path = tmp_path / "nb.py"
    path.write_text("# %%\nx = 1\n")
    with pytest.raises(ValueError, match="no cell tagged 'parameters'"):
        template_parameters(path)
    with pytest.raises(ValueError, match="does not exist"):
        template_parameters(tmp_path / "missing.py")


# ---------------------------------------------------------------- papermill execution
def _run_notebook(tmp_path: Path, *params: str) -> tuple[subprocess.CompletedProcess, Path]:
    template = tmp_path / "tiny.py"
    template.write_text(TINY)
    out = tmp_path / "out" / "tiny.ipynb"
    cmd = [sys.executable, "-m", "transferlimits.runner.notebook", str(template), str(out), *params]
    env = {"TRANSFERLIMITS_RESULTS": str(tmp_path / "results"), "PATH": "/usr/bin:/bin"}
    import os

    env = dict(os.environ, **env)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120), out


def test_notebook_runs_with_explicit_kernel_and_parameters(tmp_path):
    # the template names a kernel that does not exist: the runner must use python3 explicitly
    proc, out = _run_notebook(tmp_path, "-p", "n", "1", "-p", "label", "zz", "--title", "Tiny")
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "value 10 zz" in text and "# Tiny" in text
    assert not list(out.parent.glob(".*partial*")), "temporary notebook left behind"
    assert (tmp_path / "results" / ".runtime" / "ipython").is_dir(), "IPython state not kept in the results tree"


def test_failing_notebook_names_cell_and_keeps_partial(tmp_path):
    proc, out = _run_notebook(tmp_path, "-p", "n", "5")
    assert proc.returncode == 1
    assert "tiny.py" in proc.stderr and "failed in cell" in proc.stderr and "if n > 2" in proc.stderr
    assert "RuntimeError: boom at n=5" in proc.stderr
    failed = out.with_name("tiny.failed.ipynb")
    assert failed.exists() and not out.exists()
    assert "value 50 a" in failed.read_text(), "the partial notebook lost the outputs of the cells that ran"


def test_bad_parameter_exits_2_before_running(tmp_path):
    proc, out = _run_notebook(tmp_path, "-p", "nn", "1")
    assert proc.returncode == 2
    assert "unknown notebook parameter" in proc.stderr and "valid: ['label', 'n']" in proc.stderr
    assert not out.exists()


# ---------------------------------------------------------------- grid and CLI validation
def test_smoke_grid():
    grid = wf.build_grid("smoke")
    assert len(grid.pairs) == 5 * 2 and all(p.seeds == (0,) for p in grid.pairs)
    assert len(grid.runs) == 5 * 2 * 1
    assert sorted({t for t, _, _ in grid.swapped}) == ["classification", "super_resolution"]
    assert len(grid.swapped) == 4
    assert {p.name: p.objectives for p in grid.pairs}["classification__provicnet"] == ("native", "swapped")
    assert {p.name: p.objectives for p in grid.pairs}["segmentation__provicnet"] == ("native",)
    assert grid.pretrain == (("profound", "contrastive"), ("profound", "fcmae"),
                             ("provicnet", "contrastive"), ("provicnet", "mae"))
    only = wf.build_grid("smoke", wf.parse_only("task=segmentation,model=profound"))
    assert only.runs == (("segmentation", "profound", 0),) and only.swapped == ()
    assert only.pretrain == (("profound", "fcmae"),)


def test_only_and_pairs_reject_bad_items():
    with pytest.raises(ValueError, match="valid keys"):
        wf.parse_only("tsk=segmentation")
    with pytest.raises(ValueError, match="not KEY=VALUE"):
        wf.parse_only("segmentation")
    with pytest.raises(ValueError, match="valid: \\['classification'"):
        wf.build_grid("smoke", wf.parse_only("task=segmentaton"))
    with pytest.raises(ValueError, match="notebook template for task 'nope' does not exist"):
        wf.task_template("nope", {"nope": "/no/such/template.py"})
    with pytest.raises(ValueError, match="not NAME=VALUE"):
        parse_pairs(["profound"], "--weights")


def test_cli_config_validation():
    with pytest.raises(ValueError, match="--weights model 'vit'"):
        build_config(run_args(weights=["vit=/x.pt"]))
    with pytest.raises(ValueError, match="unknown notebook parameter.*valid"):
        build_config(run_args(param=["segmentation.epochs=2"]))
    with pytest.raises(ValueError, match="TASK.NAME"):
        build_config(run_args(param=["nosuchtask.seed=2"]))
    with pytest.raises(ValueError, match=r"unknown notebook parameter\(s\) \['finetune_epochs'\]"):  # one way: --set
        build_config(run_args(param=["segmentation.finetune_epochs=2"]))
    cfg = build_config(run_args(param=["segmentation.device=cpu"]))
    assert cfg["task_params"] == {"segmentation": {"device": "cpu"}}


def test_run_help_documents_every_option():
    proc = subprocess.run([sys.executable, "-m", "transferlimits", "run", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for opt in ("--profile", "--only", "--force", "--data", "--weights", "--cores", "--dry-run", "--task-module",
                "--task-notebook", "--param", "--snakemake-profile", "--model-module", "--labels", "--set"):
        assert opt in proc.stdout


def test_snakemake_command_rejects_bad_cores(tmp_path):
    with pytest.raises(ValueError, match="cores must be >= 1"):
        wf.snakemake_command(tmp_path / "c.yaml", cores=0)


# ---------------------------------------------------------------- the SLURM profile
def test_slurm_profile_parses_and_names_real_rules():
    cfg = yaml.safe_load((REPO / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    assert cfg["executor"] == "slurm"
    rules = set(re.findall(r"^rule (\w+):", (REPO / "workflow" / "Snakefile").read_text(), re.M))
    assert set(cfg["set-resources"]) <= rules and set(cfg["set-threads"]) <= rules


def test_slurm_profile_dry_run(tmp_path):
    """Snakemake validates a profile's keys against the workflow in a dry run. Without the SLURM executor
    plugin installed (no cluster here) the ``executor: slurm`` line cannot load, so the dry run uses a copy of
    the profile without that one key; with the plugin installed the profile is used as it is."""
    import importlib.util

    prof_dir = REPO / "workflow" / "profiles" / "slurm"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        cfg = yaml.safe_load((prof_dir / "config.yaml").read_text())
        cfg.pop("executor")
        prof_dir = tmp_path / "slurm"
        prof_dir.mkdir()
        (prof_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    env = {"TRANSFERLIMITS_RESULTS": str(tmp_path / "results")}
    import os

    proc = subprocess.run([sys.executable, "-m", "transferlimits", "run", "--profile", "smoke", "--dry-run",
                           "--snakemake-profile", str(prof_dir)], capture_output=True, text=True,
                          env=dict(os.environ, **env), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert re.search(r"pair\s+10", proc.stdout)


# ---------------------------------------------------------------- re-run logic on the finished smoke study
def _dry_run_jobs(study, *extra: str) -> list[str]:
    """``rule[wildcards]`` of every job a dry run lists ([] when there is nothing to do)."""
    out = study.cli("run", "--profile", "smoke", "--dry-run", *extra).stdout
    if "Nothing to be done" in out:
        return []
    parts = re.split(r"^(?:local)?rule (\w+):$", out, flags=re.M)
    jobs = []
    for rule, block in zip(parts[1::2], parts[2::2]):
        m = re.search(r"wildcards: ([^\n]+)", block)
        jobs.append(rule + (f"[{m.group(1)}]" if m else ""))
    return jobs


def test_smoke_dry_run_lists_the_grid(tmp_path):
    import os

    proc = subprocess.run([sys.executable, "-m", "transferlimits", "run", "--profile", "smoke", "--dry-run"],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TRANSFERLIMITS_RESULTS=str(tmp_path / "results")))
    assert proc.returncode == 0, proc.stderr[-2000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, re.M))
    assert counts["data"] == "1" and counts["pretrain"] == "4" and counts["pair"] == "10"
    assert counts["control"] == "1" and counts["alignment"] == "1" and counts["resolve_profile"] == "1"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_second_run_does_nothing(smoke_study):
    out = smoke_study.cli("run", "--profile", "smoke", "--dry-run").stdout
    assert "Nothing to be done" in out, out[-2000:]
    status = smoke_study.cli("status", "--profile", "smoke")
    assert "0 stale, 0 missing" in status.stderr, status.stderr


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_changing_one_task_parameter_reruns_only_that_task(smoke_study):
    jobs = _dry_run_jobs(smoke_study, "--param", "segmentation.device=cpu")
    runs = sorted(j for j in jobs if j.startswith("pair"))
    assert runs == ["pair[task=segmentation, model=profound]", "pair[task=segmentation, model=provicnet]"], jobs
    others = sorted(j for j in jobs if not j.startswith("pair"))
    assert others == ["alignment", "all"], jobs


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_changed_control_point_re_executes_the_analysis_notebooks(smoke_study):
    """Every rule declares every file its notebook reads: the analysis rules declare the pair indexes, whose
    hashes pin each point, so editing a swapped control run's metrics.json re-executes its pair's notebook (the
    points resume, nothing is re-trained), the 2x2 control and the alignment notebook."""
    from transferlimits.study.pair_index import index_problem

    point = smoke_study.results / "runs" / "classification__provicnet__seed0__swapped" / "metrics.json"
    index = smoke_study.results / "pairs" / "classification__provicnet.json"
    point.write_text(json.dumps(json.loads(point.read_text()), indent=1))  # the same values, other bytes
    edited = point.read_bytes()
    status = smoke_study.cli("status", "--profile", "smoke")
    assert re.search(r"^stale\s+\S*pairs/classification__provicnet.json", status.stdout, re.M), status.stdout
    notebooks = {n: smoke_study.generated / f"{n}.ipynb" for n in ("30_alignment", "20_control",
                                                                    "classification__provicnet", "segmentation__profound")}
    before = {n: p.stat().st_mtime_ns for n, p in notebooks.items()}
    log = smoke_study.cli("run", "--profile", "smoke").stderr
    after = {n: p.stat().st_mtime_ns for n, p in notebooks.items()}
    assert [n for n in notebooks if after[n] != before[n]] == ["30_alignment", "20_control",
                                                               "classification__provicnet"], log[-3000:]
    assert index_problem(index) is None
    assert point.read_bytes() == edited, "the point was re-computed instead of resumed"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_checkout_path_with_spaces_runs_and_writes_nothing_beside_it(smoke_study):
    """The shared smoke study runs in a checkout whose path holds a space and non-ASCII letters (conftest): every
    shell command quotes its paths, and nothing lands beside the checkout (an unquoted ``> {log}`` would)."""
    if os.environ.get("TRANSFERLIMITS_TEST_SANDBOX"):
        pytest.skip("a kept sandbox names its own path")
    assert " " in str(smoke_study.root) and "ü" in str(smoke_study.root)
    assert [p.name for p in smoke_study.root.parent.iterdir()] == [smoke_study.root.name]
    assert (smoke_study.html / "index.html").is_file()


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_render_only_executes_the_pages_without_computing(smoke_study, tmp_path):
    """``run --render-only`` (results made elsewhere, e.g. on a GPU, brought to this checkout): the pair notebooks
    re-execute on the finished points, no point is re-computed, and the invocation is listed in grid.json without
    adding to its wall time. It renders a copy of the smoke study's results in another sandbox -- results moved
    to another checkout, as they come back from a GPU -- so the shared study keeps its state for later tests."""
    root = make_sandbox(tmp_path / "elsewhere")
    elsewhere = SmokeStudy(root, sandbox_env(root))
    for name in ("results", "book/generated"):
        shutil.copytree(smoke_study.root / name, elsewhere.root / name, symlinks=True)
    runs = elsewhere.results / "runs"
    points = {p: p.read_bytes() for p in runs.glob("classification__*/metrics.json")}
    assert points
    grid_before = json.loads((elsewhere.results / "grid.json").read_text())
    page = elsewhere.generated / "classification__profound.ipynb"
    pretrain_page = elsewhere.generated / "01_pretrain__profound__fcmae.ipynb"
    mtime, pretrain_mtime = page.stat().st_mtime_ns, pretrain_page.stat().st_mtime_ns
    # results brought back from a GPU have no weights (too large): render-only must not pre-train them again
    weights = list((elsewhere.results / "pretrain").glob("*/encoder.pt"))
    assert weights
    for p in weights:
        p.unlink()
    # ... nor the cohort's cases (the manifest lists them): the data page reads the run's manifest and linear
    # references as they are; without its notebook (never rendered here) the data job must run, and build nothing
    data = elsewhere.results / "data"
    cohort_files = {p: p.read_bytes() for p in (data / "manifest.json", elsewhere.results / "linear_references.json")}
    data_page = elsewhere.generated / "00_data.ipynb"
    data_page.unlink()
    shutil.rmtree(data / "cases")
    elsewhere.cli("run", "--profile", "smoke", "--only", "task=classification", "--render-only")
    assert not any(p.exists() for p in weights), "render-only re-made a pre-training's weights"
    assert not (data / "cases").exists(), "render-only synthesised the cohort's cases"
    assert {p: p.read_bytes() for p in cohort_files} == cohort_files, "render-only rewrote the cohort's record"
    assert data_page.is_file(), "the data page was not rendered"
    assert page.stat().st_mtime_ns != mtime, "the page was not re-executed"
    assert pretrain_page.stat().st_mtime_ns != pretrain_mtime, "the pre-training page was not re-rendered"
    nb = nbformat.read(pretrain_page, as_version=4)
    assert "rendered from the record" in json.dumps([o for c in nb.cells for o in c.get("outputs", [])]), \
        "the pre-training page does not say where it was computed"
    assert {p: p.read_bytes() for p in points} == points, "render-only re-computed a point"
    grid = json.loads((elsewhere.results / "grid.json").read_text())
    assert grid["invocations"][-1]["render_only"] is True and grid["wall_s"] == grid_before["wall_s"]
    # a computing invocation records this machine's matmul peak beside its wall; a render computes nothing
    assert grid_before["invocations"][0]["sgemm_peak_gflops_1thread"] > 0
    assert "sgemm_peak_gflops_1thread" not in grid["invocations"][-1]
